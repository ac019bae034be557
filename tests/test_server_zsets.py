"""Sorted sets through a real respkv process: redis-py (RESP2 and RESP3), the exact bytes of
every reply against a real redis-server 7.0.15, and redis-cli's rendering of RESP3 doubles."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest
import redis

from tests._server_util import RealRedis, encode_command, require_binary
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


def pairs(reply: Any) -> list[tuple[Any, ...]]:
    """redis-py's (member, score) pairs: tuples in RESP2, lists in RESP3."""
    return [tuple(p) for p in reply]


def test_redis_py_sorted_set_api(r: redis.Redis) -> None:
    assert r.zadd("z", {"a": 1, "b": 2.5, "c": float("inf"), "d": -0.0}) == 4
    assert r.zscore("z", "b") == 2.5
    assert r.zscore("z", "c") == float("inf")
    assert r.zscore("z", "nope") is None
    assert r.zmscore("z", ["a", "x"]) == [1.0, None]
    assert r.zcard("z") == 4
    assert pairs(r.zrange("z", 0, -1, withscores=True)) == [
        (b"d", 0.0),
        (b"a", 1.0),
        (b"b", 2.5),
        (b"c", float("inf")),
    ]
    assert r.zrangebyscore("z", "(0", "+inf", start=0, num=2) == [b"a", b"b"]
    assert pairs(r.zrevrangebyscore("z", "+inf", "-inf", withscores=True, start=1, num=1)) == [
        (b"b", 2.5)
    ]
    assert r.zrange("z", "(1", "+inf", byscore=True, desc=False) == [b"b", b"c"]
    assert r.zrank("z", "b") == 2
    assert r.zrevrank("z", "b") == 1
    assert r.zincrby("z", 0.5, "a") == 1.5
    assert r.zadd("z", {"a": 1}, nx=True, incr=True) is None
    assert r.zcount("z", 1, 3) == 2
    # without a count, RESP3 carries one flat [member, score] (as Redis 7.0 sends it)
    assert r.zpopmin("z") in ([(b"d", 0.0)], [b"d", 0.0])
    assert pairs(r.zpopmax("z", 2)) == [(b"c", float("inf")), (b"b", 2.5)]
    assert r.zadd("l", {"a": 0, "b": 0, "c": 0}) == 3
    assert r.zrangebylex("l", "(a", "+") == [b"b", b"c"]
    assert r.zlexcount("l", "-", "+") == 3
    assert r.zunionstore("u", {"z": 2, "l": 1}, aggregate="MAX") == 3
    assert pairs(r.zrange("u", 0, -1, withscores=True)) == [(b"b", 0.0), (b"c", 0.0), (b"a", 3.0)]
    assert r.zinterstore("i", ["u", "l"]) == 3
    assert r.zrangestore("s", "u", 0, 0) == 1
    assert r.zremrangebyscore("u", "-inf", "(1") == 2
    assert r.zrandmember("u") == b"a"
    # redis-py leaves this reply as sent: RESP2 flat strings, RESP3 pairs with doubles
    assert r.zrandmember("u", 2, withscores=True) in ([b"a", b"3"], [[b"a", 3.0]])
    assert pairs(r.zscan("u")[1]) == [(b"a", 3.0)]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.set("str", "x")
        r.zadd("str", {"a": 1})
    with pytest.raises(redis.ResponseError, match="min or max is not a float"):
        r.zcount("z", "x", 1)


