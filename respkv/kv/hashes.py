"""Hash commands: HSET HSETNX HMSET HGET HMGET HGETALL HDEL HEXISTS HLEN HKEYS HVALS HINCRBY
HINCRBYFLOAT HSTRLEN HRANDFIELD HSCAN.

A hash is a collection (``respkv.kv.collection``) of type ``layout.T_HASH`` whose member key is
the field and whose member value is the field's value, so HSET on a hash of any size writes one
member record and the key record. Fields come back in byte order (Redis: hash order).

Writes keep their client form in the log; ``prepare`` rejects what Redis rejects before looking
at the key (odd HSET arguments, a bad HINCRBY/HINCRBYFLOAT increment) and, with
``check_state``, WRONGTYPE. HRANDFIELD is a read (Redis flags it readonly): its random choices
use the state machine's local ``random_bits`` and are not replicated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import OK, ErrorReply, PairsReply

from . import collection, errors
from .collection import Collection
from .layout import T_HASH
from .numbers import (
    LLONG_MAX,
    LLONG_MIN,
    add_long_double,
    format_long_double,
    parse_int,
    parse_long_double,
)
from .scanning import scan_command

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine

_LONG_MAX: Final = LLONG_MAX


def _open_read(sm: StateMachine, db: Db, key: bytes, now: int) -> Collection | ErrorReply | None:
    return collection.open_read(sm, db, key, now, T_HASH)


_prepare_checked = collection.type_checked_prepare(T_HASH)


# -- reads ----------------------------------------------------------------------------------------


def hget(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h
    return h.get(argv[2])


def hmget(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if isinstance(h, ErrorReply):
        return h
    if h is None:
        return [None] * (len(argv) - 2)
    return [h.get(field) for field in argv[2:]]


def hexists(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or 0
    return int(h.get(argv[2]) is not None)


def hstrlen(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or 0
    value = h.get(argv[2])
    return 0 if value is None else len(value)


def hlen(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or 0
    return h.size


def hgetall(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None:
        return {}
    if isinstance(h, ErrorReply):
        return h
    return dict(h.members())


def hkeys(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or []
    return [field for field, _ in h.members()]


def hvals(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or []
    return [value for _, value in h.members()]


def hscan(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    return scan_command(sm, argv, db, now, T_HASH, values=True)


def hrandfield(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    if len(argv) == 2:
        h = _open_read(sm, db, argv[1], now)
        if h is None or isinstance(h, ErrorReply):
            return h
        picked = collection.random_members(h, 1, sm.random_bits, unique=True)
        return picked[0][0] if picked else None
    count = parse_int(argv[2])
    if count is None:
        return errors.NOT_INTEGER
    if count < -_LONG_MAX:
        return errors.COUNT_OUT_OF_RANGE
    withvalues = False
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        return errors.SYNTAX
    if len(argv) == 4:
        withvalues = True
        if count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2:
            return errors.VALUE_OUT_OF_RANGE
    h = _open_read(sm, db, argv[1], now)
    if h is None or isinstance(h, ErrorReply):
        return h or []
    if count == 0:
        return []
    picked = collection.random_members(h, abs(count), sm.random_bits, unique=count > 0)
    if withvalues:
        return PairsReply(picked)
    return [field for field, _ in picked]


# -- writes ---------------------------------------------------------------------------------------


def prepare_hset(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if len(argv) % 2:
        return errors.wrong_arity(argv[0].decode())
    return _prepare_checked(sm, argv, db_index, now, check)


def hset(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    if len(argv) % 2:  # only from a MULTI payload, where arguments are checked here
        return errors.wrong_arity(argv[0].decode())
    h = collection.open_or_create(sm, db, argv[1], stamp, T_HASH)
    if isinstance(h, ErrorReply):
        return h
    added = 0
    for i in range(2, len(argv), 2):
        added += h.add(argv[i], argv[i + 1])
    h.store()
    return OK if argv[0] == b"hmset" else added


def hsetnx(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    h = collection.open_or_create(sm, db, argv[1], stamp, T_HASH)
    if isinstance(h, ErrorReply):
        return h
    if h.get(argv[2]) is not None:
        return 0
    h.add(argv[2], argv[3])
    h.store()
    return 1


def hdel(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    h = collection.open_write(sm, db, argv[1], stamp, T_HASH)
    if h is None or isinstance(h, ErrorReply):
        return h or 0
    removed = 0
    for field in argv[2:]:
        removed += h.remove(field)
        if h.size == 0:
            break
    h.store()
    return removed


def prepare_hincrby(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if parse_int(argv[3]) is None:
        return errors.NOT_INTEGER
    return _prepare_checked(sm, argv, db_index, now, check)


def hincrby(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    delta = parse_int(argv[3])
    if delta is None:
        return errors.NOT_INTEGER
    h = collection.open_or_create(sm, db, argv[1], stamp, T_HASH)
    if isinstance(h, ErrorReply):
        return h
    field = argv[2]
    raw = h.get(field)
    value = 0
    if raw is not None:
        current = parse_int(raw)
        if current is None:
            return errors.HASH_VALUE_NOT_INTEGER
        value = current
    if (delta < 0 and value < 0 and delta < LLONG_MIN - value) or (
        delta > 0 and value > 0 and delta > LLONG_MAX - value
    ):
        return errors.INCR_OVERFLOW
    value += delta
    h.add(field, str(value).encode())
    h.store()
    return value


def _parse_float_increment(arg: bytes) -> Any:
    increment = parse_long_double(arg)
    if increment is None:
        return errors.NOT_FLOAT
    if isinstance(increment, str):  # inf (string2ld refuses nan)
        return errors.VALUE_NAN_OR_INFINITY
    return increment


def prepare_hincrbyfloat(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    increment = _parse_float_increment(argv[3])
    if isinstance(increment, ErrorReply):
        return increment
    return _prepare_checked(sm, argv, db_index, now, check)


def hincrbyfloat(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    increment = _parse_float_increment(argv[3])
    if isinstance(increment, ErrorReply):
        return increment
    h = collection.open_or_create(sm, db, argv[1], stamp, T_HASH)
    if isinstance(h, ErrorReply):
        return h
    field = argv[2]
    raw = h.get(field)
    current = parse_long_double(b"0" if raw is None else raw)
    if current is None:
        return errors.HASH_VALUE_NOT_FLOAT
    total = add_long_double(current, increment)
    if total is None:
        return errors.NAN_OR_INFINITY
    text = format_long_double(total)
    h.add(field, text)
    h.store()
    return text


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "hset": (hset, prepare_hset),
    "hmset": (hset, prepare_hset),
    "hsetnx": (hsetnx, _prepare_checked),
    "hget": (hget, None),
    "hmget": (hmget, None),
    "hgetall": (hgetall, None),
    "hdel": (hdel, _prepare_checked),
    "hexists": (hexists, None),
    "hlen": (hlen, None),
    "hkeys": (hkeys, None),
    "hvals": (hvals, None),
    "hincrby": (hincrby, prepare_hincrby),
    "hincrbyfloat": (hincrbyfloat, prepare_hincrbyfloat),
    "hstrlen": (hstrlen, None),
    "hrandfield": (hrandfield, None),
    "hscan": (hscan, None),
}
