"""Protocol errors and the exact error replies Redis 7.0 sends.

Two kinds of fault live here, h11 style:

* `ProtocolError` -- the *client* sent bytes that are not a valid request. The parser raises it;
  the server sends `reply` (if any) and closes the connection, as Redis does.
* The functions and constants below build `ErrorReply` values for *command* errors (wrong arity,
  wrong type, ...). Their texts were checked byte for byte against redis-server 7.0.15
  (`tests/test_resp_errors.py` does it again when a redis-server is on PATH).

Error messages are `str`. Anything that came from the wire (command names, arguments) is decoded
with UTF-8 + "surrogateescape", and the encoder encodes messages the same way, so arbitrary bytes
round-trip exactly as Redis would echo them.
"""

from __future__ import annotations

from typing import Final

from respkv.resp.replies import ErrorReply

__all__ = [
    "AUTH_NOT_CONFIGURED",
    "BIT_OFFSET",
    "DB_INDEX_OUT_OF_RANGE",
    "DISCARD_WITHOUT_MULTI",
    "EXECABORT",
    "EXEC_WITHOUT_MULTI",
    "HASH_VALUE_NOT_FLOAT",
    "HASH_VALUE_NOT_INTEGER",
    "INCR_NAN_OR_INF",
    "INDEX_OUT_OF_RANGE",
    "INVALID_CURSOR",
    "MIN_MAX_NOT_FLOAT",
    "MULTI_NESTED",
    "NOAUTH",
    "NOPROTO",
    "NOT_FLOAT",
    "NOT_INTEGER",
    "NO_SUCH_KEY",
    "OFFSET_OUT_OF_RANGE",
    "OVERFLOW",
    "PROTOCOL_VERSION_NOT_INTEGER",
    "READONLY_REPLICA",
    "STRING_TOO_LONG",
    "SYNTAX",
    "TIMEOUT_NEGATIVE",
    "TIMEOUT_NOT_FLOAT",
    "VALUE_OUT_OF_RANGE_POSITIVE",
    "WATCH_INSIDE_MULTI",
    "WRONGPASS",
    "WRONGTYPE",
    "ProtocolError",
    "arg_text",
    "invalid_expire_time",
    "unknown_command",
    "unknown_subcommand",
    "wrong_arity",
]


class ProtocolError(Exception):
    """The client violated RESP. Its fault; the connection must be closed.

    `message` is Redis's text without the "ERR " prefix, e.g.
    "Protocol error: invalid bulk length". `reply` is the error to send before closing, or None
    when Redis closes without a word (the client query buffer limit).
    """

    def __init__(self, message: str, *, send_reply: bool = True) -> None:
        super().__init__(message)
        self.message: Final = message
        self.reply: Final = ErrorReply("ERR " + message) if send_reply else None


def arg_text(arg: bytes) -> str:
    """Wire bytes as message text that the encoder turns back into the same bytes."""
    return arg.decode("utf-8", "surrogateescape")


def _c_string(arg: bytes, limit: int) -> str:
    """What C's "%.<limit>s" prints of arg: cut at the first NUL and after `limit` bytes."""
    nul = arg.find(b"\0")
    if nul >= 0:
        arg = arg[:nul]
    return arg_text(arg[:limit])


# --- constructors -------------------------------------------------------------------------------


def wrong_arity(command_name: str) -> ErrorReply:
    """`command_name` is the command's full lower-case name: 'get', or 'config|get'."""
    return ErrorReply(f"ERR wrong number of arguments for '{command_name}' command")


def unknown_command(name: bytes, args: list[bytes]) -> ErrorReply:
    """Redis 7.0: name cut to 128 bytes, then quoted args while the list is under 128 bytes."""
    parts: list[str] = []
    size = 0
    for arg in args:
        if size >= 128:
            break
        text = "'" + _c_string(arg, 128 - size) + "' "
        size += len(text.encode("utf-8", "surrogateescape"))
        parts.append(text)
    message = (
        f"ERR unknown command '{_c_string(name, 128)}', with args beginning with: {''.join(parts)}"
    )
    return ErrorReply(message.replace("\r", " ").replace("\n", " "))


def unknown_subcommand(command: bytes, subcommand: bytes) -> ErrorReply:
    """'CONFIG FOO': "ERR unknown subcommand 'foo'. Try CONFIG HELP." (the subcommand as sent)."""
    message = (
        f"ERR unknown subcommand '{_c_string(subcommand, 128)}'. "
        f"Try {arg_text(command.upper())} HELP."
    )
    return ErrorReply(message.replace("\r", " ").replace("\n", " "))


def invalid_expire_time(command_name: str) -> ErrorReply:
    """ "ERR invalid expire time in 'set' command" (also used by EXPIRE, GETEX, SETEX...)."""
    return ErrorReply(f"ERR invalid expire time in '{command_name}' command")


# --- constants ----------------------------------------------------------------------------------

WRONGTYPE: Final = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX: Final = ErrorReply("ERR syntax error")
NOT_INTEGER: Final = ErrorReply("ERR value is not an integer or out of range")
NOT_FLOAT: Final = ErrorReply("ERR value is not a valid float")
OVERFLOW: Final = ErrorReply("ERR increment or decrement would overflow")
INCR_NAN_OR_INF: Final = ErrorReply("ERR increment would produce NaN or Infinity")
HASH_VALUE_NOT_INTEGER: Final = ErrorReply("ERR hash value is not an integer")
HASH_VALUE_NOT_FLOAT: Final = ErrorReply("ERR hash value is not a float")
MIN_MAX_NOT_FLOAT: Final = ErrorReply("ERR min or max is not a float")
TIMEOUT_NOT_FLOAT: Final = ErrorReply("ERR timeout is not a float or out of range")
TIMEOUT_NEGATIVE: Final = ErrorReply("ERR timeout is negative")
VALUE_OUT_OF_RANGE_POSITIVE: Final = ErrorReply("ERR value is out of range, must be positive")
OFFSET_OUT_OF_RANGE: Final = ErrorReply("ERR offset is out of range")
BIT_OFFSET: Final = ErrorReply("ERR bit offset is not an integer or out of range")
STRING_TOO_LONG: Final = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
NO_SUCH_KEY: Final = ErrorReply("ERR no such key")
INDEX_OUT_OF_RANGE: Final = ErrorReply("ERR index out of range")
DB_INDEX_OUT_OF_RANGE: Final = ErrorReply("ERR DB index is out of range")
INVALID_CURSOR: Final = ErrorReply("ERR invalid cursor")
NOAUTH: Final = ErrorReply("NOAUTH Authentication required.")
WRONGPASS: Final = ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
AUTH_NOT_CONFIGURED: Final = ErrorReply(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
NOPROTO: Final = ErrorReply("NOPROTO unsupported protocol version")
PROTOCOL_VERSION_NOT_INTEGER: Final = ErrorReply(
    "ERR Protocol version is not an integer or out of range"
)
EXEC_WITHOUT_MULTI: Final = ErrorReply("ERR EXEC without MULTI")
DISCARD_WITHOUT_MULTI: Final = ErrorReply("ERR DISCARD without MULTI")
MULTI_NESTED: Final = ErrorReply("ERR MULTI calls can not be nested")
WATCH_INSIDE_MULTI: Final = ErrorReply("ERR WATCH inside MULTI is not allowed")
EXECABORT: Final = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
READONLY_REPLICA: Final = ErrorReply("READONLY You can't write against a read only replica.")
