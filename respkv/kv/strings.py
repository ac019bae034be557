"""String commands: GET SET(EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET) SETNX SETEX PSETEX GETSET GETDEL
GETEX MGET MSET MSETNX INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SUBSTR SETRANGE.

Each write has a ``prepare`` (run once on the leader: syntax, numbers, relative TTL -> absolute
PXAT, optional state checks) and a handler run by ``apply`` on the canonical argv it produced:

    SET k v [NX|XX] [GET] [KEEPTTL|PXAT ms]    (also what SETEX and PSETEX become)
    GETEX k [PERSIST | PXAT ms | ERR message]  (ERR: an invalid expire, reported only if the
                                                key exists, as Redis does)
    INCRBY k delta                             (also INCR, DECR, DECRBY)

Handlers re-check what depends on the state, in Redis's order, so a payload is always answered
exactly as Redis would answer the command at that point of the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import OK, ErrorReply

from . import errors
from .layout import (
    EXPIRE_FLAG,
    I64,
    STRING_NO_EXPIRE,
    T_STRING,
    encode_string,
    record_body,
)
from .numbers import (
    LLONG_MAX,
    LLONG_MIN,
    add_long_double,
    format_long_double,
    parse_int,
    parse_long_double,
)

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine

PROTO_MAX_BULK_LEN: Final = 512 * 1024 * 1024

_NX, _XX, _GET, _KEEPTTL, _EX, _PX, _EXAT, _PXAT, _PERSIST = (1 << i for i in range(9))
_ANY_EXPIRE: Final = _EX | _PX | _EXAT | _PXAT


def _is_string(rec: bytes) -> bool:
    return rec[0] & 0x7F == T_STRING


def _expire_of(rec: bytes) -> int:
    return int(I64.unpack_from(rec, 1)[0]) if rec[0] & EXPIRE_FLAG else 0


def _check_string_key(sm: StateMachine, db_index: int, key: bytes, now_ms: int) -> bool:
    """False if ``key`` holds a live non-string (WRONGTYPE) in the applied state."""
    rec = sm.lookup_read(sm.db(db_index), key, now_ms)
    return rec is None or _is_string(rec)


# -- option parsing shared by SET and GETEX -------------------------------------------------------


def _c_string(arg: bytes) -> bytes:
    """What C's string functions see: the argument up to its first NUL, upper-cased."""
    nul = arg.find(b"\0")
    return (arg if nul < 0 else arg[:nul]).upper()


def parse_extended_options(
    argv: list[bytes], start: int, is_set: bool
) -> tuple[int, bytes | None] | ErrorReply:
    """Redis's parseExtendedStringArgumentsOrReply: (flags, expire argument) or syntax error."""
    flags = 0
    expire: bytes | None = None
    n = len(argv)
    j = start
    while j < n:
        opt = _c_string(argv[j])
        has_next = j + 1 < n
        if opt == b"NX" and is_set and not flags & _XX:
            flags |= _NX
        elif opt == b"XX" and is_set and not flags & _NX:
            flags |= _XX
        elif opt == b"GET" and is_set:
            flags |= _GET
        elif opt == b"KEEPTTL" and is_set and not flags & (_PERSIST | _ANY_EXPIRE):
            flags |= _KEEPTTL
        elif opt == b"PERSIST" and not is_set and not flags & (_ANY_EXPIRE | _KEEPTTL):
            flags |= _PERSIST
        elif opt == b"EX" and has_next and not flags & (_KEEPTTL | _PERSIST | _EXAT | _PX | _PXAT):
            flags |= _EX
            expire = argv[j + 1]
            j += 1
        elif opt == b"PX" and has_next and not flags & (_KEEPTTL | _PERSIST | _EX | _EXAT | _PXAT):
            flags |= _PX
            expire = argv[j + 1]
            j += 1
        elif opt == b"EXAT" and has_next and not flags & (_KEEPTTL | _PERSIST | _EX | _PX | _PXAT):
            flags |= _EXAT
            expire = argv[j + 1]
            j += 1
        elif opt == b"PXAT" and has_next and not flags & (_KEEPTTL | _PERSIST | _EX | _EXAT | _PX):
            flags |= _PXAT
            expire = argv[j + 1]
            j += 1
        else:
            return errors.SYNTAX
        j += 1
    return flags, expire


