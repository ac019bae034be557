"""Key and database commands: DEL UNLINK EXISTS TYPE TOUCH KEYS SCAN RANDOMKEY RENAME RENAMENX
COPY MOVE EXPIRE PEXPIRE EXPIREAT PEXPIREAT PERSIST TTL PTTL EXPIRETIME PEXPIRETIME DBSIZE
FLUSHDB FLUSHALL SWAPDB, and the internal ``#expire``.

Canonical forms produced by ``prepare`` (what the log holds):

    PEXPIREAT k when-ms [NX|XX|GT|LT]...  (EXPIRE, PEXPIRE and EXPIREAT too: absolute ms)
    FLUSHDB / FLUSHALL                    (ASYNC/SYNC dropped: both are O(1) here)
    COPY src dst DB n [REPLACE]
    #expire k                             (active expiry: delete k if expired at the stamp)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import OK, ErrorReply, SimpleString

from . import collection, errors
from .glob import compile_pattern, literal_prefix
from .layout import EXPIRE_FLAG, I64, T_STRING, TYPE_NAMES, prefix_end, with_expire
from .numbers import INT_MAX, INT_MIN, LLONG_MAX, LLONG_MIN, parse_int
from .scanning import parse_scan_cursor, parse_scan_options

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine

_TYPE_REPLIES: Final = {code: SimpleString(name) for code, name in TYPE_NAMES.items()}
_NONE: Final = SimpleString(b"none")
_SECONDS_LIMIT: Final = LLONG_MAX // 1000  # C: LLONG_MAX / 1000
_SECONDS_LOWER: Final = -(-LLONG_MIN // 1000)  # C: LLONG_MIN / 1000 (truncates toward 0)


def _expire_of(rec: bytes) -> int:
    return int(I64.unpack_from(rec, 1)[0]) if rec[0] & EXPIRE_FLAG else 0


def _c_string(arg: bytes) -> bytes:
    nul = arg.find(b"\0")
    return arg if nul < 0 else arg[:nul]


def _parse_c_int(arg: bytes) -> int | None:
    """getIntFromObjectOrReply: a long long that fits a C int."""
    value = parse_int(arg)
    if value is None or not INT_MIN <= value <= INT_MAX:
        return None
    return value


def _alive(rec: bytes, now: int) -> bool:
    return not rec[0] & EXPIRE_FLAG or now <= I64.unpack_from(rec, 1)[0]


# -- existence and type (reads) -------------------------------------------------------------------


def exists(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    lookup = sm.lookup_read
    return sum(1 for key in argv[1:] if lookup(db, key, now) is not None)


def type_(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    rec = sm.lookup_read(db, argv[1], now)
    if rec is None:
        return _NONE
    return _TYPE_REPLIES.get(rec[0] & 0x7F, _NONE)


def dbsize(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    return sm.key_count(db)


def keys(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    pattern = argv[1]
    match = compile_pattern(pattern)
    prefix = literal_prefix(pattern) if match is not None else b""
    stop = prefix_end(prefix) if prefix else None
    out = []
    for key, rec in sm.iterate_keys(db, prefix, stop):
        if (match is None or match(key)) and _alive(rec, now):
            out.append(key)
    return out


def scan(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    cursor = parse_scan_cursor(argv[1])
    if cursor is None:
        return errors.INVALID_CURSOR
    options = parse_scan_options(argv, 2, allow_type=True)
    if isinstance(options, ErrorReply):
        return options
    count, pattern, type_name = options
    match = compile_pattern(pattern) if pattern is not None else None
    start = sm.cursor_position(cursor, db)
    stop: bytes | None = None
    if match is not None and pattern is not None:
        prefix = literal_prefix(pattern)
        if prefix:
            start = max(start, prefix)
            stop = prefix_end(prefix)
    found: list[bytes] = []
    examined = 0
    last: bytes | None = None
    exhausted = True
    if stop is None or start < stop:
        for key, rec in sm.iterate_keys(db, start, stop):
            if examined >= count:
                exhausted = False
                break
            examined += 1
            last = key
            if match is not None and not match(key):
                continue
            if not _alive(rec, now):
                continue
            if type_name is not None and TYPE_NAMES.get(rec[0] & 0x7F) != type_name:
                continue
            found.append(key)
    if exhausted or last is None:
        return [b"0", found]
    return [str(sm.new_cursor(db, last)).encode(), found]


def randomkey(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    """A key picked at a random point of the key order (not uniform: gaps weigh more)."""
    if sm.key_count(db) == 0:
        return None
    first = last = None
    for key, _ in sm.iterate_keys(db):
        first = key
        break
    if first is None:
        return None
    for key, _ in sm.iterate_keys_reverse(db):
        last = key
        break
    assert last is not None
    lo = int.from_bytes(first[:8].ljust(8, b"\x00"), "big")
    hi = int.from_bytes(last[:8].ljust(8, b"\xff"), "big")
    for _ in range(5):
        target = (lo + sm.random_bits(64) % (hi - lo + 1)).to_bytes(8, "big")
        examined = 0
        for key, rec in sm.iterate_keys(db, target):
            if _alive(rec, now):
                return key
            examined += 1
            if examined >= 64:
                break
        for key, rec in sm.iterate_keys(db, b"", target):
            if _alive(rec, now):
                return key
            examined += 1
            if examined >= 128:
                break
    return None


# -- TTL family (reads) ---------------------------------------------------------------------------


def _ttl_handler(milliseconds: bool, absolute: bool) -> Handler:
    def handler(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
        rec = sm.lookup_read(db, argv[1], now)
        if rec is None:
            return -2
        when = _expire_of(rec)
        if not when:
            return -1
        ttl = when if absolute else when - now
        ttl = max(ttl, 0)
        return ttl if milliseconds else (ttl + 500) // 1000

    return handler


# -- deletes --------------------------------------------------------------------------------------


def delete(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    deleted = 0
    for key in argv[1:]:
        rec = sm.lookup_write(db, key, stamp)
        if rec is not None:
            sm.delete(db, key, rec)
            deleted += 1
    return deleted


def expire_if_needed(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """#expire k: delete k only if its expiry has passed at this entry's stamp."""
    key = argv[1]
    rec = sm.get_raw(db.data + key)
    if rec is not None and rec[0] & EXPIRE_FLAG and stamp > I64.unpack_from(rec, 1)[0]:
        sm.delete(db, key, rec)
        return 1
    return 0


