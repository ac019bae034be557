"""Set commands on the state machine (MemoryBackend), through prepare_write + apply and read."""

from __future__ import annotations

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import MemoryBackend, StateMachine, layout
from respkv.kv.payload import decode_single
from respkv.resp.encoder import encode
from respkv.resp.replies import ErrorReply, SetReply

NOW = 1_700_000_000_000
WRONGTYPE = ("error", "WRONGTYPE Operation against a key holding the wrong kind of value")


@pytest.fixture
def kv() -> Driver:
    return Driver()


def call(
    kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW, check: bool = False
) -> object:
    return normalize(kv.call(list(args), db, now, check_state=check))


def test_sadd_srem_and_reads(kv: Driver) -> None:
    assert call(kv, "SADD", "s", "b", "a", "c", "a") == 3
    assert call(kv, "SADD", "s", "a", "d") == 1
    assert call(kv, "TYPE", "s") == b"set"
    assert call(kv, "SCARD", "s") == 4
    assert call(kv, "SCARD", "nokey") == 0
    assert call(kv, "SMEMBERS", "s") == [b"a", b"b", b"c", b"d"]
    assert call(kv, "SMEMBERS", "nokey") == []
    assert call(kv, "SISMEMBER", "s", "a") == 1
    assert call(kv, "SISMEMBER", "s", "z") == 0
    assert call(kv, "SISMEMBER", "nokey", "z") == 0
    assert call(kv, "SMISMEMBER", "s", "a", "z", "d") == [1, 0, 1]
    assert call(kv, "SMISMEMBER", "nokey", "a", "b") == [0, 0]
    assert call(kv, "SREM", "s", "a", "z", "a") == 1
    assert call(kv, "SREM", "nokey", "a") == 0
    assert call(kv, "SREM", "s", "b", "c", "d", "e") == 3
    assert call(kv, "EXISTS", "s") == 0
    assert call(kv, "DBSIZE") == 0


def test_resp3_shapes(kv: Driver) -> None:
    call(kv, "SADD", "s", "x")
    assert isinstance(kv.call([b"SMEMBERS", b"s"]), SetReply)
    assert encode(kv.call([b"SMEMBERS", b"s"]), 3) == b"~1\r\n$1\r\nx\r\n"
    assert encode(kv.call([b"SMEMBERS", b"s"]), 2) == b"*1\r\n$1\r\nx\r\n"
    assert encode(kv.call([b"SINTER", b"nokey"]), 3) == b"~0\r\n"
    assert encode(kv.call([b"SPOP", b"nokey", b"2"]), 3) == b"~0\r\n"
    assert encode(kv.call([b"SRANDMEMBER", b"nokey", b"2"]), 3) == b"*0\r\n"
    assert encode(kv.call([b"SRANDMEMBER", b"s", b"2"]), 3) == b"*1\r\n$1\r\nx\r\n"
    assert encode(kv.call([b"SPOP", b"s", b"1"]), 3) == b"~1\r\n$1\r\nx\r\n"


def test_wrongtype(kv: Driver) -> None:
    call(kv, "SET", "str", "v")
    call(kv, "SADD", "s", "a")
    for args in (
        ("SADD", "str", "a"),
        ("SREM", "str", "a"),
        ("SMEMBERS", "str"),
        ("SISMEMBER", "str", "a"),
        ("SMISMEMBER", "str", "a"),
        ("SCARD", "str"),
        ("SPOP", "str"),
        ("SPOP", "str", "2"),
        ("SRANDMEMBER", "str"),
        ("SRANDMEMBER", "str", "2"),
        ("SSCAN", "str", "0"),
        ("SINTER", "nokey", "str"),  # every key is checked, a missing one notwithstanding
        ("SUNION", "s", "str"),
        ("SDIFF", "nokey", "str"),
        ("SINTERSTORE", "d", "nokey", "str"),
        ("SUNIONSTORE", "d", "s", "str"),
        ("SINTERCARD", "2", "nokey", "str"),
        ("SMOVE", "s", "str", "a"),
        ("SMOVE", "str", "s", "a"),
    ):
        assert call(kv, *args) == WRONGTYPE, args
    assert call(kv, "SMOVE", "nokey", "str", "a") == 0  # a missing source answers first
    assert call(kv, "SISMEMBER", "s", "a") == 1
    assert call(kv, "EXISTS", "d") == 0
    assert call(kv, "SADD", "str", "a", check=True) == WRONGTYPE
    assert call(kv, "SPOP", "str", check=True) == WRONGTYPE
    assert call(kv, "GET", "s") == WRONGTYPE


