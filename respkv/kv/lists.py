"""List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM
LTRIM LPOS LMOVE RPOPLPUSH, and the non-blocking forms of BLPOP BRPOP BLMOVE BRPOPLPUSH.

Record format
-------------
A list is a collection (``respkv.kv.collection``) of type ``layout.T_LIST`` whose ``extra``
metadata is ``head:i64`` (big-endian, signed): the *position* of the first element. Element
``i`` (0-based from the head) lives at position ``head + i``, in the member record

    ``c version pos(head + i) -> element``     pos(p) = u64 big-endian of p + 2**63

so positions sort as bytes in list order. ``size`` is the length, hence the tail is at
``head + size - 1``. LPUSH writes position ``head - 1`` and moves ``head``; RPUSH writes
``head + size``; LPOP/RPOP delete one end; LINDEX and LSET are one direct get/put; LRANGE is
one range scan: pushes and pops at both ends, LINDEX, LSET and LRANGE are O(log n) (plus the
output), and a push into a list of a million elements writes two small records (the element
and the key record). LINSERT shifts the shorter side by one position, LREM rewrites the
elements after the first removed one, LTRIM deletes what it cuts (a trim that empties the
list just drops the key; the garbage collector takes its members): O(n) as in Redis.

Blocking commands
-----------------
BLPOP/BRPOP/BLMOVE/BRPOPLPUSH are writes whose handlers here are their *non-blocking* forms
(as inside MULTI in Redis): pop if there is something, else answer the timeout reply (a null
array, or a null for BLMOVE/BRPOPLPUSH). Their timeouts are validated (Redis's errors) but
never waited on here: the server parks the client and proposes the command again when one of
its keys may have data (``respkv.server.blocking``). ``BLOCKING_KEYS`` tells it which keys a
blocking command waits on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import NULL_ARRAY, OK, ErrorReply

from . import collection, errors
from .collection import Collection
from .layout import I64, T_LIST, U64
from .numbers import LLONG_MAX, LLONG_MIN, _round_ratio, parse_int, parse_long_double

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine

_BIAS: Final = 1 << 63
_pack_pos = U64.pack
_EMPTY_HEAD: Final = I64.pack(0)

INDEX_OUT_OF_RANGE: Final = ErrorReply("ERR index out of range")
RANK_ZERO: Final = ErrorReply(
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)
COUNT_NEGATIVE: Final = ErrorReply("ERR COUNT can't be negative")
MAXLEN_NEGATIVE: Final = ErrorReply("ERR MAXLEN can't be negative")
TIMEOUT_NOT_FLOAT: Final = ErrorReply("ERR timeout is not a float or out of range")
TIMEOUT_NEGATIVE: Final = ErrorReply("ERR timeout is negative")
TIMEOUT_OUT_OF_RANGE: Final = ErrorReply("ERR timeout is out of range")


def _pos(position: int) -> bytes:
    return _pack_pos(position + _BIAS)


# -- the list on top of a collection ----------------------------------------------------------


def _head(c: Collection) -> int:
    return int(I64.unpack(c.extra)[0])


def _set_head(c: Collection, head: int) -> None:
    c.extra = I64.pack(head)


def _push(c: Collection, values: list[bytes], left: bool) -> None:
    head = _head(c)
    size = c.size
    if left:
        for value in values:
            head -= 1
            c.put(_pos(head), value)
        _set_head(c, head)
    else:
        for value in values:
            c.put(_pos(head + size), value)
            size += 1
    c.size += len(values)


def _pop(c: Collection, left: bool) -> bytes:
    """Remove and return one end (the list is not empty)."""
    head = _head(c)
    position = head if left else head + c.size - 1
    value = c.get(_pos(position))
    if value is None:  # pragma: no cover - a broken invariant, never silently ignored
        raise RuntimeError(f"list {c.key!r}: no element at position {position}")
    c.delete(_pos(position))
    c.size -= 1
    if left:
        _set_head(c, head + 1)
    if c.size == 0:
        _set_head(c, 0)
    return value


def _elements(c: Collection, start: int, stop: int, *, reverse: bool = False) -> Iterator[bytes]:
    """Elements at indexes start..stop (inclusive, already clamped) in order (or reversed)."""
    head = _head(c)
    for _, value in c.members(_pos(head + start), _pos(head + stop + 1), reverse=reverse):
        yield value


def _open_read(sm: StateMachine, db: Db, key: bytes, now: int) -> Collection | ErrorReply | None:
    return collection.open_read(sm, db, key, now, T_LIST)


def _open_write(sm: StateMachine, db: Db, key: bytes, stamp: int) -> Collection | ErrorReply | None:
    return collection.open_write(sm, db, key, stamp, T_LIST)


def _open_or_create(sm: StateMachine, db: Db, key: bytes, stamp: int) -> Collection | ErrorReply:
    return collection.open_or_create(sm, db, key, stamp, T_LIST, extra=_EMPTY_HEAD)


_prepare_checked = collection.type_checked_prepare(T_LIST)


def _range(start: int, stop: int, size: int) -> tuple[int, int] | None:
    """Redis's LRANGE/LTRIM index arithmetic: the inclusive clamped range, None if empty."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    if start < 0:
        start = 0
    if start > stop or start >= size:
        return None
    return start, min(stop, size - 1)


