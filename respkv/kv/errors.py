"""Exact Redis 7.0 error texts used by the kv layer (without the leading '-').

Local to kv until ``respkv.resp.errors`` provides the shared constructors; the strings are the
ones redis-server 7.0.15 sends, checked by the differential test.
"""

from __future__ import annotations

from collections.abc import Sequence

from respkv.resp.replies import ErrorReply

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = ErrorReply("ERR syntax error")
NOT_INTEGER = ErrorReply("ERR value is not an integer or out of range")
NOT_FLOAT = ErrorReply("ERR value is not a valid float")
INCR_OVERFLOW = ErrorReply("ERR increment or decrement would overflow")
DECR_OVERFLOW = ErrorReply("ERR decrement would overflow")
NAN_OR_INFINITY = ErrorReply("ERR increment would produce NaN or Infinity")
STRING_TOO_LONG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
OFFSET_OUT_OF_RANGE = ErrorReply("ERR offset is out of range")
NO_SUCH_KEY = ErrorReply("ERR no such key")
SAME_OBJECT = ErrorReply("ERR source and destination objects are the same")
DB_OUT_OF_RANGE = ErrorReply("ERR DB index is out of range")
INVALID_FIRST_DB = ErrorReply("ERR invalid first DB index")
INVALID_SECOND_DB = ErrorReply("ERR invalid second DB index")
INVALID_CURSOR = ErrorReply("ERR invalid cursor")
EXPIRE_NX_COMBINATION = ErrorReply(
    "ERR NX and XX, GT or LT options at the same time are not compatible"
)
EXPIRE_GT_LT = ErrorReply("ERR GT and LT options at the same time are not compatible")


def _text(arg: bytes) -> str:
    # addReplyErrorFormat turns CR and LF into spaces so the error stays one line.
    return arg.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")


def wrong_arity(name: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


def invalid_expire(name: str) -> ErrorReply:
    return ErrorReply(f"ERR invalid expire time in '{name}' command")


def unsupported_option(option: bytes) -> ErrorReply:
    return ErrorReply(f"ERR Unsupported option {_text(option)}")


def unknown_command(argv: Sequence[bytes]) -> ErrorReply:
    """Redis's text for an unknown command (name cut at 128 bytes, args listed up to 128)."""
    args = ""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        remaining = 128 - len(args)
        args += f"'{_text(arg[:remaining])}' "
    return ErrorReply(
        f"ERR unknown command '{_text(argv[0][:128])}', with args beginning with: {args}"
    )