def test_spop_is_deterministic_given_the_log() -> None:
    """SPOP's choice comes from the seed in its log entry: replaying the log elsewhere pops the
    same members, even with a different local random source."""
    kv = Driver()
    members = [b"m%03d" % i for i in range(200)]
    call(kv, "SADD", "s", *members)
    popped_one = call(kv, "SPOP", "s")
    popped_many = call(kv, "SPOP", "s", "7")
    assert isinstance(popped_one, bytes) and popped_one in members
    assert isinstance(popped_many, list) and len(set(popped_many)) == 7
    assert popped_one not in popped_many
    assert call(kv, "SCARD", "s") == 192
    replica_backend = MemoryBackend()
    replica = StateMachine(replica_backend, random_bits=lambda k: 0)
    replies = replica.apply(kv.payloads)
    assert normalize(replies[-2]) == popped_one
    assert normalize(replies[-1]) == popped_many
    assert list(replica_backend.iterate(b"")) == list(kv.backend.iterate(b""))
    # The seed is part of the entry, not of the client's command.
    decoded = decode_single(kv.payloads[-1][1])
    assert decoded is not None
    _, _, argv = decoded
    assert argv[0] == b"spop" and argv[1] == b"s" and len(argv[2]) == 8 and argv[3] == b"7"


def test_spop_variants(kv: Driver) -> None:
    call(kv, "SADD", "s", "a", "b", "c")
    assert call(kv, "SPOP", "nokey") is None
    assert call(kv, "SPOP", "nokey", "3") == []
    assert call(kv, "SPOP", "s", "0") == []
    assert call(kv, "SPOP", "s", "-1") == ("error", "ERR value is out of range, must be positive")
    assert call(kv, "SPOP", "s", "x") == ("error", "ERR value is out of range, must be positive")
    assert call(kv, "SPOP", "s", "1", "2") == ("error", "ERR syntax error")
    assert call(kv, "SCARD", "s") == 3
    assert sorted(call(kv, "SPOP", "s", "10")) == [b"a", b"b", b"c"]  # type: ignore[type-var]
    assert call(kv, "EXISTS", "s") == 0


def test_spop_on_a_big_set(kv: Driver) -> None:
    n = 3000
    for start in range(0, n, 1000):
        call(kv, "SADD", "big", *[b"%08d" % i for i in range(start, start + 1000)])
    popped = call(kv, "SPOP", "big", "100")
    assert isinstance(popped, list) and len(set(popped)) == 100
    assert call(kv, "SCARD", "big") == n - 100
    assert call(kv, "SMISMEMBER", "big", *popped) == [0] * 100
    numbers = sorted(int(p) for p in popped)
    assert numbers[0] < n // 4 and numbers[-1] > 3 * n // 4