def expire_at_ms(
    arg: bytes, seconds: bool, relative: bool, now_ms: int, name: str
) -> int | ErrorReply:
    """Redis's getExpireMillisecondsOrReply: the absolute expiry in ms, or the error."""
    value = parse_int(arg)
    if value is None:
        return errors.NOT_INTEGER
    if value <= 0 or (seconds and value > LLONG_MAX // 1000):
        return errors.invalid_expire(name)
    if seconds:
        value *= 1000
    if relative:
        value += now_ms
    if value <= 0 or value > LLONG_MAX:
        return errors.invalid_expire(name)
    return value


# -- GET family (reads) ---------------------------------------------------------------------------


def get(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    rec = sm.lookup_read(db, argv[1], now)
    if rec is None:
        return None
    code = rec[0]
    if code == T_STRING:
        return rec[1:]
    if code & 0x7F != T_STRING:
        return errors.WRONGTYPE
    return rec[9:]


def mget(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    out: list[bytes | None] = []
    for key in argv[1:]:
        rec = sm.lookup_read(db, key, now)
        out.append(record_body(rec) if rec is not None and _is_string(rec) else None)
    return out


def strlen(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    rec = sm.lookup_read(db, argv[1], now)
    if rec is None:
        return 0
    if not _is_string(rec):
        return errors.WRONGTYPE
    return len(rec) - (9 if rec[0] & EXPIRE_FLAG else 1)


def getrange(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    start = parse_int(argv[2])
    end = parse_int(argv[3])
    if start is None or end is None:
        return errors.NOT_INTEGER
    rec = sm.lookup_read(db, argv[1], now)
    if rec is None:
        return b""
    if not _is_string(rec):
        return errors.WRONGTYPE
    value = record_body(rec)
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    end = max(end, 0)
    if end >= size:
        end = size - 1
    if start > end or size == 0:
        return b""
    return value[start : end + 1]


# -- SET family -----------------------------------------------------------------------------------


def prepare_set(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if len(argv) == 3:
        return argv  # plain SET: nothing to check or rewrite
    parsed = parse_extended_options(argv, 3, True)
    if isinstance(parsed, ErrorReply):
        return parsed
    flags, expire = parsed
    canonical = [b"set", argv[1], argv[2]]
    if flags & _NX:
        canonical.append(b"NX")
    if flags & _XX:
        canonical.append(b"XX")
    if flags & _GET:
        canonical.append(b"GET")
    if flags & _KEEPTTL:
        canonical.append(b"KEEPTTL")
    if expire is not None:
        when = expire_at_ms(
            expire, bool(flags & (_EX | _EXAT)), bool(flags & (_EX | _PX)), now, "set"
        )
        if isinstance(when, ErrorReply):
            return when
        canonical += (b"PXAT", str(when).encode())
    if flags & _GET and check and not _check_string_key(sm, db_index, argv[1], now):
        return errors.WRONGTYPE
    return canonical


def set_(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    n = len(argv)
    if n == 3:  # plain SET: the hot path
        sm.put(db, key, STRING_NO_EXPIRE + argv[2], sm.lookup_write(db, key, stamp))
        return OK
    nx = xx = want_get = keepttl = False
    when = 0
    j = 3
    while j < n:
        opt = argv[j]
        if opt == b"NX":
            nx = True
        elif opt == b"XX":
            xx = True
        elif opt == b"GET":
            want_get = True
        elif opt == b"KEEPTTL":
            keepttl = True
        elif opt == b"PXAT":
            j += 1
            when = int(argv[j])
        j += 1
    rec = sm.lookup_write(db, key, stamp)
    old: bytes | None = None
    if want_get and rec is not None:
        if not _is_string(rec):
            return errors.WRONGTYPE
        old = record_body(rec)
    if (nx and rec is not None) or (xx and rec is None):
        return old if want_get else None
    if keepttl and rec is not None:
        when = _expire_of(rec)
    sm.put(db, key, encode_string(argv[2], when), rec)
    return old if want_get else OK


def setnx(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is not None:
        return 0
    sm.put(db, key, STRING_NO_EXPIRE + argv[2], None)
    return 1


def _prepare_setex(name: str, seconds: bool) -> Prepare:
    def prepare(
        sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
    ) -> list[bytes] | ErrorReply:
        when = expire_at_ms(argv[2], seconds, True, now, name)
        if isinstance(when, ErrorReply):
            return when
        return [b"set", argv[1], argv[3], b"PXAT", str(when).encode()]

    return prepare


def _prepare_string_key(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    """For commands whose only early error is WRONGTYPE on argv[1]."""
    if check and not _check_string_key(sm, db_index, argv[1], now):
        return errors.WRONGTYPE
    return argv


def getset(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    old = None
    if rec is not None:
        if not _is_string(rec):
            return errors.WRONGTYPE
        old = record_body(rec)
    sm.put(db, key, STRING_NO_EXPIRE + argv[2], rec)
    return old


def getdel(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        return None
    if not _is_string(rec):
        return errors.WRONGTYPE
    sm.delete(db, key, rec)
    return record_body(rec)


def prepare_getex(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    parsed = parse_extended_options(argv, 2, False)
    if isinstance(parsed, ErrorReply):
        return parsed
    flags, expire = parsed
    key = argv[1]
    canonical = [b"getex", key]
    if expire is not None:
        when = expire_at_ms(
            expire, bool(flags & (_EX | _EXAT)), bool(flags & (_EX | _PX)), now, "getex"
        )
        if isinstance(when, ErrorReply):
            canonical += (b"ERR", errors.message_bytes(when))
        else:
            canonical += (b"PXAT", str(when).encode())
    elif flags & _PERSIST:
        canonical.append(b"PERSIST")
    if check:
        rec = sm.lookup_read(sm.db(db_index), key, now)
        if rec is not None:
            if not _is_string(rec):
                return errors.WRONGTYPE
            if canonical[2:3] == [b"ERR"]:
                return errors.message_reply(canonical[3])
    return canonical


def getex(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        return None
    if not _is_string(rec):
        return errors.WRONGTYPE
    value = record_body(rec)
    if len(argv) == 2:
        return value
    option = argv[2]
    if option == b"ERR":
        return errors.message_reply(argv[3])
    if option == b"PXAT":
        when = int(argv[3])
        if when <= stamp:
            sm.delete(db, key, rec)
        elif when != _expire_of(rec):
            sm.put(db, key, encode_string(value, when), rec)
    elif option == b"PERSIST" and rec[0] & EXPIRE_FLAG:
        sm.put(db, key, STRING_NO_EXPIRE + value, rec)
    return value


def prepare_mset(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if len(argv) % 2 == 0:
        return errors.wrong_arity(argv[0].decode().lower())
    return argv


def mset(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    for i in range(1, len(argv), 2):
        key = argv[i]
        sm.put(db, key, STRING_NO_EXPIRE + argv[i + 1], sm.lookup_write(db, key, stamp))
    return OK


def msetnx(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    for i in range(1, len(argv), 2):
        if sm.lookup_write(db, argv[i], stamp) is not None:
            return 0
    for i in range(1, len(argv), 2):
        key = argv[i]
        sm.put(db, key, STRING_NO_EXPIRE + argv[i + 1], sm.lookup_write(db, key, stamp))
    return 1


# -- counters -------------------------------------------------------------------------------------


def _prepare_incr(delta: int) -> Prepare:
    delta_bytes = str(delta).encode()

    def prepare(
        sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
    ) -> list[bytes] | ErrorReply:
        if check and not _check_string_key(sm, db_index, argv[1], now):
            return errors.WRONGTYPE
        return [b"incrby", argv[1], delta_bytes]

    return prepare


def prepare_incrby(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    delta = parse_int(argv[2])
    if delta is None:
        return errors.NOT_INTEGER
    if check and not _check_string_key(sm, db_index, argv[1], now):
        return errors.WRONGTYPE
    return [b"incrby", argv[1], argv[2]]


def prepare_decrby(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    delta = parse_int(argv[2])
    if delta is None:
        return errors.NOT_INTEGER
    if delta == LLONG_MIN:
        return errors.DECR_OVERFLOW
    if check and not _check_string_key(sm, db_index, argv[1], now):
        return errors.WRONGTYPE
    return [b"incrby", argv[1], str(-delta).encode()]


def incrby(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    delta = parse_int(argv[2])
    if delta is None:  # only from a MULTI payload, where arguments are checked here
        return errors.NOT_INTEGER
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        value = 0
        when = 0
    else:
        code = rec[0]
        if code == T_STRING:
            current = parse_int(rec[1:])
            when = 0
        elif code & 0x7F != T_STRING:
            return errors.WRONGTYPE
        else:
            current = parse_int(rec[9:])
            when = int(I64.unpack_from(rec, 1)[0])
        if current is None:
            return errors.NOT_INTEGER
        value = current
    if (delta < 0 and value < 0 and delta < LLONG_MIN - value) or (
        delta > 0 and value > 0 and delta > LLONG_MAX - value
    ):
        return errors.INCR_OVERFLOW
    value += delta
    sm.put(db, key, encode_string(str(value).encode(), when), rec)
    return value


def prepare_incrbyfloat(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    # Redis checks the key's type before the increment, so without state checks a bad
    # increment is left for apply to report (it may have to say WRONGTYPE instead).
    if check:
        if not _check_string_key(sm, db_index, argv[1], now):
            return errors.WRONGTYPE
        if parse_long_double(argv[2]) is None:
            return errors.NOT_FLOAT
    return argv


def incrbyfloat(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    when = 0
    if rec is None:
        current = parse_long_double(b"0")
    else:
        if not _is_string(rec):
            return errors.WRONGTYPE
        current = parse_long_double(record_body(rec))
        when = _expire_of(rec)
    increment = parse_long_double(argv[2])
    if current is None or increment is None:
        return errors.NOT_FLOAT
    total = add_long_double(current, increment)
    if total is None:
        return errors.NAN_OR_INFINITY
    text = format_long_double(total)
    sm.put(db, key, encode_string(text, when), rec)
    return text


# -- APPEND / SETRANGE ----------------------------------------------------------------------------


def append(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        sm.put(db, key, STRING_NO_EXPIRE + argv[2], None)
        return len(argv[2])
    if not _is_string(rec):
        return errors.WRONGTYPE
    total = len(rec) - (9 if rec[0] & EXPIRE_FLAG else 1) + len(argv[2])
    if total > PROTO_MAX_BULK_LEN:
        return errors.STRING_TOO_LONG
    sm.put(db, key, rec + argv[2], rec)
    return total


def prepare_setrange(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    offset = parse_int(argv[2])
    if offset is None:
        return errors.NOT_INTEGER
    if offset < 0:
        return errors.OFFSET_OUT_OF_RANGE
    if check:
        if not _check_string_key(sm, db_index, argv[1], now):
            return errors.WRONGTYPE
        if argv[3] and offset + len(argv[3]) > PROTO_MAX_BULK_LEN:
            return errors.STRING_TOO_LONG
    return argv


def setrange(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    offset = parse_int(argv[2])
    if offset is None:
        return errors.NOT_INTEGER
    if offset < 0:
        return errors.OFFSET_OUT_OF_RANGE
    patch = argv[3]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        if not patch:
            return 0
        if offset + len(patch) > PROTO_MAX_BULK_LEN:
            return errors.STRING_TOO_LONG
        value = bytes(offset) + patch
        sm.put(db, key, STRING_NO_EXPIRE + value, None)
        return len(value)
    if not _is_string(rec):
        return errors.WRONGTYPE
    value = record_body(rec)
    if not patch:
        return len(value)
    if offset + len(patch) > PROTO_MAX_BULK_LEN:
        return errors.STRING_TOO_LONG
    if offset > len(value):
        value += bytes(offset - len(value))
    value = value[:offset] + patch + value[offset + len(patch) :]
    sm.put(db, key, encode_string(value, _expire_of(rec)), rec)
    return len(value)


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "get": (get, None),
    "mget": (mget, None),
    "strlen": (strlen, None),
    "getrange": (getrange, None),
    "substr": (getrange, None),
    "set": (set_, prepare_set),
    "setnx": (setnx, None),
    "setex": (set_, _prepare_setex("setex", True)),
    "psetex": (set_, _prepare_setex("psetex", False)),
    "getset": (getset, _prepare_string_key),
    "getdel": (getdel, _prepare_string_key),
    "getex": (getex, prepare_getex),
    "mset": (mset, prepare_mset),
    "msetnx": (msetnx, prepare_mset),
    "incr": (incrby, _prepare_incr(1)),
    "decr": (incrby, _prepare_incr(-1)),
    "incrby": (incrby, prepare_incrby),
    "decrby": (incrby, prepare_decrby),
    "incrbyfloat": (incrbyfloat, prepare_incrbyfloat),
    "append": (append, _prepare_string_key),
    "setrange": (setrange, prepare_setrange),
}
