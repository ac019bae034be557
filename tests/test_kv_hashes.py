"""Hash commands on the state machine (MemoryBackend), through prepare_write + apply and read."""

from __future__ import annotations

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import layout
from respkv.resp.encoder import encode
from respkv.resp.replies import ErrorReply, PairsReply

NOW = 1_700_000_000_000
WRONGTYPE = ("error", "WRONGTYPE Operation against a key holding the wrong kind of value")


@pytest.fixture
def kv() -> Driver:
    return Driver()


def call(
    kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW, check: bool = False
) -> object:
    return normalize(kv.call(list(args), db, now, check_state=check))


def test_hset_hget_and_friends(kv: Driver) -> None:
    assert call(kv, "HSET", "h", "b", "2", "a", "1") == 2
    assert call(kv, "HSET", "h", "a", "one", "c", "3") == 1
    assert call(kv, "HGET", "h", "a") == b"one"
    assert call(kv, "HGET", "h", "zz") is None
    assert call(kv, "HGET", "nokey", "a") is None
    assert call(kv, "HMGET", "h", "a", "zz", "c") == [b"one", None, b"3"]
    assert call(kv, "HMGET", "nokey", "a", "b") == [None, None]
    assert call(kv, "HLEN", "h") == 3
    assert call(kv, "HLEN", "nokey") == 0
    assert call(kv, "HEXISTS", "h", "b") == 1
    assert call(kv, "HEXISTS", "h", "x") == 0
    assert call(kv, "HSTRLEN", "h", "a") == 3
    assert call(kv, "HSTRLEN", "h", "x") == 0
    assert call(kv, "HGETALL", "h") == [b"a", b"one", b"b", b"2", b"c", b"3"]
    assert call(kv, "HGETALL", "nokey") == []
    assert call(kv, "HKEYS", "h") == [b"a", b"b", b"c"]
    assert call(kv, "HVALS", "h") == [b"one", b"2", b"3"]
    assert call(kv, "HMSET", "h", "d", "4") == b"OK"
    assert call(kv, "TYPE", "h") == b"hash"
    assert call(kv, "HSETNX", "h", "d", "x") == 0
    assert call(kv, "HSETNX", "h", "e", "5") == 1
    assert call(kv, "HSETNX", "new", "f", "v") == 1
    assert call(kv, "HGET", "h", "d") == b"4"
    assert call(kv, "HSET", "h", b"\x00\xff", b"") == 1
    assert call(kv, "HGET", "h", b"\x00\xff") == b""


def test_hdel_deletes_the_key_when_empty(kv: Driver) -> None:
    call(kv, "HSET", "h", "a", "1", "b", "2")
    assert call(kv, "HDEL", "h", "a", "a", "zz") == 1
    assert call(kv, "HDEL", "nokey", "a") == 0
    assert call(kv, "EXISTS", "h") == 1
    assert call(kv, "HDEL", "h", "b", "c") == 1
    assert call(kv, "EXISTS", "h") == 0
    assert call(kv, "TYPE", "h") == b"none"
    assert call(kv, "DBSIZE") == 0


def test_arity_and_argument_errors(kv: Driver) -> None:
    assert call(kv, "HSET", "h", "a", "1", "b") == (
        "error",
        "ERR wrong number of arguments for 'hset' command",
    )
    assert call(kv, "HMSET", "h", "a") == (
        "error",
        "ERR wrong number of arguments for 'hmset' command",
    )
    assert call(kv, "HSET", "h", "a") == (
        "error",
        "ERR wrong number of arguments for 'hset' command",
    )
    assert call(kv, "HINCRBY", "h", "a", "x") == (
        "error",
        "ERR value is not an integer or out of range",
    )
    assert call(kv, "HINCRBYFLOAT", "h", "a", "x") == ("error", "ERR value is not a valid float")
    assert call(kv, "HINCRBYFLOAT", "h", "a", "inf") == ("error", "ERR value is NaN or Infinity")
    assert call(kv, "EXISTS", "h") == 0  # nothing was created