# -- reads ----------------------------------------------------------------------------------------


def llen(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    c = _open_read(sm, db, argv[1], now)
    if c is None or isinstance(c, ErrorReply):
        return c or 0
    return c.size


def lindex(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    c = _open_read(sm, db, argv[1], now)
    if c is None or isinstance(c, ErrorReply):
        return c
    index = parse_int(argv[2])
    if index is None:
        return errors.NOT_INTEGER
    if index < 0:
        index += c.size
    if not 0 <= index < c.size:
        return None
    return c.get(_pos(_head(c) + index))


def lrange(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    start, stop = parse_int(argv[2]), parse_int(argv[3])
    if start is None or stop is None:
        return errors.NOT_INTEGER
    c = _open_read(sm, db, argv[1], now)
    if c is None or isinstance(c, ErrorReply):
        return c or []
    bounds = _range(start, stop, c.size)
    if bounds is None:
        return []
    return list(_elements(c, *bounds))


def lpos(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    rank, count, maxlen = 1, -1, 0
    j = 3
    while j < len(argv):
        option = argv[j].lower()
        more = j + 1 < len(argv)
        if option == b"rank" and more:
            j += 1
            parsed = parse_int(argv[j])
            if parsed is None:
                return errors.NOT_INTEGER
            if parsed == 0:
                return RANK_ZERO
            rank = parsed
        elif option == b"count" and more:
            j += 1
            parsed = parse_int(argv[j])
            if parsed is None or parsed < 0:
                return COUNT_NEGATIVE
            count = parsed
        elif option == b"maxlen" and more:
            j += 1
            parsed = parse_int(argv[j])
            if parsed is None or parsed < 0:
                return MAXLEN_NEGATIVE
            maxlen = parsed
        else:
            return errors.SYNTAX
        j += 1
    c = _open_read(sm, db, argv[1], now)
    if isinstance(c, ErrorReply):
        return c
    if c is None:
        return [] if count != -1 else None
    reverse = rank < 0
    # Redis negates a negative rank in C: LLONG_MIN stays negative, so every match counts
    # and the COUNT limit is never reached.
    every = rank == LLONG_MIN
    if reverse and not every:
        rank = -rank
    size = c.size
    wanted = argv[2]
    found: list[int] = []
    matches = 0
    for index, element in enumerate(_elements(c, 0, size - 1, reverse=reverse)):
        if maxlen and index >= maxlen:
            break
        if element != wanted:
            continue
        matches += 1
        if not every and matches < rank:
            continue
        found.append(size - index - 1 if reverse else index)
        if count == -1 or (count and not every and matches - rank + 1 >= count):
            break
    if count != -1:
        return found
    return found[0] if found else None


# -- writes ---------------------------------------------------------------------------------------


def _push_command(left: bool, only_existing: bool) -> Handler:
    def handler(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        if only_existing:
            c = _open_write(sm, db, argv[1], stamp)
            if c is None or isinstance(c, ErrorReply):
                return c or 0
        else:
            opened = _open_or_create(sm, db, argv[1], stamp)
            if isinstance(opened, ErrorReply):
                return opened
            c = opened
        _push(c, argv[2:], left)
        c.store()
        return c.size

    return handler


def _parse_count(arg: bytes) -> int | ErrorReply:
    count = parse_int(arg)
    if count is None or count < 0:
        return errors.VALUE_OUT_OF_RANGE_POSITIVE
    return count


def prepare_pop(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if len(argv) > 3:
        return errors.wrong_arity(argv[0].decode())
    if len(argv) == 3:
        count = _parse_count(argv[2])
        if isinstance(count, ErrorReply):
            return count
    return _prepare_checked(sm, argv, db_index, now, check)


def _pop_command(left: bool) -> Handler:
    def handler(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        if len(argv) > 3:
            return errors.wrong_arity(argv[0].decode())
        count = _parse_count(argv[2]) if len(argv) == 3 else None
        if isinstance(count, ErrorReply):
            return count
        c = _open_write(sm, db, argv[1], stamp)
        if c is None or isinstance(c, ErrorReply):
            return c or (None if count is None else NULL_ARRAY)
        if count is None:
            value = _pop(c, left)
            c.store()
            return value
        if count == 0:
            return []
        popped = [_pop(c, left) for _ in range(min(count, c.size))]
        c.store()
        return popped

    return handler


def lset(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    c = _open_write(sm, db, argv[1], stamp)
    if c is None:
        return errors.NO_SUCH_KEY
    if isinstance(c, ErrorReply):
        return c
    index = parse_int(argv[2])
    if index is None:
        return errors.NOT_INTEGER
    if index < 0:
        index += c.size
    if not 0 <= index < c.size:
        return INDEX_OUT_OF_RANGE
    c.put(_pos(_head(c) + index), argv[3])
    c.store()
    return OK


def _parse_where(arg: bytes) -> bool | None:
    """BEFORE -> True, AFTER -> False."""
    where = arg.lower()
    if where == b"before":
        return True
    if where == b"after":
        return False
    return None


def prepare_linsert(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if _parse_where(argv[2]) is None:
        return errors.SYNTAX
    return _prepare_checked(sm, argv, db_index, now, check)


def linsert(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    before = _parse_where(argv[2])
    if before is None:
        return errors.SYNTAX
    c = _open_write(sm, db, argv[1], stamp)
    if c is None or isinstance(c, ErrorReply):
        return c or 0
    pivot, element = argv[3], argv[4]
    head, size = _head(c), c.size
    seen: list[bytes] = []
    for value in _elements(c, 0, size - 1):
        if value == pivot:
            break
        seen.append(value)
    else:
        return -1
    k = len(seen) if before else len(seen) + 1  # the new element's index
    if k <= size - k:  # shift the first k elements one position towards the head
        seen.append(pivot)
        for i in range(k):
            c.put(_pos(head - 1 + i), seen[i])
        head -= 1
        _set_head(c, head)
    else:  # shift elements k.. one position towards the tail
        for i, value in enumerate(list(_elements(c, k, size - 1)), start=k):
            c.put(_pos(head + i + 1), value)
    c.put(_pos(head + k), element)
    c.size += 1
    c.store()
    return c.size


def prepare_lrem(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if parse_int(argv[2]) is None:
        return errors.NOT_INTEGER
    return _prepare_checked(sm, argv, db_index, now, check)


def lrem(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    count = parse_int(argv[2])
    if count is None:
        return errors.NOT_INTEGER
    c = _open_write(sm, db, argv[1], stamp)
    if c is None or isinstance(c, ErrorReply):
        return c or 0
    wanted = argv[3]
    head, size = _head(c), c.size
    values = list(_elements(c, 0, size - 1))
    order = range(size - 1, -1, -1) if count < 0 else range(size)
    limit = abs(count) or size
    removed: set[int] = set()
    for i in order:
        if values[i] == wanted:
            removed.add(i)
            if len(removed) >= limit:
                break
    if not removed:
        return 0
    if len(removed) == size:
        c.size = 0  # the key goes; its members are left to the garbage collector
        c.dirty = True
        c.store()
        return size
    write = min(removed)
    for i in range(write, size):
        if i not in removed:
            c.put(_pos(head + write), values[i])
            write += 1
    for i in range(write, size):
        c.delete(_pos(head + i))
    c.size = write
    c.store()
    return len(removed)


def prepare_ltrim(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if parse_int(argv[2]) is None or parse_int(argv[3]) is None:
        return errors.NOT_INTEGER
    return _prepare_checked(sm, argv, db_index, now, check)


def ltrim(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    start, stop = parse_int(argv[2]), parse_int(argv[3])
    if start is None or stop is None:
        return errors.NOT_INTEGER
    c = _open_write(sm, db, argv[1], stamp)
    if c is None or isinstance(c, ErrorReply):
        return c or OK
    head, size = _head(c), c.size
    bounds = _range(start, stop, size)
    if bounds is None:
        c.size = 0  # everything goes: drop the key, the collector takes the members
        c.dirty = True
        c.store()
        return OK
    first, last = bounds
    if first == 0 and last == size - 1:
        return OK
    for i in range(first):
        c.delete(_pos(head + i))
    for i in range(last + 1, size):
        c.delete(_pos(head + i))
    _set_head(c, head + first)
    c.size = last - first + 1
    c.store()
    return OK


def _parse_side(arg: bytes) -> bool | None:
    """LEFT -> True, RIGHT -> False."""
    side = arg.lower()
    if side == b"left":
        return True
    if side == b"right":
        return False
    return None


def _move(
    sm: StateMachine, db: Db, source: bytes, destination: bytes, stamp: int, left: bool, to: bool
) -> Any:
    """LMOVE's body: None if the source is absent, else the moved element."""
    src = _open_write(sm, db, source, stamp)
    if src is None or isinstance(src, ErrorReply):
        return src
    if destination == source:
        dst: Collection = src
    else:
        opened = _open_or_create(sm, db, destination, stamp)
        if isinstance(opened, ErrorReply):
            return opened
        dst = opened
    value = _pop(src, left)
    _push(dst, [value], to)
    src.store()
    if dst is not src:
        dst.store()
    return value


def prepare_lmove(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if _parse_side(argv[3]) is None or _parse_side(argv[4]) is None:
        return errors.SYNTAX
    return _prepare_checked(sm, argv, db_index, now, check)


def lmove(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    left, to = _parse_side(argv[3]), _parse_side(argv[4])
    if left is None or to is None:
        return errors.SYNTAX
    return _move(sm, db, argv[1], argv[2], stamp, left, to)


def rpoplpush(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    return _move(sm, db, argv[1], argv[2], stamp, False, True)


# -- blocking commands, non-blocking forms ------------------------------------------------------


def parse_timeout(arg: bytes, now_ms: int) -> int | ErrorReply:
    """A blocking command's timeout in ms (0: forever), checked as Redis 7.0 does:
    ``(long long) ceill(seconds * 1000.0)`` in long double, where a value out of the long long range
    becomes LLONG_MIN on x86-64 (hence "negative"), and ``now + timeout`` must not overflow."""
    seconds = parse_long_double(arg)
    if seconds is None:
        return TIMEOUT_NOT_FLOAT
    if isinstance(seconds, str):
        ms = LLONG_MIN  # (long long) of an infinity
    else:
        num, exp = seconds
        product = (
            _round_ratio(num * 1000 << exp, 1) if exp >= 0 else _round_ratio(num * 1000, 1 << -exp)
        )
        if isinstance(product, str):
            ms = LLONG_MIN
        else:
            pnum, pexp = product
            ms = pnum << pexp if pexp >= 0 else -((-pnum) >> -pexp)  # ceill
            if not LLONG_MIN <= ms <= LLONG_MAX:
                ms = LLONG_MIN
    if ms < 0:
        return TIMEOUT_NEGATIVE
    if ms > 0 and ms > LLONG_MAX - now_ms:
        return TIMEOUT_OUT_OF_RANGE
    return ms


def prepare_bpop(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    timeout = parse_timeout(argv[-1], now)
    return timeout if isinstance(timeout, ErrorReply) else argv


def _bpop_command(left: bool) -> Handler:
    def handler(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        timeout = parse_timeout(argv[-1], stamp)
        if isinstance(timeout, ErrorReply):
            return timeout
        for key in argv[1:-1]:
            c = _open_write(sm, db, key, stamp)
            if c is None:
                continue
            if isinstance(c, ErrorReply):
                return c
            value = _pop(c, left)
            c.store()
            return [key, value]
        return NULL_ARRAY

    return handler


def prepare_blmove(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    if _parse_side(argv[3]) is None or _parse_side(argv[4]) is None:
        return errors.SYNTAX
    return prepare_bpop(sm, argv, db_index, now, check)


def blmove(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    left, to = _parse_side(argv[3]), _parse_side(argv[4])
    if left is None or to is None:
        return errors.SYNTAX
    timeout = parse_timeout(argv[5], stamp)
    if isinstance(timeout, ErrorReply):
        return timeout
    return _move(sm, db, argv[1], argv[2], stamp, left, to)


def brpoplpush(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    timeout = parse_timeout(argv[3], stamp)
    if isinstance(timeout, ErrorReply):
        return timeout
    return _move(sm, db, argv[1], argv[2], stamp, False, True)


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "lpush": (_push_command(True, False), _prepare_checked),
    "rpush": (_push_command(False, False), _prepare_checked),
    "lpushx": (_push_command(True, True), _prepare_checked),
    "rpushx": (_push_command(False, True), _prepare_checked),
    "lpop": (_pop_command(True), prepare_pop),
    "rpop": (_pop_command(False), prepare_pop),
    "llen": (llen, None),
    "lrange": (lrange, None),
    "lindex": (lindex, None),
    "lset": (lset, _prepare_checked),
    "linsert": (linsert, prepare_linsert),
    "lrem": (lrem, prepare_lrem),
    "ltrim": (ltrim, prepare_ltrim),
    "lpos": (lpos, None),
    "lmove": (lmove, prepare_lmove),
    "rpoplpush": (rpoplpush, _prepare_checked),
    "blpop": (_bpop_command(True), prepare_bpop),
    "brpop": (_bpop_command(False), prepare_bpop),
    "blmove": (blmove, prepare_blmove),
    "brpoplpush": (brpoplpush, prepare_bpop),
}

#: The keys a blocking command waits on (argv -> keys): a push to any of them wakes it.
BLOCKING_KEYS: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    b"blpop": lambda argv: argv[1:-1],
    b"brpop": lambda argv: argv[1:-1],
    b"blmove": lambda argv: argv[1:2],
    b"brpoplpush": lambda argv: argv[1:2],
}
