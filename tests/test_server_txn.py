"""MULTI/EXEC/WATCH and Pub/Sub through one real respkv process: byte-for-byte against a real
redis-server for scripted sessions, and with redis-py (RESP2 and RESP3) and redis-cli."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
import redis

from tests._server_util import (
    RawConn,
    RealRedis,
    encode_command,
    require_binary,
    wait_until,
)
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


# Each step: the commands sent together, then how long to wait before the next step.
Script = list[tuple[list[list[str]], float]]

SESSIONS: dict[str, Script] = {
    "errors outside and inside MULTI": [
        ([["EXEC"]], 0),
        ([["DISCARD"]], 0),
        ([["MULTI"]], 0),
        ([["MULTI"]], 0),
        ([["WATCH", "a"]], 0),
        ([["SET", "a", "1"]], 0),
        ([["EXEC"]], 0),
        ([["MULTI"], ["FOO", "x"], ["SET", "a"], ["GET", "a"], ["EXEC"]], 0),
        ([["MULTI"], ["MULTI", "x"], ["EXEC"]], 0),
        ([["MULTI"], ["WATCH"], ["EXEC"]], 0),
        ([["MULTI"], ["EXEC", "x"], ["DISCARD"]], 0),
        ([["MULTI"], ["SET", "a", "2"], ["DISCARD"], ["EXEC"], ["GET", "a"]], 0),
    ],
    "runtime errors, reads and server commands inside EXEC": [
        ([["SET", "n", "5"], ["MULTI"], ["SET", "a", "x"], ["INCR", "a"], ["INCR", "n"]], 0),
        ([["PING"], ["ECHO", "e"], ["SELECT", "1"], ["GET", "a"], ["SET", "a", "db1"]], 0),
        ([["EXEC"], ["GET", "a"], ["SELECT", "0"], ["GET", "a"], ["GET", "n"]], 0),
        ([["MULTI"], ["SELECT", "99"], ["UNWATCH"], ["PUBLISH", "c", "m"], ["EXEC"]], 0),
        ([["MULTI"], ["EXEC"]], 0),
    ],
    "watch": [
        ([["SET", "k", "v"], ["WATCH", "k"], ["SET", "k", "v2"], ["MULTI"], ["EXEC"]], 0),
        ([["WATCH", "k"], ["UNWATCH"], ["SET", "k", "v3"], ["MULTI"], ["EXEC"]], 0),
        ([["WATCH", "k", "absent"], ["MULTI"], ["GET", "k"], ["EXEC"]], 0),
        ([["WATCH", "absent"], ["SET", "absent", "1"], ["MULTI"], ["GET", "k"], ["EXEC"]], 0),
        ([["WATCH", "k"], ["DEL", "k"], ["MULTI"], ["SET", "x", "1"], ["EXEC"], ["GET", "x"]], 0),
        ([["WATCH", "k"], ["MULTI"], ["SET", "k", "1"], ["DISCARD"], ["SET", "k", "2"]], 0),
        ([["MULTI"], ["EXEC"]], 0),  # DISCARD dropped the watch
        ([["SET", "t", "v", "PX", "400"], ["WATCH", "t"]], 0.7),  # expires before EXEC
        ([["MULTI"], ["SET", "y", "1"], ["EXEC"], ["GET", "y"]], 0),
        ([["WATCH", "t"], ["MULTI"], ["SET", "y", "2"], ["EXEC"]], 0),  # expired at WATCH
    ],
    "blocking pops inside MULTI never block": [
        ([["MULTI"], ["BLPOP", "nol", "0"], ["RPUSH", "l", "a", "b"], ["BRPOP", "l", "0"]], 0),
        ([["BLMOVE", "l", "m", "LEFT", "RIGHT", "0"], ["BLPOP", "l", "0"], ["EXEC"]], 0),
        ([["LRANGE", "m", "0", "-1"], ["EXISTS", "l"]], 0),
    ],
    "pubsub in RESP2": [
        ([["PUBSUB", "CHANNELS"], ["PUBSUB", "NUMSUB", "a", "b"], ["PUBSUB", "NUMPAT"]], 0),
        ([["PUBSUB", "SHARDCHANNELS"], ["PUBSUB", "SHARDNUMSUB", "a"], ["PUBSUB", "FOO"]], 0),
        ([["PUBSUB"], ["PUBSUB", "NUMPAT", "x"], ["PUBSUB", "CHANNELS", "a", "b"]], 0),
        ([["PUBSUB", "HELP"], ["SUBSCRIBE"], ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"]], 0),
        ([["SUBSCRIBE", "a", "b", "a"], ["PSUBSCRIBE", "a*", "b*"], ["GET", "x"]], 0),
        ([["SET", "x", "1"], ["MULTI"], ["PING"], ["PING", "hi"], ["NOSUCH"]], 0),
        ([["PUBLISH", "a", "m"], ["UNSUBSCRIBE", "a", "zz"], ["PUNSUBSCRIBE"]], 0),
        ([["UNSUBSCRIBE"], ["PING"], ["MULTI"], ["SUBSCRIBE", "s1", "s2"], ["EXEC"]], 0),
        ([["GET", "x"], ["RESET"], ["GET", "x"], ["PUBLISH", "s1", "m"]], 0),
    ],
    "pubsub in RESP3": [
        ([["HELLO", "3"]], 0),
        ([["SUBSCRIBE", "a"], ["GET", "k"], ["PING"], ["PUBLISH", "a", "hello"]], 0),
        ([["PSUBSCRIBE", "a*"], ["PUBLISH", "a", "hello"], ["PUBSUB", "NUMSUB", "a"]], 0),
        ([["UNSUBSCRIBE"], ["PUNSUBSCRIBE"], ["MULTI"], ["GET", "k"], ["PUBLISH", "a", "x"]], 0),
        ([["EXEC"], ["SUBSCRIBE", "q"]], 0),
        ([["PUBLISH", "q", "m"]], 0),
        ([["HELLO", "2"]], 0),
        ([["GET", "k"], ["PING"], ["RESET"], ["GET", "k"]], 0),
    ],
}


def _play(port: int, script: Script) -> list[bytes]:
    """What the server sent back to each step, as bytes."""
    out = []
    with RawConn(port) as conn:
        for commands, pause in script:
            data = b"".join(encode_command(*c) for c in commands)
            out.append(conn.exchange(data, quiet=0.25))
            time.sleep(pause)
    return out


@pytest.mark.parametrize("name", list(SESSIONS))
def test_session_is_byte_identical_to_redis(
    node: RespkvProcess, real: RealRedis, name: str
) -> None:
    script = SESSIONS[name]
    node.client().flushall()
    real.client().flushall()
    ours, theirs = _play(node.port, script), _play(real.port, script)
    for step, (mine, redis_bytes) in enumerate(zip(ours, theirs, strict=True)):
        if script[step][0][0][0] == "HELLO":
            continue  # the connection id differs
        assert mine == redis_bytes, f"step {step} {script[step][0]}"


# --- redis-py --------------------------------------------------------------------------------


def test_pipeline_transaction(r: redis.Redis) -> None:
    r.set("n", 1)
    with r.pipeline(transaction=True) as pipe:
        pipe.incr("n").get("n").set("s", "x").incr("s")
        replies = pipe.execute(raise_on_error=False)
    assert replies[:3] == [2, b"2", True]
    assert isinstance(replies[3], redis.ResponseError)
    assert r.get("n") == b"2" and r.get("s") == b"x"


def test_queue_time_error_aborts_everything(r: redis.Redis) -> None:
    with r.pipeline(transaction=True) as pipe:
        pipe.set("a", 1)
        pipe.execute_command("NOSUCHCOMMAND")
        with pytest.raises(redis.ResponseError, match="unknown command"):
            pipe.execute()
    assert r.get("a") is None


def test_watch_conflict_aborts_and_transaction_helper_retries(
    node: RespkvProcess, r: redis.Redis, protocol: int
) -> None:
    r.set("counter", 0)
    other = node.client(protocol=protocol)
    attempts = []

    def increment(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("counter") or 0)
        attempts.append(value)
        if len(attempts) == 1:
            other.incr("counter")  # a concurrent modifier between WATCH and EXEC
        pipe.multi()
        pipe.set("counter", value + 10)

    r.transaction(increment, "counter")
    assert attempts == [0, 1]  # the first EXEC was aborted, the second saw the change
    assert r.get("counter") == b"11"
    with r.pipeline() as pipe:
        pipe.watch("counter")
        other.set("counter", "x")
        pipe.multi()
        pipe.set("counter", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("counter") == b"x"
    other.close()


def test_concurrent_increments_with_watch_lose_nothing(node: RespkvProcess) -> None:
    node.client().set("shared", 0)

    def add_one(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("shared"))
        pipe.multi()
        pipe.set("shared", value + 1)

    def worker() -> None:
        client = node.client()
        for _ in range(15):
            client.transaction(add_one, "shared")
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert node.client().get("shared") == b"60"


def test_pubsub_with_redis_py(node: RespkvProcess, r: redis.Redis, protocol: int) -> None:
    sub = node.client(protocol=protocol).pubsub()
    sub.subscribe("news")
    sub.psubscribe("n*")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    assert sub.get_message(timeout=5)["type"] == "psubscribe"
    assert r.publish("news", "hello") == 2
    assert r.publish("nothing-here", "x") == 1  # the pattern only
    got = [sub.get_message(timeout=5) for _ in range(3)]
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("message", b"news", b"hello"),
        ("pmessage", b"news", b"hello"),
        ("pmessage", b"nothing-here", b"x"),
    ]
    assert r.pubsub_numsub("news", "other") == [(b"news", 1), (b"other", 0)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == [b"news"]
    sub.close()
    wait_until(lambda: r.pubsub_numpat() == 0, what="the closed subscriber to be forgotten")
    assert r.publish("news", "again") == 0


def test_slow_subscriber_is_disconnected_at_the_output_limit(
    node: RespkvProcess, r: redis.Redis
) -> None:
    assert r.config_set("client-output-buffer-limit", "pubsub 2mb 1mb 60")
    try:
        with RawConn(node.port) as slow:
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.send(encode_command("SUBSCRIBE", "firehose"))
            payload = "x" * 65536
            closed = False
            for _ in range(400):  # 26 MB, never read by the subscriber
                r.publish("firehose", payload)
                if r.pubsub_numsub("firehose") == [(b"firehose", 0)]:
                    closed = True
                    break
            assert closed, "the slow subscriber was never disconnected"
        assert r.ping()  # the server is fine
    finally:
        r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
    limit = r.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    assert limit.endswith("pubsub 33554432 8388608 60")


def test_redis_cli_multi_exec_and_subscribe(node: RespkvProcess) -> None:
    cli = require_binary("redis-cli", "redis-tools")
    node.client().flushall()
    out = subprocess.run(
        [cli, "-p", str(node.port)],
        input=b"MULTI\nSET a 10\nINCRBY a 5\nGET a\nEXEC\n",
        capture_output=True,
        timeout=30,
    ).stdout.decode()
    assert out.split("\n")[:8] == ["OK", "QUEUED", "QUEUED", "QUEUED", "OK", "15", "15", ""]
    sub = subprocess.Popen(
        [cli, "-p", str(node.port), "SUBSCRIBE", "cli-chan"], stdout=subprocess.PIPE
    )
    try:
        client = node.client()
        wait_until(lambda: client.publish("cli-chan", "from-py") == 1, what="cli to subscribe")
        assert sub.stdout is not None
        lines = [sub.stdout.readline().strip() for _ in range(6)]
        assert lines == [b"subscribe", b"cli-chan", b"1", b"message", b"cli-chan", b"from-py"]
    finally:
        sub.kill()
        sub.wait()