#: Every reply is compared byte for byte with redis-server's, in RESP2 and in RESP3.
SCRIPT: list[tuple[str, ...]] = [
    ("ZADD", "z", "1", "a", "0.1", "b", "-inf", "c", "inf", "d", "-0", "e", "1e16", "f"),
    ("ZSCORE", "z", "b"),
    ("ZSCORE", "z", "f"),
    ("ZSCORE", "z", "e"),
    ("ZSCORE", "z", "x"),
    ("ZMSCORE", "z", "a", "x", "c"),
    ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("ZRANGE", "z", "0", "-1"),
    ("ZRANGE", "z", "(0", "+inf", "BYSCORE", "REV", "LIMIT", "0", "2", "WITHSCORES"),
    ("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"),
    ("ZREVRANGE", "z", "0", "2", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "-inf", "1", "WITHSCORES"),
    ("ZRANGEBYLEX", "z", "-", "+"),
    ("ZRANK", "z", "a"),
    ("ZREVRANK", "z", "x"),
    ("ZINCRBY", "z", "2.5", "a"),
    ("ZADD", "z", "INCR", "1", "a"),
    ("ZADD", "z", "NX", "INCR", "1", "a"),
    ("ZADD", "z", "XX", "CH", "GT", "9", "a", "0", "b"),
    ("ZADD", "z", "NX", "XX", "1", "a"),
    ("ZADD", "z", "GT", "LT", "1", "a"),
    ("ZADD", "z", "nan", "a"),
    ("ZINCRBY", "z", "-inf", "d"),
    ("ZCARD", "z"),
    ("ZCOUNT", "z", "(0", "inf"),
    ("ZLEXCOUNT", "z", "[a", "(z"),
    ("ZPOPMIN", "z"),
    ("ZPOPMIN", "z", "2"),
    ("ZPOPMAX", "z", "0"),
    ("ZPOPMAX", "nokey"),
    ("ZPOPMAX", "nokey", "3"),
    ("ZRANDMEMBER", "nokey"),
    ("ZRANDMEMBER", "nokey", "2", "WITHSCORES"),
    ("ZADD", "y", "1", "one"),
    ("ZRANDMEMBER", "y", "1", "WITHSCORES"),
    ("ZRANDMEMBER", "y", "-2", "WITHSCORES"),
    ("ZSCAN", "y", "0"),
    ("ZUNIONSTORE", "u", "2", "z", "y", "WEIGHTS", "2", "3"),
    ("ZRANGE", "u", "0", "-1", "WITHSCORES"),
    ("ZINTERSTORE", "i", "2", "z", "y"),
    ("ZUNIONSTORE", "u", "0", "z"),
    ("ZRANGESTORE", "r", "u", "0", "-1", "WITHSCORES"),
    ("ZRANGESTORE", "r", "u", "0", "1"),
    ("ZREMRANGEBYRANK", "r", "0", "0"),
    ("ZREMRANGEBYSCORE", "u", "(1", "+inf"),
    ("ZREMRANGEBYLEX", "u", "-", "+"),
    ("ZADD", "w", "0", "a", "1", "b", "2", "c"),
    ("ZUNION", "2", "w", "u", "WEIGHTS", "-1", "2", "WITHSCORES"),
    ("ZINTER", "2", "w", "w", "AGGREGATE", "MAX", "WITHSCORES"),
    ("ZDIFF", "2", "w", "i", "WITHSCORES"),
    ("ZINTERCARD", "2", "w", "w", "LIMIT", "2"),
    ("ZDIFFSTORE", "d", "1", "w"),
    ("ZMPOP", "2", "nokey", "w", "MAX", "COUNT", "2"),
    ("ZMPOP", "1", "nokey", "MIN"),
    ("SET", "s", "x"),
    ("ZRANGE", "s", "0", "-1"),
    ("ZREM", "y", "one"),
    ("EXISTS", "y"),
]


def _connect(port: int, protocol: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if protocol == 3:
        sock.sendall(encode_command("HELLO", "3"))
        _quiet_read(sock)
    return sock


def _quiet_read(sock: socket.socket, quiet: float = 0.05) -> bytes:
    """Bytes until the reply is complete: a short silence after some data."""
    data = bytearray()
    sock.settimeout(10)
    data += sock.recv(1 << 16)
    sock.settimeout(quiet)
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return bytes(data)


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_reply_bytes_match_redis(node: RespkvProcess, real: RealRedis, protocol: int) -> None:
    ours, theirs = _connect(node.port, protocol), _connect(real.port, protocol)
    try:
        for sock in (ours, theirs):
            sock.sendall(encode_command("FLUSHALL"))
            _quiet_read(sock)
        for command in SCRIPT:
            replies = []
            for sock in (ours, theirs):
                sock.sendall(encode_command(*command))
                replies.append(_quiet_read(sock))
            assert replies[0] == replies[1], (
                f"{command}: respkv {replies[0]!r} redis {replies[1]!r}"
            )
    finally:
        ours.close()
        theirs.close()


def test_redis_cli_shows_scores(node: RespkvProcess) -> None:
    cli = require_binary("redis-cli", "redis-tools")

    def run(*args: str) -> str:
        result = subprocess.run([cli, "-p", str(node.port), *args], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode(errors="replace")

    run("FLUSHALL")
    assert run("ZADD", "z", "1.5", "a", "inf", "b") == "2\n"
    assert run("--no-raw", "ZRANGE", "z", "0", "-1", "WITHSCORES") == (
        '1) "a"\n2) "1.5"\n3) "b"\n4) "inf"\n'
    )
    assert run("-3", "--no-raw", "ZRANGE", "z", "0", "-1", "WITHSCORES") == (
        '1) 1) "a"\n   2) (double) 1.5\n2) 1) "b"\n   2) (double) inf\n'
    )
    assert run("-3", "--no-raw", "ZSCORE", "z", "a") == "(double) 1.5\n"
    assert run("-3", "--no-raw", "ZPOPMIN", "z") == '1) "a"\n2) (double) 1.5\n'
    assert run("ZCARD", "z") == "1\n"
