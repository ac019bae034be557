"""Lists and blocking pops through real respkv processes with redis-py (RESP2 and RESP3): one
node for the commands and the blocking behaviour, three nodes for a blocking pop through a
follower and for blocking pops across a leader failover (SIGKILL)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from respkv_proc import Cluster, control_client

from tests._server_util import RawConn, bare, call, require_binary, wait_until
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


def blocked_clients(port: int) -> int:
    with control_client(port) as c:
        return int(c.info("clients")["blocked_clients"])


class Background:
    """Run ``fn`` in a thread; ``result()`` waits for its value (or raises its error)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished_at = 0.0
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:
            self.error = e
        self.finished_at = time.monotonic()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = 20.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "still blocked"
        if self.error is not None:
            raise self.error
        return self.value


def blpop_in_background(port: int, protocol: int, *args: Any) -> Background:
    client = bare(port, protocol=protocol)
    return Background(lambda: call(client, *args))


# --- commands ------------------------------------------------------------------------------


def test_list_commands(r: redis.Redis) -> None:
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r.lindex("l", -1) == b"c"
    assert r.linsert("l", "BEFORE", "b", "X") == 5
    assert r.lrem("l", 0, "X") == 1
    assert r.lpos("l", "c") == 3
    assert r.lpos("l", "a", count=0) == [1]
    assert r.lset("l", 0, "Z") is True
    assert r.lmove("l", "m", "LEFT", "RIGHT") == b"Z"
    assert r.rpoplpush("l", "m") == b"c"
    assert r.lrange("m", 0, -1) == [b"c", b"Z"]
    assert r.lpop("l", 5) == [b"a", b"b"]
    assert r.exists("l") == 0
    assert r.ltrim("m", 1, 1) is True
    assert r.llen("m") == 1
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("s", "a")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.blpop(["nokey", "s"], 1)