def test_wrongtype_everywhere(kv: Driver) -> None:
    call(kv, "SET", "s", "v")
    for args in (
        ("HGET", "s", "a"),
        ("HMGET", "s", "a"),
        ("HGETALL", "s"),
        ("HLEN", "s"),
        ("HKEYS", "s"),
        ("HVALS", "s"),
        ("HEXISTS", "s", "a"),
        ("HSTRLEN", "s", "a"),
        ("HRANDFIELD", "s"),
        ("HRANDFIELD", "s", "2"),
        ("HSCAN", "s", "0"),
        ("HSET", "s", "a", "1"),
        ("HSETNX", "s", "a", "1"),
        ("HDEL", "s", "a"),
        ("HINCRBY", "s", "a", "1"),
        ("HINCRBYFLOAT", "s", "a", "1"),
    ):
        assert call(kv, *args) == WRONGTYPE, args
        assert call(kv, *args, check=True) == WRONGTYPE, args
    assert call(kv, "GET", "s") == b"v"
    call(kv, "HSET", "h", "a", "1")
    assert call(kv, "GET", "h") == WRONGTYPE
    assert call(kv, "INCR", "h") == WRONGTYPE
    assert call(kv, "APPEND", "h", "x") == WRONGTYPE


def test_prepare_with_check_state_rejects_wrongtype_before_the_log(kv: Driver) -> None:
    call(kv, "SET", "s", "v")
    reply = kv.sm.prepare_write([b"HSET", b"s", b"a", b"1"], 0, NOW, check_state=True)
    assert isinstance(reply, ErrorReply) and reply.message.startswith("WRONGTYPE")
    reply = kv.sm.prepare_write([b"HSET", b"h", b"a", b"1"], 0, NOW, check_state=True)
    assert isinstance(reply, bytes)


def test_hincrby(kv: Driver) -> None:
    assert call(kv, "HINCRBY", "h", "n", "5") == 5
    assert call(kv, "HINCRBY", "h", "n", "-7") == -2
    assert call(kv, "HGET", "h", "n") == b"-2"
    call(kv, "HSET", "h", "s", "abc", "z", "007", "big", "9223372036854775807")
    assert call(kv, "HINCRBY", "h", "s", "1") == ("error", "ERR hash value is not an integer")
    assert call(kv, "HINCRBY", "h", "z", "1") == ("error", "ERR hash value is not an integer")
    assert call(kv, "HINCRBY", "h", "big", "1") == (
        "error",
        "ERR increment or decrement would overflow",
    )
    assert call(kv, "HINCRBY", "h", "big", "-1") == 9223372036854775806


def test_hincrbyfloat(kv: Driver) -> None:
    assert call(kv, "HINCRBYFLOAT", "h", "f", "10.5") == b"10.5"
    assert call(kv, "HINCRBYFLOAT", "h", "f", "0.1") == b"10.6"
    assert call(kv, "HINCRBYFLOAT", "h", "f", "-10.6") == b"0"
    assert call(kv, "HINCRBYFLOAT", "h", "e", "3e2") == b"300"
    big = call(kv, "HINCRBYFLOAT", "h", "big", "1e400")  # x87 long double, as Redis computes
    assert isinstance(big, bytes) and len(big) == 401
    assert big.startswith(b"10000000000000000000") and big != b"1" + b"0" * 400
    call(kv, "HSET", "h", "s", "abc", "i", "inf", "sp", " 1")
    assert call(kv, "HINCRBYFLOAT", "h", "s", "1") == ("error", "ERR hash value is not a float")
    assert call(kv, "HINCRBYFLOAT", "h", "sp", "1") == ("error", "ERR hash value is not a float")
    assert call(kv, "HINCRBYFLOAT", "h", "i", "1") == (
        "error",
        "ERR increment would produce NaN or Infinity",
    )
    assert call(kv, "HGET", "h", "f") == b"0"


