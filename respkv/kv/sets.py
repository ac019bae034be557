"""Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER
SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SINTERCARD SSCAN.

A set is a collection (``respkv.kv.collection``) of type ``layout.T_SET`` whose member keys are
the members (values are empty). Replies list members in byte order (Redis: hash order); RESP3
set replies use ``SetReply``.

SPOP is a write that picks members at random, and every replica must pick the same ones.
``prepare`` (on the leader) appends a 64-bit seed to the command, and the handler draws from
``collection.seeded_bits(seed)`` on the state it applies to: the state at that point of the log
is the same on every replica, so the choice is too. (Choosing the members at prepare time
instead would need a fix-up at apply, since prepare may see an older state.) The canonical
form in the log is::

    SPOP key seed [count]        (seed: 8 bytes; no count: the single-member reply)

SRANDMEMBER is a read: it uses the state machine's local ``random_bits``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from respkv.resp.replies import ErrorReply, SetReply

from . import collection, errors
from .collection import Collection
from .layout import T_SET, U64
from .numbers import LLONG_MAX, parse_int
from .scanning import scan_command

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine


def _open_read(sm: StateMachine, db: Db, key: bytes, now: int) -> Collection | ErrorReply | None:
    return collection.open_read(sm, db, key, now, T_SET)


_prepare_checked = collection.type_checked_prepare(T_SET)


# -- one set --------------------------------------------------------------------------------------


def sadd(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    s = collection.open_or_create(sm, db, argv[1], stamp, T_SET)
    if isinstance(s, ErrorReply):
        return s
    added = sum(s.add(member) for member in argv[2:])
    s.store()
    return added


def srem(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    s = collection.open_write(sm, db, argv[1], stamp, T_SET)
    if s is None or isinstance(s, ErrorReply):
        return s or 0
    removed = 0
    for member in argv[2:]:
        removed += s.remove(member)
        if s.size == 0:
            break
    s.store()
    return removed


def smembers(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    s = _open_read(sm, db, argv[1], now)
    if isinstance(s, ErrorReply):
        return s
    return SetReply([] if s is None else [member for member, _ in s.members()])


def sismember(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    s = _open_read(sm, db, argv[1], now)
    if s is None or isinstance(s, ErrorReply):
        return s or 0
    return int(s.get(argv[2]) is not None)


def smismember(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    s = _open_read(sm, db, argv[1], now)
    if isinstance(s, ErrorReply):
        return s
    if s is None:
        return [0] * (len(argv) - 2)
    return [int(s.get(member) is not None) for member in argv[2:]]


def scard(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    s = _open_read(sm, db, argv[1], now)
    if s is None or isinstance(s, ErrorReply):
        return s or 0
    return s.size


def sscan(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    return scan_command(sm, argv, db, now, T_SET, values=False)


def srandmember(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    if len(argv) > 3:
        return errors.SYNTAX
    if len(argv) == 2:
        s = _open_read(sm, db, argv[1], now)
        if s is None or isinstance(s, ErrorReply):
            return s
        picked = collection.random_members(s, 1, sm.random_bits, unique=True)
        return picked[0][0] if picked else None
    count = parse_int(argv[2])
    if count is None:
        return errors.NOT_INTEGER
    if count < -LLONG_MAX:
        return errors.COUNT_OUT_OF_RANGE
    s = _open_read(sm, db, argv[1], now)
    if s is None or isinstance(s, ErrorReply):
        return s or []
    picked = collection.random_members(s, abs(count), sm.random_bits, unique=count > 0)
    return [member for member, _ in picked]


def _parse_spop_count(argv: list[bytes]) -> int | ErrorReply | None:
    """SPOP's count argument (``argv[2]`` of the client's form): None when absent."""
    if len(argv) > 3:
        return errors.SYNTAX
    if len(argv) == 2:
        return None
    count = parse_int(argv[2])
    if count is None or count < 0:
        return errors.VALUE_OUT_OF_RANGE_POSITIVE
    return count


def prepare_spop(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    count = _parse_spop_count(argv)
    if isinstance(count, ErrorReply):
        return count
    if check and not collection.has_type(sm, db_index, argv[1], now, T_SET):
        return errors.WRONGTYPE
    seed = U64.pack(sm.random_bits(64))
    return [argv[0], argv[1], seed] if count is None else [argv[0], argv[1], seed, argv[2]]


def spop(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """SPOP key seed [count] (the canonical form ``prepare_spop`` writes)."""
    if len(argv) < 3 or len(argv[2]) != 8:
        return ErrorReply("ERR SPOP entry without a seed")
    count = None if len(argv) == 3 else parse_int(argv[3])
    s = collection.open_write(sm, db, argv[1], stamp, T_SET)
    if isinstance(s, ErrorReply):
        return s
    if count is None:
        if s is None:
            return None
        picked = collection.random_members(
            s, 1, collection.seeded_bits(U64.unpack(argv[2])[0]), unique=True
        )
    else:
        if s is None or count == 0:
            return SetReply()
        picked = collection.random_members(
            s, count, collection.seeded_bits(U64.unpack(argv[2])[0]), unique=True
        )
    for member, _ in picked:
        s.remove(member)
    s.store()
    if count is None:
        return picked[0][0]
    return SetReply(member for member, _ in picked)


def smove(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = collection.open_write(sm, db, src_key, stamp, T_SET)
    dst_record = sm.lookup_write(db, dst_key, stamp)
    if src is None:
        return 0
    if isinstance(src, ErrorReply):
        return src
    if dst_record is not None and dst_record[0] & 0x7F != T_SET:
        return errors.WRONGTYPE
    if src_key == dst_key:
        return int(src.get(member) is not None)
    if not src.remove(member):
        return 0
    src.store()
    dst = collection.open_or_create(sm, db, dst_key, stamp, T_SET)
    assert not isinstance(dst, ErrorReply)  # checked above
    dst.add(member)
    dst.store()
    return 1


# -- several sets ---------------------------------------------------------------------------------


def _open_all(
    sm: StateMachine, db: Db, keys: Iterable[bytes], now: int, *, write: bool
) -> list[Collection | None] | ErrorReply:
    """Every key's set (None: missing), or WRONGTYPE if any key holds another type (Redis
    checks them all, missing ones notwithstanding)."""
    sets: list[Collection | None] = []
    opener = collection.open_write if write else collection.open_read
    for key in keys:
        s = opener(sm, db, key, now, T_SET)
        if isinstance(s, ErrorReply):
            return s
        sets.append(s)
    return sets


def _intersection(sets: list[Collection | None], limit: int = 0) -> list[bytes]:
    """Members in every set, in byte order; stops at ``limit`` members (0: no limit)."""
    if not sets or any(s is None for s in sets):
        return []
    ordered = sorted((s for s in sets if s is not None), key=lambda s: s.size)
    smallest, others = ordered[0], ordered[1:]
    out: list[bytes] = []
    for member, _ in smallest.members():
        if all(other.get(member) is not None for other in others):
            out.append(member)
            if limit and len(out) >= limit:
                break
    return out


def _union(sets: list[Collection | None]) -> list[bytes]:
    members: set[bytes] = set()
    for s in sets:
        if s is not None:
            members.update(member for member, _ in s.members())
    return sorted(members)


def _difference(sets: list[Collection | None]) -> list[bytes]:
    first = sets[0]
    if first is None:
        return []
    others = [s for s in sets[1:] if s is not None]
    return [
        member
        for member, _ in first.members()
        if all(other.get(member) is None for other in others)
    ]


_OPERATIONS = {"sinter": _intersection, "sunion": _union, "sdiff": _difference}


def _set_operation(name: str) -> Handler:
    operation = _OPERATIONS[name]

    def handler(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
        sets = _open_all(sm, db, argv[1:], now, write=False)
        if isinstance(sets, ErrorReply):
            return sets
        return SetReply(operation(sets))

    return handler


def _store_operation(name: str) -> Handler:
    operation = _OPERATIONS[name]

    def handler(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        sets = _open_all(sm, db, argv[2:], stamp, write=True)
        if isinstance(sets, ErrorReply):
            return sets
        result = operation(sets)  # computed before the destination (maybe a source) changes
        dst_key = argv[1]
        old = sm.lookup_write(db, dst_key, stamp)
        if not result and old is None:
            return 0
        dst = collection.create(sm, db, dst_key, T_SET, replacing=old)
        for member in result:
            dst.add(member)
        dst.store()
        return len(result)

    return handler


def sintercard(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        return errors.NUMKEYS_NOT_POSITIVE
    if numkeys > len(argv) - 2:
        return errors.NUMKEYS_TOO_MANY
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv):
            value = parse_int(argv[i + 1])
            if value is None or value < 0:
                return errors.LIMIT_NEGATIVE
            limit = value
            i += 2
        else:
            return errors.SYNTAX
    sets = _open_all(sm, db, argv[2 : 2 + numkeys], now, write=False)
    if isinstance(sets, ErrorReply):
        return sets
    return len(_intersection(sets, limit))


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "sadd": (sadd, _prepare_checked),
    "srem": (srem, _prepare_checked),
    "smembers": (smembers, None),
    "sismember": (sismember, None),
    "smismember": (smismember, None),
    "scard": (scard, None),
    "spop": (spop, prepare_spop),
    "srandmember": (srandmember, None),
    "smove": (smove, None),
    "sinter": (_set_operation("sinter"), None),
    "sunion": (_set_operation("sunion"), None),
    "sdiff": (_set_operation("sdiff"), None),
    "sinterstore": (_store_operation("sinter"), None),
    "sunionstore": (_store_operation("sunion"), None),
    "sdiffstore": (_store_operation("sdiff"), None),
    "sintercard": (sintercard, None),
    "sscan": (sscan, None),
}