def test_null_shapes_on_the_wire(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.call("FLUSHALL")
        conn.received.clear()
        assert conn.call("LPOP", "nokey", "1") is None
        assert conn.call("LPOP", "nokey") is None
        assert conn.call("BLPOP", "nokey", "0.05") is None
        assert conn.call("BLMOVE", "nokey", "x", "LEFT", "LEFT", "0.05") is None
        assert bytes(conn.received) == b"*-1\r\n$-1\r\n*-1\r\n$-1\r\n"
    with RawConn(node.port) as conn:
        conn.call("HELLO", "3")
        conn.received.clear()
        conn.call("LPOP", "nokey", "1")
        conn.call("LPOP", "nokey")
        conn.call("BLPOP", "nokey", "0.05")
        conn.call("RPUSH", "l", "a")
        conn.call("LPOP", "l", "0")
        assert bytes(conn.received) == b"_\r\n_\r\n_\r\n:1\r\n*0\r\n"


def test_blocking_timeout_errors(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        assert conn.call("BLPOP", "k", "-1") == ("error", "ERR timeout is negative")
        assert conn.call("BRPOP", "k", "abc") == (
            "error",
            "ERR timeout is not a float or out of range",
        )
        assert conn.call("BLMOVE", "k", "d", "UP", "LEFT", "0") == ("error", "ERR syntax error")
        assert conn.call("BLPOP", "k") == (
            "error",
            "ERR wrong number of arguments for 'blpop' command",
        )


# --- blocking ----------------------------------------------------------------------------------


def test_blpop_is_woken_by_a_push_from_another_client(
    node: RespkvProcess, r: redis.Redis, protocol: int
) -> None:
    waiting = blpop_in_background(node.port, protocol, "BLPOP", "q1", "q2", "0")
    wait_until(lambda: blocked_clients(node.port) == 1, what="BLPOP to block")
    assert not waiting.done()
    assert r.lpush("q2", "hello") == 1
    assert waiting.result() == [b"q2", b"hello"]
    assert r.exists("q2") == 0
    assert blocked_clients(node.port) == 0


def test_blpop_times_out_with_nil_after_about_the_timeout(
    node: RespkvProcess, protocol: int
) -> None:
    started = time.monotonic()
    waiting = blpop_in_background(node.port, protocol, "BRPOP", "nothing", "0.6")
    assert waiting.result() is None
    elapsed = waiting.finished_at - started
    assert 0.55 <= elapsed < 3.0, elapsed
    assert blocked_clients(node.port) == 0


def test_two_blocked_clients_are_served_first_come_first_served(
    node: RespkvProcess, r: redis.Redis, protocol: int
) -> None:
    first = blpop_in_background(node.port, protocol, "BLPOP", "fifo", "0")
    wait_until(lambda: blocked_clients(node.port) == 1, what="the first client to block")
    second = blpop_in_background(node.port, protocol, "BLPOP", "fifo", "0")
    wait_until(lambda: blocked_clients(node.port) == 2, what="the second client to block")
    r.rpush("fifo", "one")
    assert first.result() == [b"fifo", b"one"]
    wait_until(lambda: blocked_clients(node.port) == 1, what="one client served")
    assert not second.done()
    r.rpush("fifo", "two", "three")
    assert second.result() == [b"fifo", b"two"]
    assert r.lrange("fifo", 0, -1) == [b"three"]


def test_blmove_and_brpoplpush_block_then_move(
    node: RespkvProcess, r: redis.Redis, protocol: int
) -> None:
    waiting = blpop_in_background(node.port, protocol, "BLMOVE", "src", "dst", "RIGHT", "LEFT", "0")
    wait_until(lambda: blocked_clients(node.port) == 1, what="BLMOVE to block")
    r.rpush("dst", "old")
    assert not waiting.done()  # a push to the destination does not wake it
    r.rpush("src", "a", "b")
    assert waiting.result() == b"b"
    assert r.lrange("src", 0, -1) == [b"a"]
    assert r.lrange("dst", 0, -1) == [b"b", b"old"]
    assert r.brpoplpush("src", "dst", 1) == b"a"
    assert r.exists("src") == 0


def test_pipelined_push_then_blpop_and_a_blocked_client_blocks_its_connection(
    node: RespkvProcess, r: redis.Redis
) -> None:
    with RawConn(node.port) as conn:
        conn.call("FLUSHALL")
        conn.send(
            b"*3\r\n$5\r\nRPUSH\r\n$1\r\np\r\n$1\r\nx\r\n"
            b"*3\r\n$5\r\nBLPOP\r\n$1\r\np\r\n$1\r\n0\r\n"
            b"*3\r\n$5\r\nBLPOP\r\n$1\r\np\r\n$1\r\n0\r\n"
            b"*3\r\n$5\r\nRPUSH\r\n$1\r\np\r\n$1\r\ny\r\n"
        )
        assert conn.read_replies(2) == [1, [b"p", b"x"]]
        # The second BLPOP blocks the connection: its own RPUSH after it waits, as in Redis.
        wait_until(lambda: blocked_clients(node.port) == 1, what="the second BLPOP to block")
        assert r.llen("p") == 0
        r.rpush("p", "z")
        assert conn.read_replies(2) == [[b"p", b"z"], 1]
        assert r.lrange("p", 0, -1) == [b"y"]


def test_a_disconnected_blocked_client_takes_nothing(node: RespkvProcess, r: redis.Redis) -> None:
    conn = RawConn(node.port)
    conn.send(b"*3\r\n$5\r\nBLPOP\r\n$4\r\ngone\r\n$1\r\n0\r\n")
    wait_until(lambda: blocked_clients(node.port) == 1, what="BLPOP to block")
    conn.close()
    wait_until(lambda: blocked_clients(node.port) == 0, what="the server to forget the client")
    r.rpush("gone", "kept")
    assert r.lrange("gone", 0, -1) == [b"kept"]


# --- three nodes -------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path / "cluster",
        3,
        raft_extra="heartbeat_interval_ms = 50\nelection_timeout_ms = 500\n",
    )
    try:
        yield c.start()
    finally:
        c.close()


def test_blocking_pop_through_a_follower(cluster: Cluster) -> None:
    leader = cluster.wait_leader(timeout=30)
    follower = next(i for i in cluster.ids if i != leader)
    port = cluster.port(follower)
    waiting = blpop_in_background(port, 2, "BLPOP", "fq", "0")
    wait_until(lambda: blocked_clients(port) == 1, what="BLPOP to block on the follower")
    cluster.client(leader).rpush("fq", "v1", "v2")
    assert waiting.result() == [b"fq", b"v1"]
    cluster.wait_caught_up()
    for i in cluster.ids:
        with control_client(cluster.port(i)) as c:
            assert c.execute_command("READONLY")
            assert c.lrange("fq", 0, -1) == [b"v2"], i
    moved = blpop_in_background(port, 3, "BLMOVE", "fq", "fd", "LEFT", "LEFT", "5")
    assert moved.result() == b"v2"


def test_blocking_pops_across_a_leader_failover(cluster: Cluster) -> None:
    """Consumers block on every node while producers push unique elements through the
    followers; the leader is SIGKILLed meanwhile. Afterwards no element was popped twice, no
    popped element is still in the list, and every acknowledged push is in the list, was
    popped, or is accounted for by a pop whose outcome the client could not know."""
    leader = cluster.wait_leader(timeout=30)
    followers = [i for i in cluster.ids if i != leader]
    stop = threading.Event()
    lock = threading.Lock()
    popped: list[bytes] = []
    pushed: list[bytes] = []
    uncertain = [0]  # pops that failed after being sent: each may have taken an element

    def consume(node_id: int) -> None:
        client = control_client(cluster.port(node_id), timeout=10)
        while not stop.is_set():
            try:
                reply = client.blpop(["jobs"], 1)
            except (redis.ConnectionError, redis.TimeoutError):
                with lock:
                    uncertain[0] += 1
                if node_id == leader:
                    return  # the killed node's consumers are done
                client = control_client(cluster.port(node_id), timeout=10)
                continue
            except redis.ResponseError:
                with lock:
                    uncertain[0] += 1
                continue
            if reply is not None:
                with lock:
                    popped.append(reply[1])

    def produce(node_id: int, prefix: str) -> None:
        client = control_client(cluster.port(node_id), timeout=10)
        n = 0
        while not stop.is_set():
            element = f"{prefix}-{n}".encode()
            n += 1
            try:
                client.rpush("jobs", element)
            except (redis.RedisError, OSError):
                client = control_client(cluster.port(node_id), timeout=10)
                continue
            with lock:
                pushed.append(element)
            time.sleep(0.01)

    threads = [
        threading.Thread(target=consume, args=(i,), daemon=True)
        for i in cluster.ids
        for _ in range(2)
    ] + [threading.Thread(target=produce, args=(i, f"p{i}"), daemon=True) for i in followers]
    for t in threads:
        t.start()
    wait_until(lambda: len(popped) >= 20, timeout=30, what="pops before the failover")
    # A client parked (no timeout) on a follower before the failover is served after it.
    parked = blpop_in_background(cluster.port(followers[0]), 3, "BLPOP", "parked", "0")
    wait_until(lambda: blocked_clients(cluster.port(followers[0])) >= 1, what="parked client")
    cluster.kill(leader)
    new_leader = cluster.wait_leader(among=followers, timeout=30)
    with control_client(cluster.port(followers[1]), timeout=10) as c:
        c.rpush("parked", "after-failover")
    assert parked.result() == [b"parked", b"after-failover"]
    before = len(popped)
    wait_until(lambda: len(popped) >= before + 100, timeout=30, what="pops after the failover")
    stop.set()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    with control_client(cluster.port(new_leader), timeout=10) as c:
        remaining = c.lrange("jobs", 0, -1)
    print(
        f"pushed {len(pushed)}, popped {len(popped)}, left {len(remaining)}, "
        f"uncertain pops {uncertain[0]}, leader {leader} -> {new_leader}"
    )
    assert len(set(popped)) == len(popped), "an element was popped twice"
    assert not set(popped) & set(remaining), "a popped element is still in the list"
    assert len(set(remaining)) == len(remaining)
    lost = set(pushed) - set(popped) - set(remaining)
    assert len(lost) <= uncertain[0], (lost, uncertain[0])
    assert len(popped) >= before + 100


def test_a_list_renamed_onto_the_key_wakes_the_client(node: RespkvProcess, r: redis.Redis) -> None:
    """As in Redis, a list that appears at the key by RENAME (or MOVE, COPY) serves it."""
    waiting = blpop_in_background(node.port, 2, "BLPOP", "target", "0")
    wait_until(lambda: blocked_clients(node.port) == 1, what="BLPOP to block")
    r.set("other", "string")  # another type at another key wakes nobody
    r.rpush("staging", "a", "b")
    assert not waiting.done()
    assert r.rename("staging", "target") is True
    assert waiting.result() == [b"target", b"a"]
    assert r.lrange("target", 0, -1) == [b"b"]


def test_a_client_parked_on_a_leader_that_hands_over_stays_parked(cluster: Cluster) -> None:
    """A deposed leader keeps its parked clients; their pop then goes to the new leader."""
    leader = cluster.wait_leader(timeout=30)
    port = cluster.port(leader)
    waiting = blpop_in_background(port, 2, "BRPOP", "handover", "0")
    wait_until(lambda: blocked_clients(port) == 1, what="BRPOP to block on the leader")
    target = next(i for i in cluster.ids if i != leader)
    with control_client(port, timeout=10) as c:
        assert c.execute_command("CLUSTER", "FAILOVER", str(target)) == b"OK"
    new_leader = cluster.wait_leader(timeout=30, not_=leader)
    assert not waiting.done()
    cluster.client(new_leader).rpush("handover", "x", "y")
    assert waiting.result() == [b"handover", b"y"]
    with control_client(cluster.port(new_leader), timeout=10) as c:
        assert c.lrange("handover", 0, -1) == [b"x"]


def test_a_client_waiting_on_two_keys_does_not_hold_up_the_other_key(
    node: RespkvProcess, r: redis.Redis
) -> None:
    both = blpop_in_background(node.port, 2, "BLPOP", "k1", "k2", "0")
    wait_until(lambda: blocked_clients(node.port) == 1, what="the first client to block")
    second = blpop_in_background(node.port, 2, "BLPOP", "k2", "0")
    wait_until(lambda: blocked_clients(node.port) == 2, what="the second client to block")
    with RawConn(node.port) as conn:  # one pipeline: both pushes land in one apply batch
        conn.send(
            b"*3\r\n$5\r\nRPUSH\r\n$2\r\nk1\r\n$1\r\na\r\n*3\r\n$5\r\nRPUSH\r\n$2\r\nk2\r\n$1\r\nb\r\n"
        )
        assert conn.read_replies(2) == [1, 1]
    assert both.result() == [b"k1", b"a"]
    assert second.result(timeout=5) == [b"k2", b"b"]  # not held up by the first client
    assert r.exists("k1", "k2") == 0


def test_redis_cli(node: RespkvProcess) -> None:
    """redis-cli renders list replies as against redis-server, and a BLPOP it sends blocks
    until another client pushes."""
    cli = require_binary("redis-cli", "redis-tools")

    def run(*args: str) -> str:
        result = subprocess.run([cli, "-p", str(node.port), *args], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode(errors="replace")

    run("DEL", "cli:l", "cli:w")
    assert run("RPUSH", "cli:l", "a", "b", "c") == "3\n"
    assert run("LRANGE", "cli:l", "0", "-1") == "a\nb\nc\n"
    assert run("-3", "LPOP", "cli:l", "2") == "a\nb\n"
    assert run("LPOP", "cli:nothing") == "\n"  # nil, as redis-cli prints it when not a tty
    assert run("TYPE", "cli:l") == "list\n"
    blocked = subprocess.Popen(
        [cli, "-p", str(node.port), "BLPOP", "cli:w", "10"], stdout=subprocess.PIPE
    )
    try:
        wait_until(lambda: int(node.client().info("clients")["blocked_clients"]) == 1, 10)
        assert run("RPUSH", "cli:w", "woken") == "1\n"
        out, _ = blocked.communicate(timeout=10)
        assert out.decode() == "cli:w\nwoken\n"
    finally:
        blocked.kill()