def test_srandmember(kv: Driver) -> None:
    members = {b"m%d" % i for i in range(30)}
    call(kv, "SADD", "s", *members)
    assert call(kv, "SRANDMEMBER", "s") in members
    assert call(kv, "SRANDMEMBER", "nokey") is None
    assert call(kv, "SRANDMEMBER", "nokey", "5") == []
    assert call(kv, "SRANDMEMBER", "s", "0") == []
    some = call(kv, "SRANDMEMBER", "s", "10")
    assert isinstance(some, list) and len(set(some)) == 10 and set(some) <= members
    assert set(call(kv, "SRANDMEMBER", "s", "100")) == members  # type: ignore[arg-type]
    repeated = call(kv, "SRANDMEMBER", "s", "-100")
    assert isinstance(repeated, list) and len(repeated) == 100 and set(repeated) <= members
    assert call(kv, "SCARD", "s") == 30  # a read: nothing removed
    assert call(kv, "SRANDMEMBER", "s", "1", "2") == ("error", "ERR syntax error")
    assert call(kv, "SRANDMEMBER", "s", "x") == (
        "error",
        "ERR value is not an integer or out of range",
    )
    assert call(kv, "SRANDMEMBER", "s", "-9223372036854775808") == (
        "error",
        "ERR value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807",
    )


def test_smove(kv: Driver) -> None:
    call(kv, "SADD", "src", "a", "b")
    assert call(kv, "SMOVE", "src", "dst", "a") == 1
    assert call(kv, "SMOVE", "src", "dst", "zz") == 0
    assert call(kv, "SMEMBERS", "src") == [b"b"]
    assert call(kv, "SMEMBERS", "dst") == [b"a"]
    assert call(kv, "SMOVE", "src", "src", "b") == 1
    assert call(kv, "SMOVE", "src", "src", "a") == 0
    assert call(kv, "SMOVE", "src", "dst", "b") == 1
    assert call(kv, "EXISTS", "src") == 0  # emptied: deleted
    assert call(kv, "SMEMBERS", "dst") == [b"a", b"b"]
    assert call(kv, "SMOVE", "nokey", "dst", "a") == 0


def test_set_algebra(kv: Driver) -> None:
    call(kv, "SADD", "x", "a", "b", "c", "d")
    call(kv, "SADD", "y", "c", "d", "e")
    call(kv, "SADD", "z", "d", "f")
    assert call(kv, "SINTER", "x", "y") == [b"c", b"d"]
    assert call(kv, "SINTER", "x", "y", "z") == [b"d"]
    assert call(kv, "SINTER", "x", "nokey") == []
    assert call(kv, "SINTER", "x") == [b"a", b"b", b"c", b"d"]
    assert call(kv, "SUNION", "x", "y", "nokey") == [b"a", b"b", b"c", b"d", b"e"]
    assert call(kv, "SUNION", "nokey") == []
    assert call(kv, "SDIFF", "x", "y") == [b"a", b"b"]
    assert call(kv, "SDIFF", "x", "nokey", "z") == [b"a", b"b", b"c"]
    assert call(kv, "SDIFF", "nokey", "x") == []
    assert call(kv, "SINTERCARD", "2", "x", "y") == 2
    assert call(kv, "SINTERCARD", "2", "x", "y", "LIMIT", "1") == 1
    assert call(kv, "SINTERCARD", "2", "x", "y", "limit", "0") == 2
    assert call(kv, "SINTERCARD", "2", "x", "nokey") == 0
    assert call(kv, "SINTERCARD", "0", "x") == ("error", "ERR numkeys should be greater than 0")
    assert call(kv, "SINTERCARD", "x", "x") == ("error", "ERR numkeys should be greater than 0")
    assert call(kv, "SINTERCARD", "3", "x", "y") == (
        "error",
        "ERR Number of keys can't be greater than number of args",
    )
    assert call(kv, "SINTERCARD", "1", "x", "LIMIT", "-1") == (
        "error",
        "ERR LIMIT can't be negative",
    )
    assert call(kv, "SINTERCARD", "1", "x", "LIMIT") == ("error", "ERR syntax error")
    assert call(kv, "SINTERCARD", "1", "x", "FOO", "1") == ("error", "ERR syntax error")


