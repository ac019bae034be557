"""Reply values -> RESP2 / RESP3 bytes.

`encode_into(out, value, protocol)` appends to a bytearray, so a whole pipelined batch becomes one
buffer and one `transport.write`; `encode_many` does exactly that for a list of replies, and
`encode` is the one-value convenience. The value mapping is the one documented in
`respkv.resp.replies`. Common replies (+OK, :0, :1, $-1, small integers, bulk headers of small
sizes) are precomputed.

Doubles are written as Redis 7.0's addReplyDouble does: "%.17g" (3.0 -> "3", 0.1 ->
"0.10000000000000001"), "inf"/"-inf" for infinities; a RESP2 bulk string or a RESP3 ','.

Error messages are encoded with UTF-8 + "surrogateescape" (see `respkv.resp.errors`); CR and LF
in a message become spaces, as Redis does, so a reply can never break the framing.

Caller mistakes (a value of no RESP type, such as a str) raise TypeError.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from respkv.resp.replies import (
    OK,
    PONG,
    QUEUED,
    ErrorReply,
    NullArray,
    PairsReply,
    Push,
    Raw,
    SetReply,
    SimpleString,
    Verbatim,
)

__all__ = [
    "CRLF",
    "EMPTY_ARRAY",
    "NULL_BULK",
    "NULL_RESP3",
    "OK_BYTES",
    "ONE",
    "PONG_BYTES",
    "QUEUED_BYTES",
    "ZERO",
    "encode",
    "encode_into",
    "encode_many",
    "format_double",
]

CRLF: Final = b"\r\n"
OK_BYTES: Final = b"+OK\r\n"
PONG_BYTES: Final = b"+PONG\r\n"
QUEUED_BYTES: Final = b"+QUEUED\r\n"
ZERO: Final = b":0\r\n"
ONE: Final = b":1\r\n"
NULL_BULK: Final = b"$-1\r\n"
NULL_ARRAY_RESP2: Final = b"*-1\r\n"
NULL_RESP3: Final = b"_\r\n"
EMPTY_ARRAY: Final = b"*0\r\n"

_SMALL_INT_MIN: Final = -1
_SMALL_INT_MAX: Final = 10000
_INTS: Final = [b":%d\r\n" % i for i in range(_SMALL_INT_MIN, _SMALL_INT_MAX + 1)]
_SMALL: Final = 1024
_BULK_HEADERS: Final = [b"$%d\r\n" % i for i in range(_SMALL)]
_ARRAY_HEADERS: Final = [b"*%d\r\n" % i for i in range(_SMALL)]
# Keyed by identity: the reply singletons live as long as the module (dataclass hashing is slow).
_SIMPLE: Final = {id(OK): OK_BYTES, id(PONG): PONG_BYTES, id(QUEUED): QUEUED_BYTES}
_INF: Final = math.inf


def format_double(value: float) -> bytes:
    """Redis 7.0 addReplyDouble text: "%.17g", and "inf" / "-inf" spelled out."""
    if value == _INF:
        return b"inf"
    if value == -_INF:
        return b"-inf"
    return b"%.17g" % value


def _error_bytes(message: str) -> bytes:
    data = message.encode("utf-8", "surrogateescape")
    if b"\r" in data or b"\n" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"-" + data + b"\r\n"


def _bulk(out: bytearray, data: bytes | bytearray | memoryview) -> None:
    size = len(data)
    out += _BULK_HEADERS[size] if size < _SMALL else b"$%d\r\n" % size
    out += data
    out += b"\r\n"


def _header(out: bytearray, kind: bytes, count: int) -> None:
    if kind == b"*" and count < _SMALL:
        out += _ARRAY_HEADERS[count]
    else:
        out += b"%s%d\r\n" % (kind, count)


def encode_into(out: bytearray, value: object, protocol: int) -> None:
    """Append the RESP encoding of `value` (protocol 2 or 3) to `out`."""
    t = type(value)
    if t is bytes:
        _bulk(out, value)  # type: ignore[arg-type]
    elif t is int:
        if _SMALL_INT_MIN <= value <= _SMALL_INT_MAX:  # type: ignore[operator]
            out += _INTS[value - _SMALL_INT_MIN]  # type: ignore[operator]
        else:
            out += b":%d\r\n" % value  # type: ignore[str-format]
    elif value is None:
        out += NULL_BULK if protocol == 2 else NULL_RESP3
    elif t is SimpleString:
        cached = _SIMPLE.get(id(value))
        out += cached if cached is not None else b"+" + value.value + b"\r\n"  # type: ignore[attr-defined]
    elif t is list or t is tuple:
        items: list[object] = value  # type: ignore[assignment]
        _header(out, b"*", len(items))
        for item in items:
            encode_into(out, item, protocol)
    elif t is ErrorReply:
        out += _error_bytes(value.message)  # type: ignore[attr-defined]
    elif t is Raw:
        out += value.data  # type: ignore[attr-defined]
    else:
        _encode_other(out, value, protocol)


def _encode_other(out: bytearray, value: object, protocol: int) -> None:
    if isinstance(value, bool):
        if protocol == 2:
            out += ONE if value else ZERO
        else:
            out += b"#t\r\n" if value else b"#f\r\n"
    elif isinstance(value, float):
        if protocol == 2:
            _bulk(out, format_double(value))
        else:
            out += b"," + format_double(value) + b"\r\n"
    elif isinstance(value, dict):
        _header(out, b"*" if protocol == 2 else b"%", len(value) * (2 if protocol == 2 else 1))
        for key, item in value.items():
            encode_into(out, key, protocol)
            encode_into(out, item, protocol)
    elif isinstance(value, SetReply):
        _header(out, b"*" if protocol == 2 else b"~", len(value))
        for item in value:
            encode_into(out, item, protocol)
    elif isinstance(value, PairsReply):
        if protocol == 2:
            _header(out, b"*", 2 * len(value))
            for a, b in value:
                encode_into(out, a, protocol)
                encode_into(out, b, protocol)
        else:
            _header(out, b"*", len(value))
            for a, b in value:
                out += b"*2\r\n"
                encode_into(out, a, protocol)
                encode_into(out, b, protocol)
    elif isinstance(value, Push):
        _header(out, b"*" if protocol == 2 else b">", len(value.items))
        for item in value.items:
            encode_into(out, item, protocol)
    elif isinstance(value, Verbatim):
        if protocol == 2:
            _bulk(out, value.text)
        else:
            out += b"=%d\r\n" % (len(value.text) + 4)
            out += value.format + b":" + value.text + b"\r\n"
    elif isinstance(value, NullArray):
        out += NULL_ARRAY_RESP2 if protocol == 2 else NULL_RESP3
    elif isinstance(value, bytearray | memoryview):
        _bulk(out, value)
    elif isinstance(value, int):  # int subclasses (IntEnum...)
        out += b":%d\r\n" % value
    elif isinstance(value, list | tuple):
        _header(out, b"*", len(value))
        for item in value:
            encode_into(out, item, protocol)
    elif isinstance(value, bytes):
        _bulk(out, value)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")


def encode(value: object, protocol: int = 2) -> bytes:
    """The RESP encoding of one reply."""
    t = type(value)
    if t is SimpleString:
        cached = _SIMPLE.get(id(value))
        if cached is not None:
            return cached
    elif value is None:
        return NULL_BULK if protocol == 2 else NULL_RESP3
    elif t is int and _SMALL_INT_MIN <= value <= _SMALL_INT_MAX:  # type: ignore[operator]
        return _INTS[value - _SMALL_INT_MIN]  # type: ignore[operator]
    elif t is Raw:
        data: bytes = value.data  # type: ignore[attr-defined]
        return data
    out = bytearray()
    encode_into(out, value, protocol)
    return bytes(out)


def encode_many(values: Iterable[object], protocol: int) -> bytes:
    """The replies of a pipelined batch as one buffer, for one transport.write."""
    out = bytearray()
    null = NULL_BULK if protocol == 2 else NULL_RESP3
    for value in values:  # the commonest replies inline, the rest through encode_into
        t = type(value)
        if t is bytes:
            size = len(value)  # type: ignore[arg-type]
            out += _BULK_HEADERS[size] if size < _SMALL else b"$%d\r\n" % size
            out += value  # type: ignore[arg-type]
            out += b"\r\n"
        elif id(value) in _SIMPLE:
            out += _SIMPLE[id(value)]
        elif value is None:
            out += null
        elif t is int and _SMALL_INT_MIN <= value <= _SMALL_INT_MAX:  # type: ignore[operator]
            out += _INTS[value - _SMALL_INT_MIN]  # type: ignore[operator]
        elif t is Raw:
            out += value.data  # type: ignore[attr-defined]
        else:
            encode_into(out, value, protocol)
    return bytes(out)
