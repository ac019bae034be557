"""The collection foundation (respkv.kv.collection): key record format, members through the
batch overlay, size, deletion when empty, WRONGTYPE, COPY/RENAME/MOVE and garbage collection.

Each test runs on MemoryBackend and on RocksDB. The tests run their own code inside ``StateMachine.apply`` through a test-only internal
command (``#test``) registered in the appliers table, so no collection command is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import collection, commands, layout
from respkv.kv.backend import Backend
from respkv.kv.collection import Collection
from respkv.kv.payload import encode_transaction
from respkv.kv.statemachine import Db, StateMachine
from respkv.resp.replies import ErrorReply
from respkv.storage import Store

NOW = 1_700_000_000_000
T = layout.T_HASH

Step = Callable[[StateMachine, Db, int], Any]


class Harness:
    """Runs Python steps inside apply: each step is one '#test' command of a payload."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend: Backend | None = None) -> None:
        self.kv = Driver(backend=backend)
        self.steps: dict[bytes, Step] = {}
        monkeypatch.setitem(commands.APPLIERS, b"#test", self._run)

    def _run(self, sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
        return self.steps.pop(argv[1])(sm, db, stamp)

    def batch(self, *steps: Step, now: int = NOW, db: int = 0) -> list[Any]:
        """All steps in one transaction payload, hence one apply and one overlay."""
        cmds: list[tuple[int, list[bytes]]] = []
        for step in steps:
            token = b"%d" % id(step)
            self.steps[token] = step
            cmds.append((db, [b"#test", token]))
        (replies,) = self.kv.apply([encode_transaction(now, cmds)])
        return list(replies)

    def run(self, step: Step, now: int = NOW) -> Any:
        return self.batch(step, now=now)[0]

    def call(self, *args: bytes | str, db: int = 0, now: int = NOW) -> Any:
        return normalize(self.kv.call(list(args), db, now))


@pytest.fixture(params=["memory", "rocksdb"])
def h(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Harness]:
    if request.param == "memory":
        yield Harness(monkeypatch)
        return
    store = Store.open(tmp_path / "db", 1)
    try:
        yield Harness(monkeypatch, store.keyspace)
    finally:
        store.close()


def add_members(key: bytes, members: dict[bytes, bytes]) -> Step:
    def step(sm: StateMachine, db: Db, stamp: int) -> Any:
        c = collection.open_or_create(sm, db, key, stamp, T)
        assert isinstance(c, Collection)
        added = sum(c.add(m, v) for m, v in members.items())
        c.store()
        return added

    return step


def remove_members(key: bytes, members: list[bytes]) -> Step:
    def step(sm: StateMachine, db: Db, stamp: int) -> Any:
        c = collection.open_write(sm, db, key, stamp, T)
        if not isinstance(c, Collection):
            return c
        removed = sum(c.remove(m) for m in members)
        c.store()
        return removed

    return step


def read_all(
    key: bytes, *, reverse: bool = False, lo: bytes = b"", hi: bytes | None = None
) -> Step:
    def step(sm: StateMachine, db: Db, stamp: int) -> Any:
        c = collection.open_read(sm, db, key, stamp, T)
        if not isinstance(c, Collection):
            return c
        return (c.size, list(c.members(lo, hi, reverse=reverse)))

    return step


def record(h: Harness, key: bytes, db: int = 0) -> bytes | None:
    sm = h.kv.sm
    return sm.get_raw(sm.db(db).data + key)


def members_stored(h: Harness) -> list[bytes]:
    return [k for k, _ in h.kv.backend.iterate(layout.MEMBERS, layout.prefix_end(layout.MEMBERS))]


def test_record_format_round_trips() -> None:
    kv = Driver()
    db = kv.sm.db(0)
    c = Collection(kv.sm, db, b"k", T, b"\x00" * 7 + b"\x05", size=3, changes=9, extra=b"xy")
    raw = c.encode()
    assert (
        raw == bytes([T]) + b"\x00" * 7 + b"\x05" + layout.U64.pack(3) + layout.U64.pack(9) + b"xy"
    )
    back = Collection.decode(kv.sm, db, b"k", raw)
    assert (back.code, back.version, back.size, back.changes, back.extra, back.expire_at) == (
        T, c.version, 3, 9, b"xy", 0,
    )  # fmt: skip
    c.expire_at = NOW
    raw = c.encode()
    assert raw[0] == T | layout.EXPIRE_FLAG
    assert layout.record_expire(raw) == NOW
    back = Collection.decode(kv.sm, db, b"k", raw)
    assert (back.version, back.size, back.changes, back.extra, back.expire_at) == (
        c.version, 3, 9, b"xy", NOW,
    )  # fmt: skip


def test_add_remove_size_and_delete_when_empty(h: Harness) -> None:
    assert h.run(add_members(b"h", {b"b": b"2", b"a": b"1", b"c": b"3"})) == 3
    assert h.call("TYPE", "h") == b"hash"
    assert h.call("DBSIZE") == 1
    assert h.run(read_all(b"h")) == (3, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    assert h.run(read_all(b"h", reverse=True)) == (3, [(b"c", b"3"), (b"b", b"2"), (b"a", b"1")])
    assert h.run(read_all(b"h", lo=b"b")) == (3, [(b"b", b"2"), (b"c", b"3")])
    assert h.run(read_all(b"h", hi=b"c", reverse=True)) == (3, [(b"b", b"2"), (b"a", b"1")])
    assert h.run(add_members(b"h", {b"a": b"one", b"d": b"4"})) == 1  # one new, one updated
    assert h.run(read_all(b"h"))[0] == 4
    assert h.run(remove_members(b"h", [b"a", b"zz"])) == 1
    assert h.run(remove_members(b"h", [b"b", b"c", b"d"])) == 3
    assert h.call("EXISTS", "h") == 0  # Redis deletes an empty collection
    assert h.call("DBSIZE") == 0
    assert h.run(read_all(b"h")) is None
    assert members_stored(h) == []


def test_every_change_changes_the_key_record(h: Harness) -> None:
    h.run(add_members(b"h", {b"f": b"1"}))
    first = record(h, b"h")
    h.run(add_members(b"h", {b"f": b"2"}))  # same size, new value
    second = record(h, b"h")
    assert first is not None and second is not None and first != second
    h.run(remove_members(b"h", [b"nope"]))  # nothing changed: the record stays
    assert record(h, b"h") == second


def test_overlay_within_one_batch(h: Harness) -> None:
    """Later steps of one apply see earlier members, removals and the deletion of the key."""
    h.run(add_members(b"h", {b"a": b"1", b"c": b"3", b"e": b"5"}))
    replies = h.batch(
        add_members(b"h", {b"b": b"2", b"d": b"4"}),
        remove_members(b"h", [b"c"]),
        read_all(b"h"),
        read_all(b"h", reverse=True),
        remove_members(b"h", [b"a", b"b", b"d", b"e"]),
        read_all(b"h"),
        add_members(b"h", {b"x": b"new"}),
        read_all(b"h"),
    )
    assert replies[2] == (4, [(b"a", b"1"), (b"b", b"2"), (b"d", b"4"), (b"e", b"5")])
    assert replies[3] == (4, [(b"e", b"5"), (b"d", b"4"), (b"b", b"2"), (b"a", b"1")])
    assert replies[5] is None
    assert replies[7] == (1, [(b"x", b"new")])
    # Recreated under a new version; the old members are left to the garbage collector.
    assert h.run(read_all(b"h")) == (1, [(b"x", b"new")])
    h.kv.sm.collect_garbage()
    assert len(members_stored(h)) == 1


def test_iterate_raw_merges_overlay_in_both_directions(h: Harness) -> None:
    h.run(add_members(b"h", {b"b": b"", b"d": b"", b"f": b""}))

    def step(sm: StateMachine, db: Db, stamp: int) -> Any:
        c = collection.open_write(sm, db, b"h", stamp, T)
        assert isinstance(c, Collection)
        c.add(b"a")
        c.add(b"e")
        c.add(b"g")
        c.remove(b"d")
        c.add(b"f", b"F")
        forward = [m for m, _ in c.members()]
        backward = [m for m, _ in c.members(reverse=True)]
        middle = [m for m, _ in c.members(b"b", b"f", reverse=True)]
        values = dict(c.members())
        c.store()
        return forward, backward, middle, values[b"f"], c.size

    forward, backward, middle, f_value, size = h.run(step)
    assert forward == [b"a", b"b", b"e", b"f", b"g"]
    assert backward == forward[::-1]
    assert middle == [b"e", b"b"]
    assert f_value == b"F"
    assert size == 5


def test_wrongtype(h: Harness) -> None:
    h.call("SET", "s", "v")
    assert h.run(read_all(b"s")) == ErrorReply(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )
    assert h.run(remove_members(b"s", [b"x"])) == ErrorReply(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )

    def other_type(sm: StateMachine, db: Db, stamp: int) -> Any:
        return collection.open_or_create(sm, db, b"h", stamp, layout.T_SET)

    h.run(add_members(b"h", {b"a": b""}))
    assert isinstance(h.run(other_type), ErrorReply)
    assert h.call("GET", "h") == (
        "error",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )


def test_create_replacing_another_key(h: Harness) -> None:
    h.call("SET", "dst", "string", "PX", "100000")

    def store_into(members: list[bytes]) -> Step:
        def step(sm: StateMachine, db: Db, stamp: int) -> Any:
            old = sm.lookup_write(db, b"dst", stamp)
            c = collection.create(sm, db, b"dst", layout.T_SET, replacing=old)
            for m in members:
                c.add(m)
            c.store()
            return c.size

        return step

    assert h.run(store_into([b"x", b"y"])) == 2
    assert h.call("TYPE", "dst") == b"set"
    assert h.call("TTL", "dst") == -1  # the new value has no expiry
    assert h.kv.sm.expired_keys(NOW + 10**9, 10) == []  # and no stale expiry index entry
    assert h.run(store_into([])) == 0
    assert h.call("EXISTS", "dst") == 0  # an empty result deletes the destination
    assert h.call("DBSIZE") == 0


def test_expired_collection_is_absent_and_replaced_on_write(h: Harness) -> None:
    h.run(add_members(b"h", {b"a": b"1", b"b": b"2"}))
    assert h.call("PEXPIRE", "h", "1000") == 1
    assert h.call("PTTL", "h") == 1000
    assert h.run(read_all(b"h"))[0] == 2
    later = NOW + 2000
    assert h.call("EXISTS", "h", now=later) == 0
    assert h.batch(read_all(b"h"), now=later) == [None]
    assert h.batch(add_members(b"h", {b"c": b"3"}), read_all(b"h"), now=later) == [
        1,
        (1, [(b"c", b"3")]),
    ]
    assert h.call("TTL", "h", now=later) == -1
    h.kv.sm.collect_garbage()
    assert len(members_stored(h)) == 1


def test_rename_move_keep_members_copy_duplicates_them(h: Harness) -> None:
    h.run(add_members(b"h", {b"a": b"1", b"b": b"2"}))
    assert h.call("RENAME", "h", "h2") == b"OK"
    assert h.run(read_all(b"h2")) == (2, [(b"a", b"1"), (b"b", b"2")])
    assert h.call("MOVE", "h2", "1") == 1
    assert h.call("COPY", "h2", "c", "DB", "0") == 0  # not in db 0 any more
    assert h.call("COPY", "h2", "c", db=1) == 1
    assert h.call("COPY", "h2", "c0", "DB", "0", db=1) == 1
    h.kv.sm.collect_garbage()
    assert len(members_stored(h)) == 6  # three independent collections of two
    # Changing the copy leaves the original alone.
    assert h.batch(add_members(b"c", {b"z": b""}), db=1) == [1]
    assert h.batch(read_all(b"h2"), db=1) == [(2, [(b"a", b"1"), (b"b", b"2")])]
    assert h.batch(read_all(b"c"), db=1)[0][0] == 3
    assert h.call("DEL", "h2", db=1) == 1
    h.kv.sm.collect_garbage()
    assert len(members_stored(h)) == 5
    assert h.run(read_all(b"c0")) == (2, [(b"a", b"1"), (b"b", b"2")])


def test_copy_replace_and_expiry_are_kept(h: Harness) -> None:
    h.run(add_members(b"h", {b"a": b"1"}))
    h.call("PEXPIRE", "h", "50000")
    h.run(add_members(b"d", {b"old": b"x"}))
    assert h.call("COPY", "h", "d") == 0
    assert h.call("COPY", "h", "d", "REPLACE") == 1
    assert h.run(read_all(b"d")) == (1, [(b"a", b"1")])
    assert h.call("PTTL", "d") == 50000
    h.kv.sm.collect_garbage()
    assert len(members_stored(h)) == 2


def _garbage_rounds(sm: StateMachine, limit: int) -> Iterator[int]:
    while sm.collect_garbage(limit):
        yield 1


def test_garbage_collection_of_a_deleted_big_collection(h: Harness) -> None:
    n = 5000
    for start in range(0, n, 1000):
        h.run(add_members(b"big", {b"m%05d" % i: b"v" for i in range(start, start + 1000)}))
    assert h.run(read_all(b"big"))[0] == n
    assert len(members_stored(h)) == n
    before = record(h, b"big")
    assert before is not None and len(before) < 64  # the key record stays small
    assert h.call("DEL", "big") == 1
    assert len(members_stored(h)) == n  # DEL is O(1): members are left to the collector
    rounds = sum(_garbage_rounds(h.kv.sm, 700))
    assert rounds >= n // 700  # bounded slices, not one huge write
    assert members_stored(h) == []
    assert list(h.kv.backend.iterate(layout.GARBAGE, layout.prefix_end(layout.GARBAGE))) == []


def test_flushed_db_collections_are_collected(h: Harness) -> None:
    h.run(add_members(b"h", {b"m%d" % i: b"" for i in range(50)}))
    h.call("FLUSHALL")
    while h.kv.sm.collect_garbage(17):
        pass
    assert members_stored(h) == []


def test_scan_pages(h: Harness) -> None:
    h.run(add_members(b"h", {b"f%02d" % i: b"v%d" % i for i in range(25)}))

    def page(position: bytes, count: int, pattern: bytes | None) -> Step:
        def step(sm: StateMachine, db: Db, stamp: int) -> Any:
            c = collection.open_read(sm, db, b"h", stamp, T)
            assert isinstance(c, Collection)
            return collection.scan(c, position, count, pattern, values=True)

        return step

    last, items = h.run(page(b"", 10, None))
    assert last == b"f09" and items[:4] == [b"f00", b"v0", b"f01", b"v1"] and len(items) == 20
    last, items = h.run(page(last + b"\x00", 10, b"f1*"))
    assert last == b"f19" and items[::2] == [b"f%02d" % i for i in range(10, 20)]
    last, items = h.run(page(last + b"\x00", 10, b"*3"))
    assert last is None and items == [b"f23", b"v23"]
