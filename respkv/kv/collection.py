"""What every collection type (hash, set, list, sorted set) is built on: its key record and its
member records.

A collection's key record (``layout``) holds the header every key has (type code, optional
expiry) and then::

    version:u64  size:u64  changes:u64  extra...

``version`` names the collection's member records ``c version member-key -> value`` and is
unique across the store (``StateMachine.new_version``), so RENAME/MOVE move only the key record
and DEL/overwrite/expiry just drop it: ``StateMachine.put``/``delete`` queue the old version for
``StateMachine.collect_garbage``. ``size`` is the number of members (HLEN, SCARD...).
``changes`` counts the modifying commands applied to this collection: a command that changes a
member also rewrites the key record, so comparing the key record's bytes (WATCH) sees every
change. ``extra`` is the type's own metadata (a list's head and tail, say); member keys may be
namespaced by the type too (a sorted set can keep ``b"m" member`` and ``b"s" score member``).

Use: ``open_read`` (reads) or ``open_write`` (writes, which also deletes an expired key) or
``create``; then ``get``/``add``/``remove`` (members that count towards ``size``) or
``put``/``delete`` (raw member records, the caller keeps ``size`` right), ``members`` to
iterate in member-key byte order; finally ``store()`` once, which writes the key record (with
``changes`` bumped), or deletes the key when it became empty, as Redis does. Everything goes
through the batch overlay, so later commands of the same batch or transaction see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Final

from respkv.resp.replies import ErrorReply

from . import errors
from .glob import compile_pattern
from .layout import EXPIRE_FLAG, I64, MEMBERS, T_LIST, U64, prefix_end

if TYPE_CHECKING:
    from .commands import Prepare
    from .statemachine import Db, StateMachine

#: Bytes of version, size and changes after the key header.
FIXED_SIZE: Final = 24


class Collection:
    """An open collection: its key record decoded, changed by a command, then ``store()``d."""

    __slots__ = (
        "changes",
        "code",
        "db",
        "dirty",
        "expire_at",
        "extra",
        "key",
        "prefix",
        "record",
        "size",
        "sm",
        "version",
    )

    def __init__(
        self,
        sm: StateMachine,
        db: Db,
        key: bytes,
        code: int,
        version: bytes,
        *,
        size: int = 0,
        changes: int = 0,
        expire_at: int = 0,
        extra: bytes = b"",
        record: bytes | None = None,
    ) -> None:
        self.sm = sm
        self.db = db
        self.key = key
        self.code = code  # layout.T_HASH, ...
        self.version = version  # 8 bytes
        self.size = size  # members counted by add/remove (or kept by the caller)
        self.changes = changes
        self.expire_at = expire_at  # absolute ms, 0: none
        self.extra = extra  # type-specific metadata
        self.record = record  # the key record as stored now (None: not stored yet)
        self.prefix = MEMBERS + version
        self.dirty = False  # a member changed since open/store

    @classmethod
    def decode(cls, sm: StateMachine, db: Db, key: bytes, record: bytes) -> Collection:
        start = 9 if record[0] & EXPIRE_FLAG else 1
        size, changes = (
            U64.unpack_from(record, start + 8)[0],
            U64.unpack_from(record, start + 16)[0],
        )
        return cls(
            sm,
            db,
            key,
            record[0] & 0x7F,
            record[start : start + 8],
            size=size,
            changes=changes,
            expire_at=int(I64.unpack_from(record, 1)[0]) if start == 9 else 0,
            extra=record[start + FIXED_SIZE :],
            record=record,
        )

    def encode(self) -> bytes:
        if self.expire_at:
            head = bytes([self.code | EXPIRE_FLAG]) + I64.pack(self.expire_at)
        else:
            head = bytes([self.code])
        return b"".join(
            (head, self.version, U64.pack(self.size), U64.pack(self.changes), self.extra)
        )

    # -- members ------------------------------------------------------------------------------

    def get(self, member: bytes) -> bytes | None:
        """The member's value, or None."""
        return self.sm.get_raw(self.prefix + member)

    def put(self, member: bytes, value: bytes) -> None:
        """Write a member record; ``size`` is the caller's business."""
        self.sm.put_raw(self.prefix + member, value)
        self.dirty = True

    def delete(self, member: bytes) -> None:
        """Delete a member record; ``size`` is the caller's business."""
        self.sm.put_raw(self.prefix + member, None)
        self.dirty = True

    def add(self, member: bytes, value: bytes = b"") -> bool:
        """Set ``member`` to ``value``; True if it is new (``size`` grew)."""
        rkey = self.prefix + member
        sm = self.sm
        is_new = sm.get_raw(rkey) is None
        sm.put_raw(rkey, value)
        if is_new:
            self.size += 1
        self.dirty = True
        return is_new

    def remove(self, member: bytes) -> bool:
        """Delete ``member``; True if it was there (``size`` shrank)."""
        rkey = self.prefix + member
        sm = self.sm
        if sm.get_raw(rkey) is None:
            return False
        sm.put_raw(rkey, None)
        self.size -= 1
        self.dirty = True
        return True

    def members(
        self, lo: bytes = b"", hi: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """(member, value) with lo <= member < hi (hi None: no bound) in byte order, descending
        if ``reverse``; this batch's writes included. Safe to change members meanwhile."""
        prefix = self.prefix
        stop = prefix_end(prefix) if hi is None else prefix + hi
        cut = len(prefix)
        for rkey, value in self.sm.iterate_raw(prefix + lo, stop, reverse=reverse):
            yield rkey[cut:], value

    # -- the key record -----------------------------------------------------------------------

    def store(self) -> None:
        """Write the key record if a member changed (``changes`` + 1), or delete the key if the
        collection is now empty. Call once at the end of a modifying command."""
        if not self.dirty:
            return
        self.dirty = False
        self.changes += 1
        sm = self.sm
        if self.size <= 0:
            if self.record is not None:
                sm.delete(self.db, self.key, self.record)
                self.record = None
            return
        record = self.encode()
        sm.put(self.db, self.key, record, self.record)
        self.record = record
        if sm.list_writes is not None and self.code == T_LIST:
            sm.list_writes.add((self.db.index, self.key))


def open_read(
    sm: StateMachine, db: Db, key: bytes, now: int, code: int
) -> Collection | ErrorReply | None:
    """The live collection at ``key`` for a read; None if absent or expired, WRONGTYPE if the
    key holds another type."""
    record = sm.lookup_read(db, key, now)
    if record is None:
        return None
    if record[0] & 0x7F != code:
        return errors.WRONGTYPE
    return Collection.decode(sm, db, key, record)


def open_write(
    sm: StateMachine, db: Db, key: bytes, stamp: int, code: int
) -> Collection | ErrorReply | None:
    """Like ``open_read`` at the entry's stamp for a write (an expired key is deleted first)."""
    record = sm.lookup_write(db, key, stamp)
    if record is None:
        return None
    if record[0] & 0x7F != code:
        return errors.WRONGTYPE
    return Collection.decode(sm, db, key, record)


def create(
    sm: StateMachine,
    db: Db,
    key: bytes,
    code: int,
    *,
    extra: bytes = b"",
    replacing: bytes | None = None,
) -> Collection:
    """A new, empty collection for ``key`` (stored by its first ``store()`` with members).

    ``replacing``: the key's current live record of any type, which ``store()`` overwrites
    (SINTERSTORE's destination...), or deletes if the new collection stayed empty.
    """
    c = Collection(sm, db, key, code, sm.new_version(), extra=extra, record=replacing)
    if replacing is not None:
        c.dirty = True  # even empty, storing must remove what was there
    return c


def open_or_create(
    sm: StateMachine, db: Db, key: bytes, stamp: int, code: int, *, extra: bytes = b""
) -> Collection | ErrorReply:
    """The collection at ``key`` for a write, a new empty one if absent (HSET, SADD...);
    WRONGTYPE if the key holds another type."""
    c = open_write(sm, db, key, stamp, code)
    return c if c is not None else create(sm, db, key, code, extra=extra)


def copy_record(sm: StateMachine, db: Db, key: bytes, record: bytes) -> bytes:
    """The key record of an independent copy of the collection ``record`` (COPY): its members
    are copied under a fresh version; expiry and metadata are kept."""
    source = Collection.decode(sm, db, key, record)
    target = Collection(
        sm,
        db,
        key,
        source.code,
        sm.new_version(),
        size=source.size,
        changes=source.changes,
        expire_at=source.expire_at,
        extra=source.extra,
    )
    for member, value in source.members():
        target.put(member, value)
    return target.encode()


def scan(
    c: Collection, position: bytes, count: int, pattern: bytes | None, *, values: bool
) -> tuple[bytes | None, list[bytes]]:
    """One page of HSCAN/SSCAN/ZSCAN over member keys from ``position`` (a member key, b"":
    the start): (last member examined or None when the scan is complete, the reply items:
    matching members, each followed by its value if ``values``).

    Examines up to ``count`` members, like SCAN examines ``count`` keys.
    """
    match = compile_pattern(pattern) if pattern is not None else None
    found: list[bytes] = []
    examined = 0
    last: bytes | None = None
    for member, value in c.members(position):
        if examined >= count:
            return last, found
        examined += 1
        last = member
        if match is not None and not match(member):
            continue
        found.append(member)
        if values:
            found.append(value)
    return None, found


def has_type(sm: StateMachine, db_index: int, key: bytes, now: int, code: int) -> bool:
    """False if ``key`` holds a live value of another type in the applied state (prepare's
    WRONGTYPE check under ``check_state``)."""
    record = sm.lookup_read(sm.db(db_index), key, now)
    return record is None or record[0] & 0x7F == code


def type_checked_prepare(code: int) -> Prepare:
    """A ``prepare`` for commands where only WRONGTYPE (of argv[1]) can be found before apply,
    and only with ``check_state``."""

    def prepare(
        sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
    ) -> list[bytes] | ErrorReply:
        if check and not has_type(sm, db_index, argv[1], now, code):
            return errors.WRONGTYPE
        return argv

    return prepare


# -- random members (HRANDFIELD, SRANDMEMBER, SPOP) -------------------------------------------------

#: Collections up to this size are sampled exactly (uniformly); larger ones by random seeks.
EXACT_SAMPLE_SIZE: Final = 1024
_MASK64: Final = (1 << 64) - 1


def seeded_bits(seed: int) -> Callable[[int], int]:
    """A deterministic bit source (splitmix64) for choices that every replica must repeat:
    ``bits(k)`` returns a k-bit random integer."""
    state = seed & _MASK64

    def bits(k: int) -> int:
        nonlocal state
        out = 0
        produced = 0
        while produced < k:
            state = (state + 0x9E3779B97F4A7C15) & _MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
            out = (out << 64) | (z ^ (z >> 31))
            produced += 64
        return out >> (produced - k)

    return bits


def randbelow(bits: Callable[[int], int], n: int) -> int:
    """A uniform integer in [0, n) from ``bits`` (rejection sampling)."""
    k = n.bit_length()
    while True:
        r = bits(k)
        if r < n:
            return r


def random_members(
    c: Collection, count: int, bits: Callable[[int], int], *, unique: bool
) -> list[tuple[bytes, bytes]]:
    """``count`` random (member, value) of ``c``: distinct ones if ``unique`` (all of them, in
    member order, when ``count >= size``), else drawn with repetition.

    Exact and uniform up to ``EXACT_SAMPLE_SIZE`` members (or when a distinct sample is a large
    part of the collection); beyond that each draw is a random descent of the member keys'
    byte tree (``_random_descent``): a few seeks per draw, uniform when the members fill their
    byte ranges evenly (counters, ids), skewed towards members after gaps otherwise.
    Deterministic for a given state and ``bits``.
    """
    size = c.size
    if size <= 0 or count <= 0:
        return []
    if unique and count >= size:
        return list(c.members())
    if size <= EXACT_SAMPLE_SIZE or (unique and count * 4 >= size):
        everything = list(c.members())
        size = len(everything)
        if unique:
            for i in range(count):  # a partial Fisher-Yates shuffle
                j = i + randbelow(bits, size - i)
                everything[i], everything[j] = everything[j], everything[i]
            return everything[:count]
        return [everything[randbelow(bits, size)] for _ in range(count)]

    def draw() -> tuple[bytes, bytes]:
        return _random_descent(c, bits)

    if not unique:
        return [draw() for _ in range(count)]
    picked: dict[bytes, bytes] = {}
    attempts = 0
    while len(picked) < count and attempts < 8 * count + 64:
        member, value = draw()
        picked[member] = value
        attempts += 1
    if len(picked) < count:  # unlucky: fill up in member order from a random point
        start = draw()[0]
        for member, value in chain(c.members(start), c.members(b"", start)):
            if len(picked) >= count:
                break
            picked.setdefault(member, value)
    return list(picked.items())


def _random_descent(c: Collection, bits: Callable[[int], int]) -> tuple[bytes, bytes]:
    """A member found by choosing each next byte at random between the smallest and the largest
    next byte of the members under the prefix chosen so far (3 seeks per byte)."""
    prefix = b""
    while True:
        hi = prefix_end(prefix) if prefix else None
        first = next(c.members(prefix, hi), None)
        last = next(c.members(prefix, hi, reverse=True), None)
        if first is None or last is None:  # cannot happen: the prefix came from members
            raise RuntimeError("random descent lost its members")
        if first[0] == last[0]:
            return first
        depth = len(prefix)
        low = first[0][depth] if len(first[0]) > depth else -1  # -1: the prefix is a member
        byte = low + randbelow(bits, last[0][depth] - low + 1)
        if byte < 0:
            return first
        prefix += bytes([byte])
        probe = next(c.members(prefix), None)
        if probe is None:
            return first
        if not probe[0].startswith(prefix):  # no member there: take the next one
            return probe