def test_store_variants(kv: Driver) -> None:
    call(kv, "SADD", "x", "a", "b", "c")
    call(kv, "SADD", "y", "b", "c", "d")
    call(kv, "SET", "dst", "a string", "EX", "100")
    assert call(kv, "SINTERSTORE", "dst", "x", "y") == 2
    assert call(kv, "TYPE", "dst") == b"set"
    assert call(kv, "TTL", "dst") == -1
    assert call(kv, "SMEMBERS", "dst") == [b"b", b"c"]
    assert call(kv, "SUNIONSTORE", "x", "x", "y") == 4  # the destination is also a source
    assert call(kv, "SMEMBERS", "x") == [b"a", b"b", b"c", b"d"]
    assert call(kv, "SDIFFSTORE", "d2", "x", "y") == 1
    assert call(kv, "SMEMBERS", "d2") == [b"a"]
    assert call(kv, "SINTERSTORE", "dst", "x", "nokey") == 0
    assert call(kv, "EXISTS", "dst") == 0  # an empty result deletes the destination
    assert call(kv, "SDIFFSTORE", "none", "y", "x") == 0
    assert call(kv, "EXISTS", "none") == 0
    while kv.sm.collect_garbage(50):
        pass
    members = list(kv.backend.iterate(layout.MEMBERS, layout.prefix_end(layout.MEMBERS)))
    assert len(members) == 4 + 3 + 1  # x, y, d2: the replaced versions were collected


def test_sscan(kv: Driver) -> None:
    members = {b"m%02d" % i for i in range(23)}
    call(kv, "SADD", "s", *members)
    seen: set[bytes] = set()
    cursor = b"0"
    while True:
        reply = call(kv, "SSCAN", "s", cursor, "COUNT", "5")
        assert isinstance(reply, list)
        cursor, items = reply
        seen.update(items)
        if cursor == b"0":
            break
    assert seen == members
    assert call(kv, "SSCAN", "s", "0", "MATCH", "m1?", "COUNT", "100") == [
        b"0",
        [b"m%d" % i for i in range(10, 20)],
    ]
    assert call(kv, "SSCAN", "nokey", "0") == [b"0", []]
    assert call(kv, "SSCAN", "s", "0", "TYPE", "set") == ("error", "ERR syntax error")


def test_keyspace_commands_on_sets(kv: Driver) -> None:
    call(kv, "SADD", "s", "a", "b")
    assert call(kv, "COPY", "s", "c") == 1
    assert call(kv, "SADD", "c", "z") == 1
    assert call(kv, "SCARD", "s") == 2
    assert call(kv, "RENAME", "s", "r") == b"OK"
    assert call(kv, "SMEMBERS", "r") == [b"a", b"b"]
    assert call(kv, "SCAN", "0", "TYPE", "set") == [b"0", [b"c", b"r"]]
    assert call(kv, "EXPIRE", "r", "10") == 1
    assert call(kv, "SMEMBERS", "r", now=NOW + 10_001) == []
    assert call(kv, "SADD", "r", "new", now=NOW + 10_001) == 1
    assert call(kv, "SMEMBERS", "r", now=NOW + 10_001) == [b"new"]


def test_transaction_with_sets(kv: Driver) -> None:
    payload = kv.sm.prepare_transaction(
        [
            ([b"SADD", b"s", b"a", b"b"], 0),
            ([b"SPOP", b"s", b"5"], 0),
            ([b"SCARD", b"s"], 0),
            ([b"SPOP", b"s", b"-1"], 0),
            ([b"SADD", b"t", b"x"], 0),
            ([b"SMOVE", b"t", b"s", b"x"], 0),
            ([b"SMEMBERS", b"s"], 0),
        ],
        NOW,
    )
    (replies,) = kv.apply([payload])
    out = normalize(replies)
    assert out[0] == 2
    assert sorted(out[1]) == [b"a", b"b"]
    assert out[2:] == [
        0,
        ("error", "ERR value is out of range, must be positive"),
        1,
        1,
        [b"x"],
    ]
    assert isinstance(replies[3], ErrorReply)
