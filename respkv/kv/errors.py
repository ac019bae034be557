"""Exact Redis 7.0 error replies used by the kv layer.

The shared ones come from ``respkv.resp.errors`` (re-exported under the names kv uses); the
few only kv needs are defined here. Texts are redis-server 7.0.15's, checked by the
differential test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from respkv.resp import errors as _resp
from respkv.resp.errors import arg_text
from respkv.resp.replies import ErrorReply

WRONGTYPE: Final = _resp.WRONGTYPE
SYNTAX: Final = _resp.SYNTAX
NOT_INTEGER: Final = _resp.NOT_INTEGER
NOT_FLOAT: Final = _resp.NOT_FLOAT
INCR_OVERFLOW: Final = _resp.OVERFLOW
NAN_OR_INFINITY: Final = _resp.INCR_NAN_OR_INF
STRING_TOO_LONG: Final = _resp.STRING_TOO_LONG
OFFSET_OUT_OF_RANGE: Final = _resp.OFFSET_OUT_OF_RANGE
NO_SUCH_KEY: Final = _resp.NO_SUCH_KEY
DB_OUT_OF_RANGE: Final = _resp.DB_INDEX_OUT_OF_RANGE
INVALID_CURSOR: Final = _resp.INVALID_CURSOR
wrong_arity = _resp.wrong_arity
invalid_expire = _resp.invalid_expire_time

HASH_VALUE_NOT_INTEGER: Final = _resp.HASH_VALUE_NOT_INTEGER
HASH_VALUE_NOT_FLOAT: Final = _resp.HASH_VALUE_NOT_FLOAT
VALUE_OUT_OF_RANGE_POSITIVE: Final = _resp.VALUE_OUT_OF_RANGE_POSITIVE
VALUE_NAN_OR_INFINITY: Final = ErrorReply("ERR value is NaN or Infinity")
VALUE_OUT_OF_RANGE: Final = ErrorReply("ERR value is out of range")
#: getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX) (HRANDFIELD, SRANDMEMBER), Redis's words.
COUNT_OUT_OF_RANGE: Final = ErrorReply(
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
)
NUMKEYS_NOT_POSITIVE: Final = ErrorReply("ERR numkeys should be greater than 0")
NUMKEYS_TOO_MANY: Final = ErrorReply("ERR Number of keys can't be greater than number of args")
LIMIT_NEGATIVE: Final = ErrorReply("ERR LIMIT can't be negative")
DECR_OVERFLOW: Final = ErrorReply("ERR decrement would overflow")
SAME_OBJECT: Final = ErrorReply("ERR source and destination objects are the same")
INVALID_FIRST_DB: Final = ErrorReply("ERR invalid first DB index")
INVALID_SECOND_DB: Final = ErrorReply("ERR invalid second DB index")
EXPIRE_NX_COMBINATION: Final = ErrorReply(
    "ERR NX and XX, GT or LT options at the same time are not compatible"
)
EXPIRE_GT_LT: Final = ErrorReply("ERR GT and LT options at the same time are not compatible")


def unsupported_option(option: bytes) -> ErrorReply:
    """EXPIRE's "Unsupported option %s" (the option as C prints it: up to its first NUL)."""
    nul = option.find(b"\0")
    text = arg_text(option if nul < 0 else option[:nul])
    return ErrorReply(f"ERR Unsupported option {text}".replace("\r", " ").replace("\n", " "))


def unknown_command(argv: Sequence[bytes]) -> ErrorReply:
    return _resp.unknown_command(argv[0], list(argv[1:]))


def message_bytes(reply: ErrorReply) -> bytes:
    """An error's text as bytes that ``message_reply`` turns back into the same reply."""
    return reply.message.encode("utf-8", "surrogateescape")


def message_reply(data: bytes) -> ErrorReply:
    return ErrorReply(data.decode("utf-8", "surrogateescape"))
