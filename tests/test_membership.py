"""Dynamic membership with real processes: grow 1 -> 3 under writes (learners, snapshot
catch-up, automatic promotion), leadership transfer, removal, refusal of a removed node's data,
joining with CLUSTER JOIN, and a rolling restart with a retrying client."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.respkv_proc import RespkvProcess, free_port, wait_until

RAFT = "snapshot_threshold = 200\nsnapshot_tail = 20"  # joiners catch up by snapshot


def status(node: RespkvProcess) -> dict[str, Any]:
    raw = node.client(protocol=3).execute_command("CLUSTER", "STATUS")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def voters(node: RespkvProcess) -> list[int]:
    return sorted(int(m[b"id"]) for m in status(node)["members"] if m[b"role"] == b"voter")


def seed_nodes(tmp_path: Path) -> list[RespkvProcess]:
    """The seed docs' n1/n2/n3 layout on free ports."""
    peers = {i: free_port() for i in (1, 2, 3)}
    ports = {i: free_port() for i in (1, 2, 3)}
    leader = f'{{ id = 1, address = "127.0.0.1:{peers[1]}", role = 2, status = 2 }}'
    layouts = {
        1: [leader],
        2: [leader, f'{{ id = 2, address = "127.0.0.1:{peers[2]}", role = 3, status = 0 }}'],
        3: [
            leader,
            f'{{ id = 2, address = "127.0.0.1:{peers[2]}", role = 3, status = 0 }}',  # conservative
            f'{{ id = 3, address = "127.0.0.1:{peers[3]}", role = 3, status = 0 }}',
        ],
    }
    return [
        RespkvProcess(
            tmp_path,
            node_id=i,
            port=ports[i],
            peer_port=peers[i],
            cluster="initial_cluster = [\n    " + ",\n    ".join(layouts[i]) + ",\n]",
            raft_extra=RAFT,
        )
        for i in (1, 2, 3)
    ]