# -- EXPIRE family (writes) -----------------------------------------------------------------------

_EXPIRE_FLAGS: Final = {b"nx": b"NX", b"xx": b"XX", b"gt": b"GT", b"lt": b"LT"}


def _prepare_expire(name: str, seconds: bool, relative: bool) -> Prepare:
    def prepare(
        sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
    ) -> list[bytes] | ErrorReply:
        flags: list[bytes] = []
        for opt in argv[3:]:
            token = _EXPIRE_FLAGS.get(_c_string(opt).lower())
            if token is None:
                return errors.unsupported_option(_c_string(opt))
            if token not in flags:
                flags.append(token)
        nx = b"NX" in flags
        if nx and (b"XX" in flags or b"GT" in flags or b"LT" in flags):
            return errors.EXPIRE_NX_COMBINATION
        if b"GT" in flags and b"LT" in flags:
            return errors.EXPIRE_GT_LT
        when = parse_int(argv[2])
        if when is None:
            return errors.NOT_INTEGER
        if seconds:
            if when > _SECONDS_LIMIT or when < _SECONDS_LOWER:
                return errors.invalid_expire(name)
            when *= 1000
        base = now if relative else 0
        if when > LLONG_MAX - base:
            return errors.invalid_expire(name)
        when += base
        return [b"pexpireat", argv[1], str(when).encode(), *flags]

    return prepare


