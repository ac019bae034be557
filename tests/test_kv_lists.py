"""List commands on the state machine (MemoryBackend), through prepare_write + apply and read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import MemoryBackend, layout
from respkv.resp.encoder import encode
from respkv.resp.replies import NULL_ARRAY

NOW = 1_700_000_000_000
WRONGTYPE = ("error", "WRONGTYPE Operation against a key holding the wrong kind of value")


@pytest.fixture
def kv() -> Driver:
    return Driver()


def call(kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW) -> object:
    return normalize(kv.call(list(args), db, now))


def items(kv: Driver, key: str = "l") -> object:
    return call(kv, "LRANGE", key, "0", "-1")


def assert_consistent(kv: Driver, key: str = "l") -> None:
    """The member records are exactly positions head..head+size-1 (no stale record)."""
    rec = kv.backend.get(kv.sm.db(0).data + key.encode())
    if rec is None:
        return
    version = rec[1:9]
    size = layout.U64.unpack(rec[9:17])[0]
    head = layout.I64.unpack(rec[25:33])[0]
    prefix = layout.MEMBERS + version
    positions = [
        layout.U64.unpack(k[9:])[0] - (1 << 63)
        for k, _ in kv.backend.iterate(prefix, prefix + b"\xff" * 9)
    ]
    assert positions == list(range(head, head + size))


def test_push_pop_both_ends(kv: Driver) -> None:
    assert call(kv, "RPUSH", "l", "a", "b") == 2
    assert call(kv, "LPUSH", "l", "x", "y") == 4
    assert items(kv) == [b"y", b"x", b"a", b"b"]
    assert call(kv, "LPUSHX", "nokey", "a") == 0
    assert call(kv, "RPUSHX", "l", "z") == 5
    assert call(kv, "LPOP", "l") == b"y"
    assert call(kv, "RPOP", "l") == b"z"
    assert call(kv, "LPOP", "l", "2") == [b"x", b"a"]
    assert call(kv, "RPOP", "l", "10") == [b"b"]
    assert call(kv, "EXISTS", "l") == 0
    assert call(kv, "TYPE", "l") == b"none"
    assert call(kv, "DBSIZE") == 0


def test_pop_count_edge_cases_and_null_shapes(kv: Driver) -> None:
    assert kv.call([b"LPOP", b"nokey"]) is None
    assert kv.call([b"LPOP", b"nokey", b"0"]) is NULL_ARRAY
    assert kv.call([b"RPOP", b"nokey", b"3"]) is NULL_ARRAY
    assert encode(kv.call([b"LPOP", b"nokey", b"1"]), 2) == b"*-1\r\n"
    assert encode(kv.call([b"LPOP", b"nokey", b"1"]), 3) == b"_\r\n"
    assert encode(kv.call([b"LPOP", b"nokey"]), 2) == b"$-1\r\n"
    call(kv, "RPUSH", "l", "a")
    assert call(kv, "LPOP", "l", "0") == []
    assert call(kv, "LPOP", "l", "-1") == ("error", "ERR value is out of range, must be positive")
    assert call(kv, "LPOP", "l", "x") == ("error", "ERR value is out of range, must be positive")
    assert call(kv, "LPOP", "l", "1", "2") == (
        "error",
        "ERR wrong number of arguments for 'lpop' command",
    )
    assert items(kv) == [b"a"]


def test_lindex_lrange_negative_and_out_of_range(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "a", "b", "c", "d")
    assert call(kv, "LINDEX", "l", "0") == b"a"
    assert call(kv, "LINDEX", "l", "-1") == b"d"
    assert call(kv, "LINDEX", "l", "-4") == b"a"
    assert call(kv, "LINDEX", "l", "-5") is None
    assert call(kv, "LINDEX", "l", "4") is None
    assert call(kv, "LINDEX", "nokey", "abc") is None  # the key first, as in Redis
    assert call(kv, "LINDEX", "l", "abc") == (
        "error",
        "ERR value is not an integer or out of range",
    )
    assert call(kv, "LRANGE", "l", "1", "2") == [b"b", b"c"]
    assert call(kv, "LRANGE", "l", "-3", "-2") == [b"b", b"c"]
    assert call(kv, "LRANGE", "l", "-100", "100") == [b"a", b"b", b"c", b"d"]
    assert call(kv, "LRANGE", "l", "5", "10") == []
    assert call(kv, "LRANGE", "l", "2", "1") == []
    assert call(kv, "LRANGE", "l", "0", "-5") == []
    assert call(kv, "LRANGE", "nokey", "0", "-1") == []
    assert call(kv, "LLEN", "l") == 4
    assert call(kv, "LLEN", "nokey") == 0


def test_lset(kv: Driver) -> None:
    assert call(kv, "LSET", "nokey", "0", "x") == ("error", "ERR no such key")
    call(kv, "RPUSH", "l", "a", "b", "c")
    assert call(kv, "LSET", "l", "-1", "C") == b"OK"
    assert call(kv, "LSET", "l", "0", "A") == b"OK"
    assert call(kv, "LSET", "l", "3", "x") == ("error", "ERR index out of range")
    assert call(kv, "LSET", "l", "-4", "x") == ("error", "ERR index out of range")
    assert items(kv) == [b"A", b"b", b"C"]


def test_linsert_both_sides_and_missing_pivot(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "a", "b", "c", "d", "e")
    assert call(kv, "LINSERT", "l", "BEFORE", "b", "X") == 6  # shifts the head side
    assert call(kv, "LINSERT", "l", "after", "d", "Y") == 7  # shifts the tail side
    assert call(kv, "LINSERT", "l", "after", "e", "Z") == 8
    assert call(kv, "LINSERT", "l", "before", "a", "W") == 9
    assert items(kv) == [b"W", b"a", b"X", b"b", b"c", b"d", b"Y", b"e", b"Z"]
    assert_consistent(kv)
    assert call(kv, "LINSERT", "l", "before", "nope", "x") == -1
    assert call(kv, "LINSERT", "nokey", "before", "a", "x") == 0
    assert call(kv, "LINSERT", "l", "middle", "a", "x") == ("error", "ERR syntax error")
    assert call(kv, "LINDEX", "l", "-1") == b"Z"
    assert call(kv, "LLEN", "l") == 9


def test_lrem_positive_negative_and_zero_counts(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "x", "a", "x", "b", "x", "c", "x")
    assert call(kv, "LREM", "l", "-2", "x") == 2
    assert items(kv) == [b"x", b"a", b"x", b"b", b"c"]
    assert call(kv, "LREM", "l", "1", "x") == 1
    assert items(kv) == [b"a", b"x", b"b", b"c"]
    assert call(kv, "LREM", "l", "0", "zz") == 0
    assert call(kv, "LREM", "l", "0", "x") == 1
    assert items(kv) == [b"a", b"b", b"c"]
    assert_consistent(kv)
    assert call(kv, "LINDEX", "l", "2") == b"c"
    assert call(kv, "RPOP", "l") == b"c"
    assert call(kv, "LREM", "l", "x", "a") == (
        "error",
        "ERR value is not an integer or out of range",
    )
    call(kv, "RPUSH", "same", "v", "v")
    assert call(kv, "LREM", "same", "0", "v") == 2
    assert call(kv, "EXISTS", "same") == 0


def test_ltrim_and_emptying_deletes_the_key(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "a", "b", "c", "d", "e")
    assert call(kv, "LTRIM", "l", "1", "-2") == b"OK"
    assert items(kv) == [b"b", b"c", b"d"]
    assert call(kv, "LINDEX", "l", "0") == b"b"
    assert call(kv, "LPUSH", "l", "z") == 4
    assert items(kv) == [b"z", b"b", b"c", b"d"]
    assert_consistent(kv)
    assert call(kv, "LTRIM", "l", "0", "100") == b"OK"
    assert call(kv, "LLEN", "l") == 4
    assert call(kv, "LTRIM", "l", "5", "10") == b"OK"
    assert call(kv, "EXISTS", "l") == 0
    assert call(kv, "DBSIZE") == 0
    assert call(kv, "LTRIM", "nokey", "0", "1") == b"OK"
    assert call(kv, "LTRIM", "nokey", "a", "1") == (
        "error",
        "ERR value is not an integer or out of range",
    )


def test_lpos_rank_count_maxlen(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "a", "b", "c", "a", "b", "a")
    assert call(kv, "LPOS", "l", "a") == 0
    assert call(kv, "LPOS", "l", "a", "RANK", "2") == 3
    assert call(kv, "LPOS", "l", "a", "RANK", "-1") == 5
    assert call(kv, "LPOS", "l", "a", "RANK", "-2") == 3
    assert call(kv, "LPOS", "l", "a", "RANK", "-4") is None
    assert call(kv, "LPOS", "l", "a", "COUNT", "0") == [0, 3, 5]
    assert call(kv, "LPOS", "l", "a", "COUNT", "2", "RANK", "-1") == [5, 3]
    assert call(kv, "LPOS", "l", "a", "COUNT", "0", "MAXLEN", "4") == [0, 3]
    assert call(kv, "LPOS", "l", "b", "RANK", "-1", "MAXLEN", "1") is None
    assert call(kv, "LPOS", "l", "zz", "COUNT", "1") == []
    assert call(kv, "LPOS", "nokey", "a") is None
    assert call(kv, "LPOS", "nokey", "a", "COUNT", "1") == []
    # C negates LLONG_MIN into itself: every match counts, from the tail, COUNT never reached.
    assert call(kv, "LPOS", "l", "a", "RANK", "-9223372036854775808") == 5
    assert call(kv, "LPOS", "l", "a", "RANK", "0")[1].startswith("ERR RANK can't be zero")  # type: ignore[index]
    assert call(kv, "LPOS", "l", "a", "COUNT", "-1") == ("error", "ERR COUNT can't be negative")
    assert call(kv, "LPOS", "l", "a", "MAXLEN", "-1") == ("error", "ERR MAXLEN can't be negative")
    assert call(kv, "LPOS", "l", "a", "RANK") == ("error", "ERR syntax error")


def test_lmove_rpoplpush_and_same_key_rotation(kv: Driver) -> None:
    call(kv, "RPUSH", "l", "a", "b", "c")
    assert call(kv, "LMOVE", "l", "l", "LEFT", "RIGHT") == b"a"
    assert items(kv) == [b"b", b"c", b"a"]
    assert call(kv, "LMOVE", "l", "l", "right", "left") == b"a"
    assert items(kv) == [b"a", b"b", b"c"]
    assert call(kv, "RPOPLPUSH", "l", "d") == b"c"
    assert items(kv, "d") == [b"c"]
    assert call(kv, "LMOVE", "d", "d", "left", "left") == b"c"  # one element onto itself
    assert items(kv, "d") == [b"c"]
    assert call(kv, "LMOVE", "d", "l", "left", "right") == b"c"
    assert call(kv, "EXISTS", "d") == 0
    assert items(kv) == [b"a", b"b", b"c"]
    assert call(kv, "LMOVE", "nokey", "l", "left", "right") is None
    assert call(kv, "LMOVE", "l", "l", "up", "left") == ("error", "ERR syntax error")
    call(kv, "SET", "s", "x")
    assert call(kv, "LMOVE", "l", "s", "left", "left") == WRONGTYPE
    assert items(kv) == [b"a", b"b", b"c"]  # nothing popped
    assert call(kv, "LMOVE", "s", "l", "left", "left") == WRONGTYPE
    assert call(kv, "LMOVE", "nokey", "s", "left", "left") is None  # source first, as Redis


def test_wrongtype_everywhere(kv: Driver) -> None:
    call(kv, "SET", "s", "x")
    for args in (
        ("LPUSH", "s", "a"),
        ("RPUSHX", "s", "a"),
        ("LPOP", "s"),
        ("RPOP", "s", "0"),
        ("LLEN", "s"),
        ("LRANGE", "s", "0", "1"),
        ("LINDEX", "s", "0"),
        ("LSET", "s", "0", "a"),
        ("LINSERT", "s", "before", "a", "b"),
        ("LREM", "s", "0", "a"),
        ("LTRIM", "s", "0", "1"),
        ("LPOS", "s", "a"),
        ("BLPOP", "nokey", "s", "0"),
        ("BLMOVE", "s", "d", "left", "left", "0"),
    ):
        assert call(kv, *args) == WRONGTYPE, args
    call(kv, "HSET", "h", "f", "v")
    assert call(kv, "RPUSH", "h", "a") == WRONGTYPE
    assert kv.sm.prepare_write([b"rpush", b"s", b"a"], 0, NOW, check_state=True) == (
        kv.sm.prepare_write([b"lpush", b"s", b"a"], 0, NOW, check_state=True)
    )


def test_blocking_commands_non_blocking_forms(kv: Driver) -> None:
    assert kv.call([b"BLPOP", b"a", b"b", b"0"]) is NULL_ARRAY
    assert kv.call([b"BLMOVE", b"a", b"b", b"LEFT", b"LEFT", b"1"]) is None
    assert kv.call([b"BRPOPLPUSH", b"a", b"b", b"1.5"]) is None
    call(kv, "RPUSH", "b", "1", "2")
    call(kv, "RPUSH", "c", "3")
    assert call(kv, "BLPOP", "a", "b", "c", "0") == [b"b", b"1"]
    assert call(kv, "BRPOP", "a", "c", "b", "0") == [b"c", b"3"]
    assert call(kv, "BRPOPLPUSH", "b", "d", "0") == b"2"
    assert call(kv, "BLMOVE", "d", "e", "RIGHT", "LEFT", "0.1") == b"2"
    assert call(kv, "KEYS", "*") == [b"e"]


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        ("-1", "ERR timeout is negative"),
        ("-0.5", "ERR timeout is negative"),
        ("abc", "ERR timeout is not a float or out of range"),
        ("nan", "ERR timeout is not a float or out of range"),
        ("", "ERR timeout is not a float or out of range"),
        ("inf", "ERR timeout is negative"),
        ("1e300", "ERR timeout is negative"),
        ("9223372036854775807", "ERR timeout is negative"),
        ("9223372036854775", "ERR timeout is out of range"),
    ],
)
def test_blocking_timeout_errors(kv: Driver, timeout: str, error: str) -> None:
    assert call(kv, "BLPOP", "a", timeout) == ("error", error)
    assert call(kv, "BLMOVE", "a", "b", "left", "left", timeout) == ("error", error)
    assert call(kv, "BLMOVE", "a", "b", "up", "left", timeout) == ("error", "ERR syntax error")


def test_timeouts_parse_like_redis() -> None:
    from respkv.kv.lists import parse_timeout

    assert parse_timeout(b"0", NOW) == 0
    assert parse_timeout(b"0.0001", NOW) == 1  # ceill: 1 ms, as in Redis
    assert parse_timeout(b"-0.0001", NOW) == 0  # ceill(-0.1) is -0: forever
    assert parse_timeout(b"1.5", NOW) == 1500
    assert parse_timeout(b"0.001", NOW) == 1
    assert parse_timeout(b"10", NOW) == 10_000


def test_list_records_layout(kv: Driver) -> None:
    """The key record holds head; members are keyed by biased big-endian positions."""
    call(kv, "RPUSH", "l", "a", "b")
    call(kv, "LPUSH", "l", "z")
    rec = kv.backend.get(kv.sm.db(0).data + b"l")
    assert rec is not None and rec[0] == layout.T_LIST
    version = rec[1:9]
    assert layout.U64.unpack(rec[9:17])[0] == 3  # size
    assert layout.I64.unpack(rec[25:33])[0] == -1  # head
    members = sorted(
        (k, v)
        for k, v in kv.backend.iterate(
            layout.MEMBERS + version, layout.MEMBERS + version + b"\xff" * 9
        )
    )
    positions = [layout.U64.unpack(k[9:])[0] - (1 << 63) for k, _ in members]
    assert positions == [-1, 0, 1]
    assert [v for _, v in members] == [b"z", b"a", b"b"]


class CountingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.last_changes: dict[bytes, bytes | None] = {}

    def write(self, changes: Mapping[bytes, bytes | None], applied_index: int) -> None:
        self.last_changes = dict(changes)
        super().write(changes, applied_index)


def test_push_into_a_long_list_writes_two_small_records() -> None:
    backend = CountingBackend()
    kv = Driver(backend=backend)
    n = 20_000
    chunk = [str(i).encode() for i in range(1000)]
    for _ in range(n // 1000):
        kv.call([b"RPUSH", b"big", *chunk])
    for args in ([b"LPUSH", b"big", b"x"], [b"RPUSH", b"big", b"y"], [b"LPOP", b"big"]):
        kv.call(args)
        changes = backend.last_changes
        assert len(changes) == 2, (args, len(changes))
        assert all(v is None or len(v) < 64 for v in changes.values()), args
    assert normalize(kv.call([b"LINDEX", b"big", b"15000"])) == b"0"
    assert normalize(kv.call([b"LLEN", b"big"])) == n + 1
    assert normalize(kv.call([b"LRANGE", b"big", b"-2", b"-1"])) == [b"999", b"y"]


def test_list_writes_reports_keys_only_when_asked(kv: Driver) -> None:
    assert kv.sm.list_writes is None
    call(kv, "RPUSH", "l", "a")
    touched: set[Any] = set()
    kv.sm.list_writes = touched
    call(kv, "RPUSH", "l", "b")
    call(kv, "SET", "s", "x")
    call(kv, "LMOVE", "l", "m", "left", "left", db=1)  # nothing in db 1
    call(kv, "LMOVE", "l", "m", "left", "left")
    call(kv, "SWAPDB", "2", "3")
    assert touched == {(0, b"l"), (0, b"m"), (2, None), (3, None)}
    touched.clear()
    call(kv, "RENAME", "m", "r")
    call(kv, "COPY", "r", "c")
    call(kv, "MOVE", "c", "5")
    call(kv, "RENAME", "s", "t")  # a string: nobody cares
    call(kv, "LPOP", "r")  # emptied: deleted, no data to wake anyone
    assert touched == {(0, b"r"), (0, b"c"), (5, b"c")}


def test_transaction_and_batch_see_each_other(kv: Driver) -> None:
    payload = kv.sm.prepare_transaction(
        [
            ([b"rpush", b"l", b"a", b"b"], 0),
            ([b"blpop", b"l", b"0"], 0),
            ([b"lrange", b"l", b"0", b"-1"], 0),
            ([b"blpop", b"l", b"x"], 0),
            ([b"blmove", b"l", b"l", b"left", b"right", b"0"], 0),
        ],
        NOW,
    )
    (replies,) = kv.apply([payload])
    assert normalize(replies) == [
        2,
        [b"l", b"a"],
        [b"b"],
        ("error", "ERR timeout is not a float or out of range"),
        b"b",
    ]


def test_a_reload_marks_every_db_as_written(kv: Driver) -> None:
    """After a snapshot is installed, any list may have appeared: blocked clients look again."""
    kv.sm.list_writes = set()
    kv.sm.reload()
    assert kv.sm.list_writes == {(i, None) for i in range(16)}