class Writer(threading.Thread):
    """Writes unique keys through one node, retrying connection errors; counts failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acked: dict[str, str] = {}
        self.failures: list[str] = []

    def run(self) -> None:
        client = redis.Redis(port=self.port, socket_timeout=10)
        n = 0
        while not self.stop.is_set():
            n += 1
            key, value = f"w{n}", f"v{n}"
            for _attempt in range(50):
                try:
                    if client.set(key, value):
                        self.acked[key] = value
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)  # a retrying client: the node is restarting
                except redis.ResponseError as e:
                    self.failures.append(f"SET {key}: {e}")
                    break
            time.sleep(0.002)


def assert_has_all(node: RespkvProcess, acked: dict[str, str]) -> None:
    client = node.client()
    client.execute_command("READONLY")
    keys = list(acked)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        assert client.mget(chunk) == [acked[k].encode() for k in chunk], f"node {node.node_id}"


@pytest.mark.integration
def test_grow_from_one_to_three_under_writes(tmp_path: Path) -> None:
    n1, n2, n3 = seed_nodes(tmp_path)
    try:
        n1.start()
        wait_until(lambda: voters(n1) == [1], 20, "node 1 to lead alone")
        writer = Writer(n1.port)
        writer.start()
        wait_until(lambda: len(writer.acked) > 400, 30, "data on node 1 before the others join")
        n2.start()
        n3.start()  # right after node 2, as the seed docs say
        wait_until(lambda: voters(n1) == [1, 2, 3], 60, "nodes 2 and 3 to be promoted")
        time.sleep(0.5)
        writer.stop.set()
        writer.join(30)
        assert not writer.failures, writer.failures[:5]
        for node in (n1, n2, n3):
            wait_until(
                lambda node=node: status(node)["applied_index"] >= status(n1)["commit_index"],
                30,
                f"node {node.node_id} to catch up",
            )
            assert_has_all(node, writer.acked)
        logs = n2.log() + n3.log()
        assert "installed the leader's snapshot" in logs  # caught up by snapshot plus log
        assert "Node 2 promoted to voter" in n1.log() and "Node 3 promoted to voter" in n1.log()
        statuses = {m[b"id"]: m[b"status"] for m in status(n1)["members"]}
        assert statuses == {1: b"active", 2: b"active", 3: b"active"}
    finally:
        for node in (n1, n2, n3):
            node.kill()


@pytest.mark.integration
def test_transfer_remove_and_removed_node_refuses_its_data(tmp_path: Path) -> None:
    nodes = seed_nodes(tmp_path)
    n1, n2, n3 = nodes
    try:
        n1.start()
        wait_until(lambda: voters(n1) == [1], 20, "node 1 to lead alone")
        n2.start()
        n3.start()
        wait_until(lambda: voters(n1) == [1, 2, 3], 60, "a 3-voter cluster")
        assert n1.client().execute_command("CLUSTER", "FAILOVER", "3") == b"OK"
        assert status(n2)["leader_id"] == 3 or wait_until(
            lambda: status(n2)["leader_id"] == 3, 10, "node 3 to lead"
        )
        n1.client().set("before-remove", "x")
        # Remove a follower, asked on another follower: forwarded to the leader.
        assert n1.client().execute_command("CLUSTER", "REMOVE", "2") == b"OK"
        wait_until(lambda: voters(n1) == [1, 3], 20, "node 2 removed")
        assert n2.proc is not None
        assert n2.proc.wait(20) == 0, "a removed node shuts down"
        assert "removed this node from the cluster" in n2.log()
        n2.start(wait=False)
        assert n2.proc is not None and n2.proc.wait(20) == 1
        assert "which was removed from its cluster" in n2.log()
        # Remove the leader itself: it hands over first.
        assert n3.client().execute_command("CLUSTER", "REMOVE", "3") == b"OK"
        wait_until(lambda: voters(n1) == [1], 20, "node 3 removed")
        assert status(n1)["leader_id"] == 1
        assert n1.client().get("before-remove") == b"x"
        n1.client().set("after", "y")
        assert n1.client().get("after") == b"y"
        # Ids are never reused, also after the leader restarts.
        n1.stop()
        n1.start()
        wait_until(lambda: voters(n1) == [1], 20, "node 1 to lead again")
        (tmp_path / "reuse").mkdir()
        reuse = RespkvProcess(
            tmp_path / "reuse", node_id=2, cluster=f'join = "127.0.0.1:{n1.peer_port}"'
        )
        reuse.start(wait=False)
        assert reuse.proc is not None and reuse.proc.wait(30) == 1
        assert "ids are never reused" in reuse.log()
    finally:
        for node in nodes:
            node.kill()


@pytest.mark.integration
def test_cluster_join_command_on_an_empty_node(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = RespkvProcess(tmp_path / "a", node_id=1, raft_extra=RAFT)
    b = RespkvProcess(tmp_path / "b", node_id=2, raft_extra=RAFT)
    try:
        a.start()
        b.start()
        a.client().set("k", "v")
        b.client().set("own", "data")
        refused = b.client()
        with pytest.raises(redis.ResponseError, match="holds data"):
            refused.execute_command("CLUSTER", "JOIN", f"127.0.0.1:{a.peer_port}")
        b.client().delete("own")
        reply = b.client().execute_command("CLUSTER", "JOIN", f"127.0.0.1:{a.peer_port}")
        assert reply.startswith(b"OK joined cluster")
        wait_until(lambda: voters(a) == [1, 2], 30, "node 2 promoted")
        again = b.client().execute_command("CLUSTER", "JOIN", f"127.0.0.1:{a.peer_port}")
        assert again.startswith(b"OK already a member")
        assert b.client().get("k") == b"v"
    finally:
        a.kill()
        b.kill()


@pytest.mark.integration
def test_rolling_restart_under_load_loses_nothing(tmp_path: Path) -> None:
    nodes = seed_nodes(tmp_path)
    try:
        nodes[0].start()
        wait_until(lambda: voters(nodes[0]) == [1], 20, "node 1 to lead alone")
        for node in nodes[1:]:
            node.start()
        wait_until(lambda: voters(nodes[0]) == [1, 2, 3], 60, "a 3-voter cluster")
        writers = [Writer(node.port) for node in nodes]
        for w in writers:
            w.start()
        for node in nodes:  # the seed docs' rolling upgrade: stop, restart, wait for sync
            assert node.stop() == 0
            node.start()
            wait_until(
                lambda node=node: (
                    status(node)["leader_id"] != 0
                    and status(node)["applied_index"] >= status(nodes[0])["commit_index"] - 5
                ),
                30,
                f"node {node.node_id} to rejoin and catch up",
            )
        for w in writers:
            w.stop.set()
            w.join(30)
        failures = [f for w in writers for f in w.failures]
        assert not failures, failures[:5]
        acked = {k: v for w in writers for k, v in w.acked.items()}
        assert len(acked) > 100
        leader = wait_until(lambda: status(nodes[0])["leader_id"], 20, "a leader")
        for node in nodes:
            wait_until(
                lambda node=node: (
                    status(node)["applied_index"] >= status(nodes[leader - 1])["commit_index"]
                ),
                30,
                "catch-up",
            )
    finally:
        for node in nodes:
            node.kill()


def _big_single_node(
    tmp_path: Path, raft: str = ""
) -> tuple[RespkvProcess, RespkvProcess, dict[str, bytes]]:
    """Node 1 alone with ~16 MB of data and a compacted log, and a learner for it."""
    n1, n2, _ = seed_nodes(tmp_path)
    for node in (n1, n2):  # small chunks: the transfer takes many round trips
        extra = "\nsnapshot_chunk_bytes = 65536\n" + raft
        node.config_path.write_text(node.config_path.read_text().replace(RAFT, RAFT + extra))
    n1.start()
    wait_until(lambda: voters(n1) == [1], 20, "node 1 to lead alone")
    client = n1.client()
    data = {f"big:{i}": (b"%06d" % i) * 170 for i in range(16_000)}
    pipe = client.pipeline(transaction=False)
    for i, (key, value) in enumerate(data.items()):
        pipe.set(key, value)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return n1, n2, data


def _assert_complete(node: RespkvProcess, leader: RespkvProcess, data: dict[str, bytes]) -> None:
    wait_until(lambda: voters(leader) == [1, 2], 60, "node 2 promoted after its snapshot")
    wait_until(
        lambda: status(node)["applied_index"] >= status(leader)["commit_index"], 30, "catch-up"
    )
    client = node.client()
    client.execute_command("READONLY")
    keys = list(data)
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        assert client.mget(chunk) == [data[k] for k in chunk]


@pytest.mark.integration
def test_learner_killed_mid_snapshot_starts_over_and_completes(tmp_path: Path) -> None:
    n1, n2, data = _big_single_node(tmp_path)
    try:
        n2.start()
        wait_until(lambda: "receiving a snapshot" in n2.log(), 30, "the snapshot transfer")
        n2.kill()  # in the middle of the transfer
        assert "installed the leader's snapshot" not in n2.log()
        n2.start()
        _assert_complete(n2, n1, data)
        assert "installed the leader's snapshot" in n2.log()
    finally:
        n1.kill()
        n2.kill()


@pytest.mark.integration
def test_leader_killed_mid_snapshot_the_learner_recovers(tmp_path: Path) -> None:
    n1, n2, data = _big_single_node(tmp_path)
    try:
        n2.start()
        wait_until(lambda: "receiving a snapshot" in n2.log(), 30, "the snapshot transfer")
        n1.kill()  # the only voter dies mid-transfer; the learner keeps its partial file
        n1.start()
        _assert_complete(n2, n1, data)
        assert status(n2)["leader_id"] == 1
    finally:
        n1.kill()
        n2.kill()


@pytest.mark.integration
def test_snapshot_streaming_honours_the_rate_limit(tmp_path: Path) -> None:
    """Also a transfer that outlasts the joiner's first seconds: a joiner once dropped its
    link to the leader 5 s after start (REMOVED_GRACE_SECONDS) while still empty, and a
    longer transfer then stalled forever."""
    n1, n2, data = _big_single_node(tmp_path, raft="snapshot_rate_mb_s = 2")
    try:
        # Joining with nothing but the address of a member (the leader is not in its config).
        (tmp_path / "joiner").mkdir()
        n2 = RespkvProcess(
            tmp_path / "joiner", node_id=2, cluster=f'join = "127.0.0.1:{n1.peer_port}"'
        )
        n2.start()
        _assert_complete(n2, n1, data)
        stamps = [
            line.split(" INFO")[0]
            for line in n2.log().splitlines()
            if "receiving a snapshot" in line or "installed the leader's snapshot" in line
        ]
        fmt = "%Y-%m-%d %H:%M:%S,%f"
        took = (
            datetime.strptime(stamps[-1], fmt) - datetime.strptime(stamps[0], fmt)
        ).total_seconds()
        # ~16.3 MB at 2 MB/s after a first 2 MB burst: about 7 s; unlimited it takes ~0.2 s.
        assert took >= 5.5, f"the transfer took {took:.2f}s: the limit was not applied"
        assert "peer 1 removed" not in n2.log()
    finally:
        n1.kill()
        n2.kill()
