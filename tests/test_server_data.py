"""Data commands through a real respkv process with redis-py, in RESP2 and RESP3.

One respkv (and one real redis-server to compare with) per module; every test starts from
FLUSHALL. Exact error texts are checked on the wire (redis-py drops the "ERR " prefix).
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
import redis

from tests._server_util import (
    RawConn,
    RealRedis,
    bare,
    call,
    error,
    wait_until,
)
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


# --- strings ---------------------------------------------------------------------------------


def test_string_commands(r: redis.Redis) -> None:
    assert r.set("s", "hello") is True
    assert r.get("s") == b"hello"
    assert r.get("missing") is None
    assert r.setnx("s", "other") is False
    assert r.setnx("n", "1") is True
    assert r.set("s", "x", nx=True) is None
    assert r.set("absent", "x", xx=True) is None
    assert r.set("s", "world", xx=True, get=True) == b"hello"
    assert r.getset("s", "again") == b"world"
    assert r.append("s", "!") == 6
    assert r.strlen("s") == 6 and r.strlen("missing") == 0
    assert r.getrange("s", 0, 2) == b"aga" and r.getrange("s", -2, -1) == b"n!"
    assert r.setrange("pad", 3, "x") == 4 and r.get("pad") == b"\x00\x00\x00x"
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "missing", "b") == [b"1", None, b"2"]
    assert r.msetnx({"b": "3", "c": "4"}) is False and r.get("c") is None
    assert r.msetnx({"c": "4", "d": "5"}) is True
    assert r.incr("n") == 2 and r.incrby("n", 10) == 12
    assert r.decr("n") == 11 and r.decrby("n", 20) == -9
    assert r.incr("fresh") == 1
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == b"10.6"  # Redis's exact long double formatting
    assert r.getdel("d") == b"5" and r.exists("d") == 0 and r.getdel("d") is None
    binary = bytes(range(256)) * 4
    assert r.set("bin", binary) and r.get("bin") == binary


def test_set_keepttl_and_get_options(r: redis.Redis) -> None:
    r.set("k", "v", ex=100)
    r.set("k", "v2", keepttl=True)
    assert 95 <= r.ttl("k") <= 100
    r.set("k", "v3")
    assert r.ttl("k") == -1
    assert r.getex("k", ex=50) == b"v3" and 45 <= r.ttl("k") <= 50
    assert r.getex("k", persist=True) == b"v3" and r.ttl("k") == -1
    assert r.getex("missing", ex=5) is None


# Replies of both servers, command by command, straight off the wire (no redis-py parsing).
STRING_SCRIPT: list[tuple[str, ...]] = [
    ("SET", "a", "10"),
    ("INCRBY", "a", "-25"),
    ("INCRBYFLOAT", "a", "1.25e2"),
    ("INCRBYFLOAT", "a", "-0.0000001"),
    ("GET", "a"),
    ("APPEND", "a", "xyz"),
    ("GETRANGE", "a", "-100", "100"),
    ("GETRANGE", "a", "5", "2"),
    ("SETRANGE", "a", "2", "----"),
    ("GET", "a"),
    ("MSET", "x", "1", "y", "2"),
    ("MGET", "x", "nope", "y"),
    ("SET", "x", "3", "GET"),
    ("SET", "nx", "1", "NX", "GET"),
    ("GETDEL", "nope"),
    ("SETNX", "x", "9"),
    ("STRLEN", "x"),
    ("INCR", "a"),
    ("INCRBYFLOAT", "x", "abc"),
    ("INCRBY", "x", "1.5"),
    ("SET", "big", "9223372036854775807"),
    ("INCR", "big"),
    ("DECRBY", "x", "-9223372036854775808"),
    ("SETRANGE", "x", "-1", "a"),
    ("SETRANGE", "x", "536870912", "a"),
    ("SET", "a", "b", "EX", "0"),
    ("SET", "a", "b", "PX", "-5"),
    ("SET", "a", "b", "EX", "1", "PX", "100"),
    ("SET", "a", "b", "NX", "XX"),
    ("SET", "a", "b", "KEEPTTL", "EX", "10"),
    ("SETEX", "a", "0", "v"),
    ("PSETEX", "a", "abc", "v"),
    ("GETEX", "x", "PERSIST", "EX", "1"),
    ("MSET", "a", "1", "b"),
    ("GET",),
]


def compare_script(
    node: RespkvProcess, real: RealRedis, protocol: int, script: list[tuple[str, ...]]
) -> None:
    ours, theirs = bare(node.port, protocol), bare(real.port, protocol)
    theirs.flushall()
    try:
        for command in script:
            replies = []
            for client in (ours, theirs):
                try:
                    replies.append(call(client, *command))
                except redis.ResponseError as e:
                    replies.append(("error", str(e)))
            assert replies[0] == replies[1], (
                f"{command}: respkv {replies[0]!r}, redis {replies[1]!r}"
            )
    finally:
        ours.close()
        theirs.close()


def test_strings_match_real_redis(
    r: redis.Redis, node: RespkvProcess, real: RealRedis, protocol: int
) -> None:
    compare_script(node, real, protocol, STRING_SCRIPT)


# --- keys ------------------------------------------------------------------------------------


def test_key_commands(r: redis.Redis) -> None:
    r.mset({"k1": "a", "k2": "b", "other": "c"})
    assert r.exists("k1", "k1", "missing") == 2
    assert r.type("k1") == (b"string") and r.type("missing") == b"none"
    assert sorted(r.keys("k*")) == [b"k1", b"k2"]
    assert sorted(r.keys("?[3-9]")) == []
    assert sorted(r.keys("k[12]")) == [b"k1", b"k2"]
    assert r.touch("k1", "missing") == 1
    assert r.rename("k1", "k3") is True and r.get("k3") == b"a" and r.exists("k1") == 0
    assert r.renamenx("k3", "k2") is False
    assert r.renamenx("k3", "k4") is True
    assert r.copy("k4", "k5") is True and r.copy("k4", "k5") is False
    assert r.copy("k4", "k5", replace=True) is True
    assert r.copy("k4", "elsewhere", destination_db="3") is True
    assert r.randomkey() in {b"k2", b"k4", b"k5", b"other"}
    assert r.delete("k2", "missing") == 1
    assert r.unlink("k4", "k5") == 2
    assert r.dbsize() == 1
    with pytest.raises(redis.ResponseError, match=r"^no such key$"):
        r.rename("missing", "x")
    r.flushdb()
    assert r.randomkey() is None


def test_scan_match_count_type(r: redis.Redis) -> None:
    r.mset({f"user:{i}": i for i in range(150)})
    r.mset({f"item:{i}": i for i in range(150)})
    users = set(r.scan_iter(match="user:*", count=7))
    assert users == {f"user:{i}".encode() for i in range(150)}
    assert len(set(r.scan_iter(_type="string", count=50))) == 300
    assert set(r.scan_iter(_type="hash")) == set()
    # One SCAN call: a valid cursor back, and COUNT bounds the work (Redis returns roughly COUNT).
    cursor, batch = r.scan(0, count=10)
    assert int(cursor) != 0 and 1 <= len(batch) <= 30
    cursor, batch = r.scan(0, count=1000)
    assert int(cursor) == 0 and len(batch) == 300


def test_scan_cursor_survives_changes(r: redis.Redis) -> None:
    """Keys present for the whole iteration are returned, whatever is added and removed."""
    stable = {f"stable:{i}".encode() for i in range(200)}
    r.mset({key: b"1" for key in stable})
    r.mset({f"gone:{i}": 1 for i in range(200)})
    seen: set[bytes | str] = set()
    cursor, step = 0, 0
    while True:
        cursor, batch = r.scan(cursor, count=20)
        seen.update(batch)
        step += 1
        if step < 30:  # change the keyspace between calls
            r.delete(*[f"gone:{i}" for i in range(step * 7, step * 7 + 7)])
            r.mset({f"new:{step}:{i}": 1 for i in range(10)})
        if int(cursor) == 0:
            break
        assert step < 10_000, "SCAN never returned cursor 0"
    assert stable <= seen, f"missed {sorted(stable - seen)[:5]}"


def test_keys_scan_match_real_redis(
    r: redis.Redis, node: RespkvProcess, real: RealRedis, protocol: int
) -> None:
    compare_script(
        node,
        real,
        protocol,
        [
            ("MSET", "a", "1", "b", "2"),
            ("EXISTS", "a", "b", "c", "a"),
            ("RENAME", "a", "a"),
            ("RENAME", "nope", "x"),
            ("RENAMENX", "a", "b"),
            ("COPY", "a", "a"),
            ("COPY", "a", "c", "DB", "16"),
            ("COPY", "a", "c", "FOO"),
            ("MOVE", "a", "0"),
            ("MOVE", "a", "abc"),
            ("SCAN", "abc"),
            ("SCAN", "0", "COUNT", "0"),
            ("SCAN", "0", "MATCH"),
            ("SCAN", "0", "TYPE", "list"),
            ("SCAN", "0", "MATCH", "zz*", "COUNT", "100"),
            ("KEYS", "[a"),
            ("TYPE", "a"),
            ("DEL",),
            ("TOUCH", "a", "nope"),
            ("SWAPDB", "0", "99"),
            ("SWAPDB", "x", "0"),
            ("FLUSHDB", "LAZY"),
            ("DBSIZE",),
        ],
    )


# --- expiry ----------------------------------------------------------------------------------


def test_expiry_options_and_ttl_semantics(r: redis.Redis) -> None:
    now = time.time()
    r.set("ex", "v", ex=100)
    r.set("px", "v", px=100_000)
    r.set("exat", "v", exat=int(now) + 100)
    r.set("pxat", "v", pxat=int(now * 1000) + 100_000)
    for key in ("ex", "px", "exat", "pxat"):
        assert 98 <= r.ttl(key) <= 100, key
        assert 97_000 <= r.pttl(key) <= 100_000, key
    assert r.expiretime("exat") == int(now) + 100
    assert r.pexpiretime("pxat") == int(now * 1000) + 100_000
    r.set("plain", "v")
    assert r.ttl("plain") == -1 and r.pttl("plain") == -1 and r.expiretime("plain") == -1
    assert r.ttl("missing") == -2 and r.pttl("missing") == -2 and r.expiretime("missing") == -2
    assert r.persist("ex") is True and r.ttl("ex") == -1 and r.persist("ex") is False
    assert r.expire("plain", 50, nx=True) is True and r.expire("plain", 10, nx=True) is False
    assert r.expire("plain", 10, gt=True) is False and r.expire("plain", 80, gt=True) is True
    assert r.expire("plain", 90, lt=True) is False and r.expire("plain", 20, lt=True) is True
    assert r.expire("nottl", 10, xx=True) is False
    assert r.pexpire("px", 5_000) is True and 4_000 <= r.pttl("px") <= 5_000
    assert r.expireat("exat", int(now) + 1000) is True and r.ttl("exat") > 900
    assert r.pexpireat("pxat", int(now * 1000) + 1_000_000) is True
    assert r.expire("missing", 10) is False
    # A time in the past deletes at once.
    assert r.expire("exat", -1) is True and r.exists("exat") == 0
    r.set("past", "v", pxat=1)
    assert r.exists("past") == 0 and r.get("past") is None
    assert r.pexpireat("pxat", 1) is True and r.exists("pxat") == 0


def test_key_with_one_second_ttl_disappears(r: redis.Redis) -> None:
    r.set("short", "v", ex=1)
    r.set("long", "v", ex=100)
    start = time.monotonic()
    assert r.get("short") == b"v"
    wait_until(lambda: r.get("short") is None, timeout=10, what="the 1 s key to expire")
    elapsed = time.monotonic() - start
    assert elapsed >= 0.8, f"expired after only {elapsed:.2f} s"
    assert r.ttl("short") == -2 and r.exists("short") == 0
    # The active cycle deletes it for good: DBSIZE (which counts unexpired and not yet deleted
    # keys) drops to the one long-lived key.
    wait_until(lambda: r.dbsize() == 1, timeout=10, what="the expired key to be deleted")
    assert r.get("long") == b"v"


def test_expiry_matches_real_redis(
    r: redis.Redis, node: RespkvProcess, real: RealRedis, protocol: int
) -> None:
    compare_script(
        node,
        real,
        protocol,
        [
            ("SET", "a", "1"),
            ("EXPIRE", "a", "abc"),
            ("EXPIRE", "a", "10", "NX", "XX"),
            ("EXPIRE", "a", "10", "GT", "LT"),
            ("EXPIRE", "a", "10", "FOO"),
            ("EXPIRE", "a", "9223372036854775807"),
            ("PEXPIRE", "a", "9223372036854775807"),
            ("TTL", "a"),
            ("SET", "a", "1", "EXAT", "0"),
            ("SET", "a", "1", "EX", "9223372036854775807"),
            ("GETEX", "a", "EX", "0"),
            ("GETEX", "a", "PXAT", "-1"),
            ("PERSIST", "a"),
            ("PERSIST", "nope"),
            ("EXPIRETIME", "a"),
            ("PEXPIRETIME", "nope"),
            ("SET", "b", "1", "PXAT", "1"),
            ("GET", "b"),
        ],
    )


# --- numbered databases ----------------------------------------------------------------------


def test_numbered_databases(node: RespkvProcess, protocol: int) -> None:
    db0 = node.client(protocol=protocol)
    db0.flushall()
    db5 = node.client(protocol=protocol, db=5)
    try:
        db0.set("k", "zero")
        db5.set("k", "five")
        db5.set("only5", "x")
        assert db0.get("k") == b"zero" and db5.get("k") == b"five"
        assert db0.dbsize() == 1 and db5.dbsize() == 2
        assert db0.exists("only5") == 0
        # MOVE: refused when the key exists there, else moved.
        assert db5.move("k", 0) is False
        assert db5.move("only5", 0) is True
        assert db5.exists("only5") == 0 and db0.get("only5") == b"x"
        # SWAPDB is seen at once by a connection that selected either database.
        assert db0.swapdb(0, 5) is True
        assert db0.get("k") == b"five" and db5.get("k") == b"zero"
        assert db5.get("only5") == b"x" and db0.exists("only5") == 0
        # FLUSHDB empties only the current database, FLUSHALL all of them.
        db5.flushdb()
        assert db5.dbsize() == 0 and db0.dbsize() == 1
        db5.set("again", "1")
        db0.flushall()
        assert db0.dbsize() == 0 and db5.dbsize() == 0
        # SELECT is per connection.
        with RawConn(node.port) as conn:
            assert conn.call("SELECT", "15") == b"OK"
            assert conn.call("SET", "fifteen", "1") == b"OK"
            assert conn.call("DBSIZE") == 1
            assert conn.call("SELECT", "16") == error("ERR DB index is out of range")
            assert conn.call("SELECT", "x") == error("ERR value is not an integer or out of range")
            assert conn.call("DBSIZE") == 1  # still in db 15
        assert db0.dbsize() == 0
        assert node.client(db=15).get("fifteen") == b"1"
    finally:
        db0.close()
        db5.close()


def test_info_keyspace_counts_databases(r: redis.Redis, node: RespkvProcess) -> None:
    r.mset({"a": 1, "b": 2})
    node.client(db=3).set("c", 3)
    keyspace = r.info("keyspace")
    assert keyspace["db0"]["keys"] == 2 and keyspace["db3"]["keys"] == 1
    assert "db1" not in keyspace


# --- pipelines -------------------------------------------------------------------------------


def test_pipeline_of_mixed_commands(r: redis.Redis) -> None:
    rng = random.Random(7)
    pipe = r.pipeline(transaction=False)
    expected: list[Any] = []
    model: dict[str, int] = {}
    for i in range(600):
        key = f"p{rng.randrange(20)}"
        op = rng.choice(["set", "get", "incr", "exists", "del"])
        if op == "set":
            value = rng.randrange(1000)
            pipe.set(key, value)
            model[key] = value
            expected.append(True)
        elif op == "get":
            pipe.get(key)
            expected.append(str(model[key]).encode() if key in model else None)
        elif op == "incr":
            pipe.incr(key)
            model[key] = model.get(key, 0) + 1
            expected.append(model[key])
        elif op == "exists":
            pipe.exists(key)
            expected.append(int(key in model))
        else:
            pipe.delete(key)
            expected.append(int(model.pop(key, None) is not None))
        if i % 100 == 50:  # an error in the middle does not disturb the rest
            call(pipe, "NOSUCHCOMMAND", i)
            expected.append(redis.ResponseError)
    results = pipe.execute(raise_on_error=False)
    assert len(results) == len(expected)
    for position, (got, want) in enumerate(zip(results, expected, strict=True)):
        if want is redis.ResponseError:
            assert isinstance(got, redis.ResponseError), position
            assert "unknown command 'NOSUCHCOMMAND'" in str(got)
        else:
            assert got == want, f"command {position}: {got!r} != {want!r}"


def test_pipelined_get_sees_only_earlier_sets(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.get(f"o{i}")  # before the SET: nothing
        pipe.set(f"o{i}", i)
        pipe.get(f"o{i}")  # after the SET: the value
        pipe.incr(f"o{i}")
        pipe.get(f"o{i}")
    results = pipe.execute()
    for i in range(200):
        assert results[5 * i : 5 * i + 5] == [None, True, str(i).encode(), i + 1, b"%d" % (i + 1)]


# --- errors ----------------------------------------------------------------------------------

EXACT_ERRORS = [
    (("NOSUCH",), b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n"),
    (
        ("nosuch", "a", "b c"),
        b"-ERR unknown command 'nosuch', with args beginning with: 'a' 'b c' \r\n",
    ),
    (("GET",), b"-ERR wrong number of arguments for 'get' command\r\n"),
    (("SET", "k"), b"-ERR wrong number of arguments for 'set' command\r\n"),
    (("MSET", "a", "1", "b"), b"-ERR wrong number of arguments for 'mset' command\r\n"),
    (("SET", "k", "v", "BAD"), b"-ERR syntax error\r\n"),
    (("SET", "k", "v", "EX", "10", "PX", "10"), b"-ERR syntax error\r\n"),
    (("SET", "k", "v", "EX", "0"), b"-ERR invalid expire time in 'set' command\r\n"),
    (("SET", "k", "v", "EX", "ten"), b"-ERR value is not an integer or out of range\r\n"),
    (("INCR", "text"), b"-ERR value is not an integer or out of range\r\n"),
    (("INCRBYFLOAT", "text", "1"), b"-ERR value is not a valid float\r\n"),
    (("INCR", "max"), b"-ERR increment or decrement would overflow\r\n"),
    (
        ("EXPIRE", "text", "10", "NX", "XX"),
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    ),
    (("SELECT", "99"), b"-ERR DB index is out of range\r\n"),
    (("SCAN", "notacursor"), b"-ERR invalid cursor\r\n"),
    (("RENAME", "nokey", "x"), b"-ERR no such key\r\n"),
    (("SETRANGE", "text", "-1", "x"), b"-ERR offset is out of range\r\n"),
]


@pytest.mark.parametrize(
    ("command", "reply"), EXACT_ERRORS, ids=[" ".join(c) for c, _ in EXACT_ERRORS]
)
def test_exact_error_replies(
    node: RespkvProcess, real: RealRedis, protocol: int, command: tuple[str, ...], reply: bytes
) -> None:
    for port in (node.port, real.port):
        with RawConn(port) as conn:
            conn.call("HELLO", protocol)
            conn.call("FLUSHALL")
            conn.call("SET", "text", "abc")
            conn.call("SET", "max", "9223372036854775807")
            conn.received.clear()
            conn.call(*command)
            where = "respkv" if port == node.port else "redis-server"
            assert bytes(conn.received) == reply, where
