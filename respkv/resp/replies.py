"""Reply values: what command handlers return and the encoders turn into RESP2 or RESP3.

Plain Python values map as follows (RESP2 / RESP3):
  int            -> integer / integer          bool  -> integer 1|0 / boolean
  bytes          -> bulk string                None  -> null bulk / null
  list, tuple    -> array                      dict  -> flat array / map
  float          -> bulk string / double       ErrorReply, SimpleString, ... as named below
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimpleString:
    value: bytes  # no CR or LF


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A complete error line without the leading '-', e.g. 'ERR syntax error'."""

    message: str


class SetReply(list):  # type: ignore[type-arg]
    """A set: RESP3 set type, RESP2 array. A list subclass so order stays deterministic."""


class PairsReply(list):  # type: ignore[type-arg]
    """(a, b) pairs: RESP2 one flat array a1 b1 a2 b2..., RESP3 an array of 2-element arrays
    (HRANDFIELD ... WITHVALUES, ZRANGE ... WITHSCORES)."""


@dataclass(frozen=True, slots=True)
class Push:
    """Out-of-band message (pub/sub): RESP3 push, RESP2 array."""

    items: list[object]


@dataclass(frozen=True, slots=True)
class Verbatim:
    """RESP3 verbatim string (INFO, CLIENT INFO), RESP2 bulk string."""

    format: bytes  # three letters, e.g. b"txt"
    text: bytes


class NullArray:
    """RESP2 '*-1' (EXEC aborted by WATCH, blocking pop timeout); RESP3 null."""

    __slots__ = ()


NULL_ARRAY = NullArray()


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes already encoded; written as they are (precomputed replies)."""

    data: bytes


OK = SimpleString(b"OK")
QUEUED = SimpleString(b"QUEUED")
PONG = SimpleString(b"PONG")