def pexpireat(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    when = int(argv[2])
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        return 0
    flags = argv[3:]
    if flags:
        current = _expire_of(rec) or -1
        if b"NX" in flags and current != -1:
            return 0
        if b"XX" in flags and current == -1:
            return 0
        if b"GT" in flags and (when <= current or current == -1):
            return 0
        if b"LT" in flags and current != -1 and when >= current:
            return 0
    if when <= stamp:
        sm.delete(db, key, rec)
        return 1
    if when != _expire_of(rec):
        sm.put(db, key, with_expire(rec, when), rec)
    return 1


def persist(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None or not rec[0] & EXPIRE_FLAG:
        return 0
    sm.put(db, key, with_expire(rec, 0), rec)
    return 1


# -- RENAME / COPY / MOVE -------------------------------------------------------------------------


def _copy_record(sm: StateMachine, db: Db, key: bytes, rec: bytes) -> bytes:
    """A record for an independent copy of the value ``rec`` holds (a collection's members
    are copied under a new version)."""
    if rec[0] & 0x7F == T_STRING:
        return rec
    return collection.copy_record(sm, db, key, rec)


def _rename(nx: bool) -> Handler:
    def handler(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        src, dst = argv[1], argv[2]
        rec = sm.lookup_write(db, src, stamp)
        if rec is None:
            return errors.NO_SUCH_KEY
        if src == dst:
            return 0 if nx else OK
        existing = sm.lookup_write(db, dst, stamp)
        if existing is not None:
            if nx:
                return 0
            sm.delete(db, dst, existing)
        sm.put(db, dst, rec, None)
        sm.list_written(db, dst, rec)
        sm.delete(db, src, rec, keep_members=True)
        return 1 if nx else OK

    return handler


def _parse_copy(argv: list[bytes], db_index: int, databases: int) -> tuple[int, bool] | ErrorReply:
    target = db_index
    replace = False
    j = 3
    n = len(argv)
    while j < n:
        opt = _c_string(argv[j]).lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and n - j - 1 >= 1:
            value = _parse_c_int(argv[j + 1])
            if value is None:
                return errors.NOT_INTEGER
            if not 0 <= value < databases:
                return errors.DB_OUT_OF_RANGE
            target = value
            j += 1
        else:
            return errors.SYNTAX
        j += 1
    if target == db_index and argv[1] == argv[2]:
        return errors.SAME_OBJECT
    return target, replace


def prepare_copy(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    parsed = _parse_copy(argv, db_index, sm.databases)
    if isinstance(parsed, ErrorReply):
        return parsed
    target, replace = parsed
    canonical = [b"copy", argv[1], argv[2], b"DB", str(target).encode()]
    if replace:
        canonical.append(b"REPLACE")
    return canonical


def copy(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    parsed = _parse_copy(argv, db.index, sm.databases)
    if isinstance(parsed, ErrorReply):
        return parsed
    target, replace = parsed
    src, dst = argv[1], argv[2]
    rec = sm.lookup_write(db, src, stamp)
    if rec is None:
        return 0
    dst_db = sm.db(target)
    existing = sm.lookup_write(dst_db, dst, stamp)
    if existing is not None and not replace:
        return 0
    new = _copy_record(sm, db, src, rec)
    if existing is not None:
        sm.delete(dst_db, dst, existing)
    sm.put(dst_db, dst, new, None)
    sm.list_written(dst_db, dst, new)
    return 1


def _parse_move(argv: list[bytes], db_index: int, databases: int) -> int | ErrorReply:
    target = _parse_c_int(argv[2])
    if target is None:
        return errors.NOT_INTEGER
    if not 0 <= target < databases:
        return errors.DB_OUT_OF_RANGE
    if target == db_index:
        return errors.SAME_OBJECT
    return target


def prepare_move(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    parsed = _parse_move(argv, db_index, sm.databases)
    if isinstance(parsed, ErrorReply):
        return parsed
    return [b"move", argv[1], str(parsed).encode()]


def move(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    target = _parse_move(argv, db.index, sm.databases)
    if isinstance(target, ErrorReply):
        return target
    key = argv[1]
    rec = sm.lookup_write(db, key, stamp)
    if rec is None:
        return 0
    dst_db = sm.db(target)
    if sm.lookup_write(dst_db, key, stamp) is not None:
        return 0
    sm.put(dst_db, key, rec, None)
    sm.list_written(dst_db, key, rec)
    sm.delete(db, key, rec, keep_members=True)
    return 1


# -- databases ------------------------------------------------------------------------------------


def prepare_flush(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if len(argv) > 2 or (len(argv) == 2 and _c_string(argv[1]).lower() not in (b"sync", b"async")):
        return errors.SYNTAX
    return [argv[0]]


def flushdb(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    sm.flush_db(db.index)
    return OK


def flushall(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    for index in range(sm.databases):
        sm.flush_db(index)
    return OK


def _parse_swapdb(argv: list[bytes], databases: int) -> tuple[int, int] | ErrorReply:
    first = _parse_c_int(argv[1])
    if first is None:
        return errors.INVALID_FIRST_DB
    second = _parse_c_int(argv[2])
    if second is None:
        return errors.INVALID_SECOND_DB
    if not (0 <= first < databases and 0 <= second < databases):
        return errors.DB_OUT_OF_RANGE
    return first, second


def prepare_swapdb(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    parsed = _parse_swapdb(argv, sm.databases)
    if isinstance(parsed, ErrorReply):
        return parsed
    return [b"swapdb", str(parsed[0]).encode(), str(parsed[1]).encode()]


def swapdb(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    parsed = _parse_swapdb(argv, sm.databases)
    if isinstance(parsed, ErrorReply):
        return parsed
    sm.swap_dbs(*parsed)
    return OK


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "exists": (exists, None),
    "touch": (exists, None),
    "type": (type_, None),
    "dbsize": (dbsize, None),
    "keys": (keys, None),
    "scan": (scan, None),
    "randomkey": (randomkey, None),
    "ttl": (_ttl_handler(False, False), None),
    "pttl": (_ttl_handler(True, False), None),
    "expiretime": (_ttl_handler(False, True), None),
    "pexpiretime": (_ttl_handler(True, True), None),
    "del": (delete, None),
    "unlink": (delete, None),
    "expire": (pexpireat, _prepare_expire("expire", True, True)),
    "pexpire": (pexpireat, _prepare_expire("pexpire", False, True)),
    "expireat": (pexpireat, _prepare_expire("expireat", True, False)),
    "pexpireat": (pexpireat, _prepare_expire("pexpireat", False, False)),
    "persist": (persist, None),
    "rename": (_rename(False), None),
    "renamenx": (_rename(True), None),
    "copy": (copy, prepare_copy),
    "move": (move, prepare_move),
    "flushdb": (flushdb, prepare_flush),
    "flushall": (flushall, prepare_flush),
    "swapdb": (swapdb, prepare_swapdb),
}

INTERNAL: dict[bytes, Handler] = {b"#expire": expire_if_needed}