def test_hrandfield(kv: Driver) -> None:
    fields = {b"f%d" % i: b"v%d" % i for i in range(20)}
    call(kv, "HSET", "h", *[x for kv_ in fields.items() for x in kv_])
    one = call(kv, "HRANDFIELD", "h")
    assert one in fields
    assert call(kv, "HRANDFIELD", "nokey") is None
    assert call(kv, "HRANDFIELD", "nokey", "3") == []
    assert call(kv, "HRANDFIELD", "h", "0") == []
    distinct = call(kv, "HRANDFIELD", "h", "5")
    assert isinstance(distinct, list) and len(distinct) == 5 and len(set(distinct)) == 5
    assert set(distinct) <= set(fields)
    assert sorted(call(kv, "HRANDFIELD", "h", "100")) == sorted(fields)  # type: ignore[type-var]
    repeated = call(kv, "HRANDFIELD", "h", "-50")
    assert isinstance(repeated, list) and len(repeated) == 50 and set(repeated) <= set(fields)
    assert len(set(repeated)) > 1
    pairs = call(kv, "HRANDFIELD", "h", "-7", "WITHVALUES")
    assert isinstance(pairs, list) and len(pairs) == 14
    for f, v in zip(pairs[::2], pairs[1::2], strict=True):
        assert fields[f] == v
    raw = kv.call([b"HRANDFIELD", b"h", b"2", b"withvalues"])
    assert isinstance(raw, PairsReply)
    assert encode(raw, 3).startswith(b"*2\r\n*2\r\n$")  # RESP3: an array of pairs
    assert encode(raw, 2).startswith(b"*4\r\n$")  # RESP2: flat
    assert call(kv, "HRANDFIELD", "h", "1", "foo") == ("error", "ERR syntax error")
    assert call(kv, "HRANDFIELD", "h", "1", "withvalues", "x") == ("error", "ERR syntax error")
    assert call(kv, "HRANDFIELD", "h", "abc") == (
        "error",
        "ERR value is not an integer or out of range",
    )
    assert call(kv, "HRANDFIELD", "h", "-9223372036854775808") == (
        "error",
        "ERR value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807",
    )
    assert call(kv, "HRANDFIELD", "h", "9223372036854775807", "WITHVALUES") == (
        "error",
        "ERR value is out of range",
    )
    # C's -LONG_MAX/2 truncates towards zero: one below it is refused (not a 4.6e18 reply)
    assert call(kv, "HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES") == (
        "error",
        "ERR value is out of range",
    )


def test_hrandfield_on_a_big_hash_is_spread(kv: Driver) -> None:
    n = 3000
    for start in range(0, n, 500):
        args = [x for i in range(start, start + 500) for x in (b"field:%06d" % i, b"v")]
        call(kv, "HSET", "big", *args)
    picks = call(kv, "HRANDFIELD", "big", "-300")
    assert isinstance(picks, list) and len(picks) == 300
    assert len(set(picks)) > 150  # not stuck on one member
    numbers = sorted(int(p[6:]) for p in picks)
    assert numbers[0] < n // 4 and numbers[-1] > 3 * n // 4
    distinct = call(kv, "HRANDFIELD", "big", "200")
    assert isinstance(distinct, list) and len(set(distinct)) == 200


def test_hgetall_is_a_map_in_resp3(kv: Driver) -> None:
    call(kv, "HSET", "h", "a", "1")
    reply = kv.call([b"HGETALL", b"h"])
    assert encode(reply, 3) == b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert encode(reply, 2) == b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert encode(kv.call([b"HGETALL", b"nokey"]), 3) == b"%0\r\n"


def test_hscan(kv: Driver) -> None:
    fields = {b"f%02d" % i: b"v%d" % i for i in range(35)}
    call(kv, "HSET", "h", *[x for kv_ in fields.items() for x in kv_])
    seen: dict[bytes, bytes] = {}
    cursor = b"0"
    rounds = 0
    while True:
        reply = call(kv, "HSCAN", "h", cursor, "COUNT", "7")
        assert isinstance(reply, list)
        cursor, items = reply
        assert len(items) <= 14
        seen.update(zip(items[::2], items[1::2], strict=True))
        rounds += 1
        if cursor == b"0":
            break
    assert seen == fields and rounds == 5
    first = call(kv, "HSCAN", "h", "0", "MATCH", "f1*", "COUNT", "1000")
    assert first == [b"0", [x for i in range(10, 20) for x in (b"f%d" % i, b"v%d" % i)]]
    assert call(kv, "HSCAN", "nokey", "0", "TYPE", "x") == [b"0", []]
    assert call(kv, "HSCAN", "h", "0", "TYPE", "string") == ("error", "ERR syntax error")
    assert call(kv, "HSCAN", "h", "0", "COUNT", "0") == ("error", "ERR syntax error")
    assert call(kv, "HSCAN", "h", "abc") == ("error", "ERR invalid cursor")


