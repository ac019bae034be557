"""Hashes and sets through a real respkv process: redis-py in RESP2 and RESP3 (its own reply
parsing, so the wire types must be right), raw RESP3 bytes, and redis-cli."""

from __future__ import annotations

import subprocess

import pytest
import redis

from tests._server_util import RawConn, encode_command, require_binary
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


def test_hashes_with_redis_py(r: redis.Redis) -> None:
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "one") == 0
    assert r.hget("h", "a") == b"one"
    assert r.hgetall("h") == {b"a": b"one", b"b": b"2"}
    assert r.hgetall("nokey") == {}
    assert r.hmget("h", ["a", "zz"]) == [b"one", None]
    assert r.hlen("h") == 2
    assert r.hexists("h", "b") is True
    assert sorted(r.hkeys("h")) == [b"a", b"b"]
    assert sorted(r.hvals("h")) == [b"2", b"one"]
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrbyfloat("h", "f", 1.5) == 1.5
    assert r.hsetnx("h", "a", "x") == 0
    assert r.hstrlen("h", "a") == 3
    assert r.hrandfield("h") in {b"a", b"b", b"n", b"f"}
    pairs = r.hrandfield("h", 2, withvalues=True)
    if r.get_connection_kwargs()["protocol"] == 3:  # an array of [field, value] arrays
        assert all(isinstance(p, list) and len(p) == 2 for p in pairs)
        pairs = [x for p in pairs for x in p]
    assert len(pairs) == 4  # RESP2: flat
    assert all(r.hget("h", f) == v for f, v in zip(pairs[::2], pairs[1::2], strict=True))
    cursor, page = r.hscan("h", 0, count=100)
    assert cursor == 0 and page == r.hgetall("h")
    assert dict(r.hscan_iter("h", count=1)) == r.hgetall("h")
    assert r.hdel("h", "a", "b", "n", "f") == 4
    assert r.exists("h") == 0
    r.set("s", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.hset("s", "a", "1")
    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hset("h2", "x", "abc")
        r.hincrby("h2", "x", 1)


def test_sets_with_redis_py(r: redis.Redis) -> None:
    assert r.sadd("s", "a", "b", "c") == 3
    assert r.smembers("s") == {b"a", b"b", b"c"}
    assert r.smembers("nokey") == set()
    assert r.sismember("s", "a") in (1, True)
    assert r.smismember("s", ["a", "z"]) in ([1, 0], [True, False])
    assert r.scard("s") == 3
    r.sadd("t", "b", "c", "d")
    assert r.sinter("s", "t") == {b"b", b"c"}
    assert r.sunion("s", "t") == {b"a", b"b", b"c", b"d"}
    assert r.sdiff("s", "t") == {b"a"}
    assert r.sintercard(2, ["s", "t"]) == 2
    assert r.sinterstore("dst", ["s", "t"]) == 2
    assert r.smembers("dst") == {b"b", b"c"}
    assert r.smove("s", "t", "a") is True
    assert r.srandmember("t") in {b"a", b"b", b"c", b"d"}
    assert set(r.srandmember("t", 10)) == {b"a", b"b", b"c", b"d"}
    popped = r.spop("t", 2)
    assert len(set(popped)) == 2 and not set(popped) & r.smembers("t")
    assert r.spop("nokey") is None
    assert set(r.sscan_iter("t", count=1)) == r.smembers("t")
    assert r.type("t") == b"set"
    assert r.type("dst") == b"set"
    assert sorted(r.scan_iter(_type="set")) == [b"dst", b"s", b"t"]
    assert r.copy("t", "t2") is True
    assert r.smembers("t2") == r.smembers("t")


def test_resp3_wire_types(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.call("HELLO", "3")
        conn.call("FLUSHALL")
        conn.call("HSET", "h", "a", "1")
        conn.call("SADD", "s", "x")
        for command, expected in (
            (("HGETALL", "h"), b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"),
            (("SMEMBERS", "s"), b"~1\r\n$1\r\nx\r\n"),
            (("SINTER", "s", "s"), b"~1\r\n$1\r\nx\r\n"),
            (("HRANDFIELD", "h", "1", "WITHVALUES"), b"*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"),
            (("SRANDMEMBER", "s", "1"), b"*1\r\n$1\r\nx\r\n"),
            (("SPOP", "nokey", "1"), b"~0\r\n"),
            (("HGET", "h", "zz"), b"_\r\n"),
        ):
            conn.received.clear()
            conn.send(encode_command(*command))
            conn.read_reply()
            assert bytes(conn.received) == expected, command


def test_redis_cli(node: RespkvProcess) -> None:
    cli = require_binary("redis-cli", "redis-tools")

    def run(*args: str) -> str:
        result = subprocess.run([cli, "-p", str(node.port), *args], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode(errors="replace")

    run("FLUSHALL")
    assert run("HSET", "user:1", "name", "ada", "lang", "en") == "2\n"
    assert run("HGETALL", "user:1") == "lang\nen\nname\nada\n"
    assert run("-3", "HGETALL", "user:1") == "lang en\nname ada\n"  # a map, as redis-cli shows it
    assert run("SADD", "tags", "x", "y") == "2\n"
    assert run("SMEMBERS", "tags") == "x\ny\n"
    assert run("TYPE", "tags") == "set\n"
    assert run("HGET", "tags", "a") == (
        "WRONGTYPE Operation against a key holding the wrong kind of value\n\n"
    )  # redis-cli's non-tty error output, as against redis-server