def test_expired_hash_is_gone(kv: Driver) -> None:
    call(kv, "HSET", "h", "a", "1")
    assert call(kv, "PEXPIRE", "h", "100") == 1
    assert call(kv, "HGET", "h", "a", now=NOW + 101) is None
    assert call(kv, "HLEN", "h", now=NOW + 101) == 0
    assert call(kv, "HSET", "h", "b", "2", now=NOW + 101) == 1
    assert call(kv, "HGETALL", "h", now=NOW + 101) == [b"b", b"2"]
    assert call(kv, "TTL", "h", now=NOW + 101) == -1


def test_keyspace_commands_on_hashes(kv: Driver) -> None:
    call(kv, "HSET", "h", "a", "1", "b", "2")
    assert call(kv, "COPY", "h", "h2") == 1
    assert call(kv, "HSET", "h2", "c", "3") == 1
    assert call(kv, "HLEN", "h") == 2
    assert call(kv, "HLEN", "h2") == 3
    assert call(kv, "RENAME", "h", "r") == b"OK"
    assert call(kv, "HGETALL", "r") == [b"a", b"1", b"b", b"2"]
    assert call(kv, "MOVE", "r", "1") == 1
    assert call(kv, "HGET", "r", "a", db=1) == b"1"
    assert call(kv, "SCAN", "0", "TYPE", "hash") == [b"0", [b"h2"]]
    assert call(kv, "SCAN", "0", "TYPE", "string") == [b"0", []]
    assert call(kv, "SET", "h2", "now a string") == b"OK"
    assert call(kv, "GET", "h2") == b"now a string"
    assert call(kv, "DEL", "r", db=1) == 1
    while kv.sm.collect_garbage(100):
        pass
    members = list(kv.backend.iterate(layout.MEMBERS, layout.prefix_end(layout.MEMBERS)))
    assert members == []


def test_transaction_sees_its_own_hash_writes(kv: Driver) -> None:
    payload = kv.sm.prepare_transaction(
        [
            ([b"HSET", b"h", b"a", b"1"], 0),
            ([b"HINCRBY", b"h", b"a", b"5"], 0),
            ([b"HGETALL", b"h"], 0),
            ([b"HDEL", b"h", b"a"], 0),
            ([b"HLEN", b"h"], 0),
            ([b"HSET", b"h", b"x"], 0),
        ],
        NOW,
    )
    (replies,) = kv.apply([payload])
    assert normalize(replies) == [
        1,
        6,
        [b"a", b"6"],
        1,
        0,
        ("error", "ERR wrong number of arguments for 'hset' command"),
    ]


def test_hset_on_a_big_hash_writes_two_small_records() -> None:
    """HSET costs O(1) records whatever the hash's size (the write is one backend batch)."""
    writes: list[dict[bytes, bytes | None]] = []
    kv = Driver()
    original = kv.backend.write

    def spy(changes: dict[bytes, bytes | None], index: int) -> None:
        writes.append(dict(changes))
        original(changes, index)

    kv.backend.write = spy  # type: ignore[method-assign]
    for start in range(0, 20_000, 5000):
        args = [x for i in range(start, start + 5000) for x in (b"f%d" % i, b"v")]
        call(kv, "HSET", "h", *args)
    writes.clear()
    assert call(kv, "HSET", "h", "new", "value") == 1
    (changes,) = writes
    data = {k: v for k, v in changes.items() if k[:1] in (layout.DATA, layout.MEMBERS)}
    assert len(data) == 2
    assert all(v is not None and len(v) < 64 for v in data.values())
    assert call(kv, "HLEN", "h") == 20_001
