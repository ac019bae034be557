"""The Redis Cluster face of a real 3-node respkv group: CLUSTER SLOTS/SHARDS/NODES/INFO/MYID/
REPLICAS/KEYSLOT/COUNTKEYSINSLOT/GETKEYSINSLOT compared in structure with a real redis-server
7.0 cluster (one master, two replicas) in RESP2 and RESP3; -MOVED for cluster clients; redis-py
``RedisCluster`` and ``redis-cli -c`` against it, across a leader kill.

Most tests share one group configured as Redis Cluster replicas behave
(``follower_writes = "moved"``, ``follower_reads = "moved"``); the failover test and the
default-configuration test start their own.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from respkv_proc import Cluster, RespkvProcess, control_client, stable_port, wait_until

from respkv.server.cluster_face import redis_node_id

pytestmark = pytest.mark.integration

REDIRECT = 'follower_writes = "moved"\nfollower_reads = "moved"'
NODE_LINE = re.compile(
    r"^(?P<id>[0-9a-f]{40}) (?P<host>[^ :]+):(?P<port>\d+)@\d+ (?P<flags>[a-z?,]+) "
    r"(?P<master>-|[0-9a-f]{40}) \d+ \d+ (?P<epoch>\d+) (?P<link>connected|disconnected)"
    r"(?P<slots> 0-16383)?$"
)


# --- a raw RESP client that keeps the wire types ----------------------------------------------


class Wire:
    """Sends commands and parses replies into (type byte, value) trees, so RESP2 and RESP3
    replies compare by their wire types, not by what a client library makes of them."""

    def __init__(self, port: int, protocol: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        if protocol == 3:
            kind, _ = self.call("HELLO", "3")
            assert kind == "%"

    def call(self, *args: str | int) -> tuple[str, Any]:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._read()

    def _read(self) -> tuple[str, Any]:
        line = self.file.readline()
        assert line.endswith(b"\r\n"), line
        kind, body = chr(line[0]), line[1:-2]
        if kind in "+-":
            return kind, body.decode()
        if kind == ":":
            return kind, int(body)
        if kind in "$=":
            size = int(body)
            if size < 0:
                return "_", None
            data = self.file.read(size + 2)[:-2]
            return kind, data[4:] if kind == "=" else data
        if kind in "*~":
            return kind, [self._read() for _ in range(int(body))]
        if kind == "%":
            return kind, [(self._read(), self._read()) for _ in range(int(body))]
        if kind == "_":
            return kind, None
        raise AssertionError(f"unexpected reply line {line!r}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


#: Bulk strings that are field names (RESP2 flattens CLUSTER SHARDS' maps into arrays).
LABELS = {
    b"slots",
    b"nodes",
    b"id",
    b"port",
    b"ip",
    b"endpoint",
    b"role",
    b"replication-offset",
    b"health",
}


def shape(reply: tuple[str, Any]) -> Any:
    """The structure of a reply: types and lengths, field names, no values."""
    kind, value = reply
    if kind in "*~":
        return (kind, [shape(item) for item in value])
    if kind == "%":
        return (kind, [(k[1], shape(v)) for k, v in value])
    if kind == "$" and value in LABELS:
        return value
    return kind


def text(reply: tuple[str, Any]) -> str:
    assert reply[0] in "$=", reply
    return str(reply[1].decode())


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A real redis-server 7.0 cluster: one master owning every slot, two replicas (ports)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    workdir = tmp_path_factory.mktemp("redis-cluster")
    ports = _redis_ports(3)
    procs = []
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(workdir / f"nodes-{port}.conf"),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(workdir),
                    ],
                    stdout=(workdir / f"redis-{port}.log").open("ab"),
                    stderr=subprocess.STDOUT,
                )
            )
        clients = [wait_until(lambda p=p: _ping(p), 20, f"redis-server on {p}") for p in ports]
        master = clients[0]
        master.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for port in ports[1:]:
            master.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        master_id = master.execute_command("CLUSTER", "MYID").decode()

        def replicated() -> bool:
            for replica in clients[1:]:
                try:
                    replica.execute_command("CLUSTER", "REPLICATE", master_id)
                except redis.ResponseError:
                    return False  # the replica does not know the master yet
            return True

        wait_until(replicated, 20, "the replicas to follow the master")
        wait_until(
            lambda: all(len(c.execute_command("CLUSTER", "SLOTS")[0]) == 5 for c in clients),
            30,
            "both replicas listed (synced) in every node's CLUSTER SLOTS",
        )
        master.set("k1", "v")
        wait_until(
            lambda: all(
                b"k1" in c.execute_command("CLUSTER", "GETKEYSINSLOT", key_slot(b"k1"), 5)
                for c in clients
            ),
            20,
            "k1 on every replica",
        )
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def _redis_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (+10000) is free too, both below the ephemeral range
    (so that no outbound connection takes them meanwhile)."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(10000, 22000)
        if port in ports:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        ports.append(port)
    return ports


def _ping(port: int) -> redis.Redis | None:
    r = control_client(port)
    return r if r.ping() else None


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three respkv nodes configured for Redis Cluster clients (shared by the tests)."""
    cluster = Cluster(tmp_path_factory.mktemp("respkv-face"), 3, cluster_extra=REDIRECT)
    try:
        cluster.start()
        cluster.wait_leader(timeout=30)
        wait_connected(cluster)
        yield cluster
    finally:
        cluster.close()


def wait_connected(cluster: Cluster) -> None:
    """Until every node reaches every other over the peer channel (until then CLUSTER SLOTS
    leaves out the replicas it cannot reach)."""

    def connected() -> bool:
        for i in cluster.ids:
            with control_client(cluster.port(i)) as r:
                lines = r.execute_command("CLUSTER", "NODES").decode().splitlines()
            if len(lines) != len(cluster.ids) or any("disconnected" in line for line in lines):
                return False
        return True

    wait_until(connected, 30, "every node to reach every other")


def leader_of(cluster: Cluster) -> int:
    return cluster.wait_leader(timeout=30)


def followers(cluster: Cluster, leader: int) -> list[int]:
    return [i for i in cluster.ids if i != leader]


def cluster_id(cluster: Cluster, node: int) -> str:
    with control_client(cluster.port(node)) as r:
        return str(r.execute_command("CLUSTER", "STATUS")[b"cluster_id"].decode())


# --- reply shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_reply_shapes_match_a_real_redis_cluster(
    group: Cluster, real_cluster: list[int], protocol: int
) -> None:
    leader = leader_of(group)
    control_client(group.port(leader)).set("k1", "v")
    group.wait_caught_up(timeout=30)
    slot = key_slot(b"k1")
    real_master_id = text(Wire(real_cluster[0]).call("CLUSTER", "MYID"))
    our_master_id = text(Wire(group.port(leader)).call("CLUSTER", "MYID"))
    for ours_port, theirs_port in [
        (group.port(leader), real_cluster[0]),  # the master
        (group.port(followers(group, leader)[0]), real_cluster[1]),  # a replica
    ]:
        ours, theirs = Wire(ours_port, protocol), Wire(theirs_port, protocol)
        for args in [
            ("CLUSTER", "SLOTS"),
            ("CLUSTER", "SHARDS"),
            ("CLUSTER", "MYID"),
            ("CLUSTER", "KEYSLOT", "k1"),
            ("CLUSTER", "COUNTKEYSINSLOT", slot),
            ("CLUSTER", "GETKEYSINSLOT", slot, 10),
            ("CLUSTER", "GETKEYSINSLOT", slot, 0),
            ("CLUSTER", "COUNTKEYSINSLOT", "x"),
            ("CLUSTER", "COUNTKEYSINSLOT", -1),
            ("CLUSTER", "COUNTKEYSINSLOT", 16384),
            ("CLUSTER", "GETKEYSINSLOT", 0, -1),
            ("CLUSTER", "GETKEYSINSLOT", 16384, 1),
            ("CLUSTER", "GETKEYSINSLOT", 0, "x"),
            ("CLUSTER", "KEYSLOT"),
            ("CLUSTER", "NOSUCH"),
            ("CLUSTER", "REPLICAS", "0" * 40),
        ]:
            our_reply, their_reply = ours.call(*args), theirs.call(*args)
            assert shape(our_reply) == shape(their_reply), args
            if our_reply[0] in "-:" or args[1] == "GETKEYSINSLOT":  # values that must agree
                assert our_reply == their_reply, args
        # CLUSTER INFO: the same type, Redis's fields in Redis's order.
        our_info, their_info = ours.call("CLUSTER", "INFO"), theirs.call("CLUSTER", "INFO")
        assert our_info[0] == their_info[0] == ("$" if protocol == 2 else "=")
        our_fields = [line.split(":")[0] for line in text(our_info).split("\r\n") if line]
        their_fields = [line.split(":")[0] for line in text(their_info).split("\r\n") if line]
        assert our_fields[:9] == their_fields[:9]
        assert set(our_fields) <= set(their_fields)
        assert text(our_info).endswith("\r\n") and text(their_info).endswith("\r\n")
        # CLUSTER NODES: the same type, every line in the same format, one master.
        for reply in (ours.call("CLUSTER", "NODES"), theirs.call("CLUSTER", "NODES")):
            assert reply[0] == ("$" if protocol == 2 else "=")
            lines = text(reply).split("\n")
            assert lines[-1] == ""
            matches = [NODE_LINE.match(line) for line in lines[:-1]]
            assert all(matches), lines
            flags = sorted(m["flags"].replace("myself,", "") for m in matches if m)
            assert flags == ["master", "slave", "slave"]
        # CLUSTER REPLICAS <master>: an array of two CLUSTER NODES lines without newline.
        for wire, master_id in ((ours, our_master_id), (theirs, real_master_id)):
            kind, lines = wire.call("CLUSTER", "REPLICAS", master_id)
            assert kind == "*" and len(lines) == 2
            assert all(NODE_LINE.match(text(line)) for line in lines), lines
        ours.close()
        theirs.close()


def test_the_group_is_one_shard_led_by_the_leader_on_every_node(group: Cluster) -> None:
    leader = leader_of(group)
    cid = cluster_id(group, leader)
    ids: dict[int, str] = {}
    for i in group.ids:
        with control_client(group.port(i)) as r:
            ids[i] = r.execute_command("CLUSTER", "MYID").decode()
            assert re.fullmatch(r"[0-9a-f]{40}", ids[i])
            assert cluster_id(group, i) == cid
    assert len(set(ids.values())) == 3
    term = group.info_raft(leader)["raft_term"]
    for i in group.ids:
        with control_client(group.port(i)) as r:
            (start, end, master, *replicas), *more = r.execute_command("CLUSTER", "SLOTS")
            assert (start, end, more) == (0, 16383, [])
            assert master[:3] == [b"127.0.0.1", group.port(leader), ids[leader].encode()]
            assert sorted((e[1], e[2].decode()) for e in replicas) == sorted(
                (group.port(f), ids[f]) for f in followers(group, leader)
            )
            lines = r.execute_command("CLUSTER", "NODES").decode().splitlines()
            parsed = {m["id"]: m for m in map(NODE_LINE.match, lines) if m}
            assert len(parsed) == 3
            for node, node_id in ids.items():
                line = parsed[node_id]
                assert int(line["port"]) == group.port(node)
                assert line["flags"].startswith("myself,") == (node == i)
                assert ("master" in line["flags"]) == (node == leader)
                assert line["master"] == ("-" if node == leader else ids[leader])
                assert int(line["epoch"]) == term
                assert line["link"] == "connected"
            assert r.execute_command("CLUSTER", "INFO").decode().startswith("cluster_state:ok")
            shard = r.execute_command("CLUSTER", "SHARDS")[0]
            nodes = {n[b"id"].decode(): n for n in shard[b"nodes"]}
            assert nodes[ids[leader]][b"role"] == b"master"
            assert {n[b"health"] for n in nodes.values()} == {b"online"}
            replies = r.execute_command("CLUSTER", "REPLICAS", ids[leader])
            assert sorted(line.split()[0].decode() for line in replies) == sorted(
                ids[f] for f in followers(group, leader)
            )
            with pytest.raises(redis.ResponseError, match="not a master"):
                r.execute_command("CLUSTER", "REPLICAS", ids[followers(group, leader)[0]])


def test_slot_management_subcommands_answer_clear_errors(group: Cluster) -> None:
    with control_client(group.port(group.ids[0])) as r:
        for args in [
            ("ADDSLOTS", "1"),
            ("ADDSLOTSRANGE", "0", "16383"),
            ("DELSLOTS", "1"),
            ("SETSLOT", "1", "STABLE"),
            ("MEET", "127.0.0.1", "7000"),
            ("RESET",),
            ("REPLICATE", "0" * 40),
            ("FORGET", "0" * 40),
        ]:
            with pytest.raises(redis.ResponseError) as info:
                r.execute_command("CLUSTER", *args)
            message = str(info.value)
            assert message.startswith(f"CLUSTER {args[0]} is not supported"), message
            assert "CLUSTER JOIN" in message
        assert r.execute_command("ASKING") is True  # a no-op: no slot is ever migrating
        assert r.execute_command("CLUSTER", "INFO").decode().startswith("cluster_state:ok")


# --- redirects --------------------------------------------------------------------------------


def test_followers_redirect_like_redis_cluster_replicas(group: Cluster) -> None:
    leader = leader_of(group)
    leader_address = group.client_address(leader)
    control_client(group.port(leader)).set("{r}key", "v")
    group.wait_caught_up(timeout=30)
    slot = key_slot(b"{r}key")
    for follower in followers(group, leader):
        r = control_client(group.port(follower))
        for command in (("SET", "{r}key", "w"), ("GET", "{r}key"), ("INCR", "{r}n")):
            with pytest.raises(redis.exceptions.MovedError) as moved:
                r.execute_command(*command)
            assert str(moved.value) == f"{slot} {leader_address}", command
        assert r.execute_command("DBSIZE") >= 1  # keyless: served here
        assert r.execute_command("READONLY") is True
        assert r.get("{r}key") == b"v"  # READONLY: the local state
        with pytest.raises(redis.exceptions.MovedError):
            r.set("{r}key", "w")  # writes still go to the master
        assert r.execute_command("READWRITE") is True
        with pytest.raises(redis.exceptions.MovedError):
            r.get("{r}key")
    with control_client(group.port(leader)) as r:
        assert r.get("{r}key") == b"v"
        assert r.set("{r}key", "from the leader") is True


def test_redis_cli_c_follows_moved_from_a_follower(group: Cluster) -> None:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    leader = leader_of(group)
    follower = followers(group, leader)[0]

    def cli(*args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-c", "-p", str(group.port(follower)), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    assert cli("SET", "cli-key", "through redis-cli -c") == "OK"
    assert cli("GET", "cli-key") == "through redis-cli -c"
    assert cli("INCRBY", "cli-n", "3") == "3"
    with control_client(group.port(leader)) as r:
        assert r.get("cli-key") == b"through redis-cli -c"
    plain = subprocess.run(
        ["redis-cli", "-p", str(group.port(follower)), "GET", "cli-key"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert plain == f"MOVED {key_slot(b'cli-key')} {group.client_address(leader)}"


# --- RedisCluster -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_cluster_client_bootstraps_from_every_node(group: Cluster, protocol: int) -> None:
    leader = leader_of(group)
    for i in group.ids:
        rc = RedisCluster(
            host="127.0.0.1", port=group.port(i), socket_timeout=10, protocol=protocol
        )
        try:
            assert rc.get_node_from_key("any").port == group.port(leader)
            assert sorted(n.port for n in rc.get_replicas()) == sorted(
                group.port(f) for f in followers(group, leader)
            )
            keys = [f"boot{protocol}:{i}:{n}" for n in range(20)]
            for n, key in enumerate(keys):
                assert rc.set(key, f"{i}-{n}") is True
            assert rc.mget_nonatomic(keys) == [f"{i}-{n}".encode() for n in range(20)]
            assert rc.incr(f"boot-counter{protocol}:{i}") == 1
        finally:
            rc.close()


@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
def test_read_from_replicas_reads_on_followers(group: Cluster) -> None:
    leader = leader_of(group)
    rc = RedisCluster(
        host="127.0.0.1", port=group.port(leader), read_from_replicas=True, socket_timeout=10
    )
    try:
        for n in range(30):
            assert rc.set(f"rr{n}", n) is True
        group.wait_caught_up(timeout=30)
        for _ in range(3):
            for n in range(30):
                assert rc.get(f"rr{n}") == str(n).encode()
        for follower in followers(group, leader):  # while its connections are open
            with control_client(group.port(follower)) as r:
                clients = r.execute_command("CLIENT", "LIST").decode().splitlines()
            assert any("flags=r" in c and "cmd=get" in c for c in clients), clients
    finally:
        rc.close()


def test_keys_in_slot_count_and_list_the_expected_keys(group: Cluster) -> None:
    leader = leader_of(group)
    tagged = [f"{{slotted}}:{n}" for n in range(40)]
    spread = [f"spread:{n}" for n in range(12000)]  # a few scan slices on every call
    with control_client(group.port(leader), timeout=30) as r:
        r.flushall()
        for start in range(0, len(spread), 1000):
            r.mset({k: "x" for k in spread[start : start + 1000]})
        r.mset({k: "y" for k in tagged})
    group.wait_caught_up(timeout=60)
    expected: dict[int, set[str]] = {}
    for key in tagged + spread:
        expected.setdefault(key_slot(key.encode()), set()).add(key)
    tag_slot = key_slot(b"slotted")
    assert len(expected[tag_slot]) >= 40
    some_slot = key_slot(spread[0].encode())
    empty_slot = next(s for s in range(16384) if s not in expected)
    for i in group.ids:
        with control_client(group.port(i), timeout=30) as r:
            for slot in (tag_slot, some_slot, empty_slot):
                want = expected.get(slot, set())
                assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(want)
                got = r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
                assert {k.decode() for k in got} == want
                assert len(got) == len(want)
            few = r.execute_command("CLUSTER", "GETKEYSINSLOT", tag_slot, 5)
            assert len(few) == 5 and {k.decode() for k in few} <= expected[tag_slot]
            r.execute_command("SELECT", 1)  # another database: its own keys
            assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", tag_slot) == 0


# --- failover and leaderless answers -----------------------------------------------------------


def test_redis_cluster_writes_survive_a_leader_kill(tmp_path: Path) -> None:
    with Cluster(tmp_path / "failover", 3, cluster_extra=REDIRECT) as cluster:
        cluster.start()
        old = leader_of(cluster)
        wait_connected(cluster)
        survivors = followers(cluster, old)
        rc = RedisCluster(
            host="127.0.0.1",
            port=cluster.port(survivors[0]),
            socket_timeout=5,
            socket_connect_timeout=2,
        )
        acknowledged: dict[str, str] = {}
        errors: list[str] = []
        stop = threading.Event()

        def write_loop() -> None:
            n = 0
            while not stop.is_set():
                key, value = f"w{n}", f"value-{n}"
                n += 1
                try:
                    if rc.set(key, value):
                        acknowledged[key] = value
                except Exception as e:  # what an application sees: it goes on
                    errors.append(f"{type(e).__name__}: {e}")
                    time.sleep(0.05)

        writer = threading.Thread(target=write_loop, daemon=True)
        writer.start()
        try:
            wait_until(lambda: len(acknowledged) >= 50, 30, "50 writes before the kill")
            cluster.kill(old)
            at_kill = len(acknowledged)
            new = cluster.wait_leader(among=survivors, timeout=30)
            wait_until(
                lambda: len(acknowledged) >= at_kill + 50, 60, "50 more writes after the kill"
            )
        finally:
            stop.set()
            writer.join(30)
        print(f"{len(acknowledged)} writes acknowledged, {len(errors)} errors: {errors[:3]}")
        assert rc.get_node_from_key("w0").port == cluster.port(new)  # its slot table moved
        rc.close()
        cluster.wait_caught_up(ids=survivors, timeout=30)
        for i in survivors:
            stored = cluster.dump(i)
            missing = [k for k, v in acknowledged.items() if stored.get(k.encode()) != v.encode()]
            assert not missing, f"node {i} lost acknowledged writes: {missing[:10]}"
        fresh = RedisCluster(host="127.0.0.1", port=cluster.port(survivors[0]), socket_timeout=5)
        try:
            sample = list(acknowledged)[-20:]
            assert fresh.mget_nonatomic(sample) == [acknowledged[k].encode() for k in sample]
        finally:
            fresh.close()

        # Down to one of three nodes: no leader, yet every slot is still listed (clients can
        # bootstrap), the state says fail, and writes get CLUSTERDOWN.
        lone = next(i for i in survivors if i != new)
        cluster.kill(new)
        with control_client(cluster.port(lone), timeout=10) as r:
            wait_until(
                lambda: cluster.info_raft(lone)["raft_leader_id"] == 0,
                30,
                "no leader on the lone node",
            )
            (start, end, master, *_), *more = r.execute_command("CLUSTER", "SLOTS")
            assert (start, end, more) == (0, 16383, [])
            assert master[1] in (cluster.port(i) for i in cluster.ids)
            info = r.execute_command("CLUSTER", "INFO").decode()
            assert "cluster_state:fail" in info and "cluster_slots_fail:16384" in info
            lines = r.execute_command("CLUSTER", "NODES").decode().splitlines()
            assert len(lines) == 3
            assert sum("disconnected" in line for line in lines) == 2
            with pytest.raises(redis.exceptions.ClusterDownError):
                r.set("after", "x")
            assert r.execute_command("READONLY") is True
            assert r.get(sample[-1]) == acknowledged[sample[-1]].encode()  # stale reads work


def test_default_configuration_forwards_for_plain_clients_and_serves_cluster_clients(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path / "default", 3) as cluster:
        cluster.start()
        leader = leader_of(cluster)
        follower = followers(cluster, leader)[0]
        with control_client(cluster.port(follower)) as r:
            assert r.set("plain", "forwarded") is True  # no MOVED for plain clients
            assert r.get("plain") == b"forwarded"
            slots = r.execute_command("CLUSTER", "SLOTS")
            assert slots[0][2][1] == cluster.port(leader)
        rc = RedisCluster(host="127.0.0.1", port=cluster.port(follower), socket_timeout=10)
        try:
            assert rc.get_default_node().port == cluster.port(leader)
            assert rc.set("rc", "1") is True and rc.get("rc") == b"1"
        finally:
            rc.close()


def test_a_learner_is_a_syncing_replica_that_clients_do_not_read_from(tmp_path: Path) -> None:
    with Cluster(tmp_path / "learner", 1, cluster_extra="auto_promote = false") as cluster:
        cluster.start()
        cluster.wait_leader(timeout=30)
        learner = cluster.add_node(2, join=cluster.listed[1])
        learner.start()
        cid = cluster_id(cluster, 1)
        leader_id, learner_id = redis_node_id(cid, 1), redis_node_id(cid, 2)
        for node in (1, 2):
            with control_client(cluster.port(node)) as r:

                def nodes(r: redis.Redis = r) -> dict[str, str] | None:
                    lines = r.execute_command("CLUSTER", "NODES").decode().splitlines()
                    parsed = {m["id"]: m["flags"] for m in map(NODE_LINE.match, lines) if m}
                    settled = len(parsed) == 2 and "fail?" not in "".join(parsed.values())
                    return parsed if settled else None

                # Listed (and fail?) as soon as the membership has it, until the peers connect.
                flags = wait_until(nodes, 30, f"node {node} to list the learner, connected")
                me = "myself," if node == 2 else ""
                assert flags[learner_id] == f"{me}slave,nofailover"
                assert flags[leader_id] == ("myself,master" if node == 1 else "master")
                (_, _, master, *replicas), *_ = r.execute_command("CLUSTER", "SLOTS")
                assert master[1] == cluster.port(1) and replicas == []
                shard = r.execute_command("CLUSTER", "SHARDS")[0]
                health = {n[b"id"].decode(): n[b"health"] for n in shard[b"nodes"]}
                assert health == {leader_id: b"online", learner_id: b"loading"}
                info = r.execute_command("CLUSTER", "INFO").decode()
                assert "cluster_known_nodes:2" in info and "cluster_state:ok" in info


def test_a_node_advertises_its_configured_client_address(tmp_path: Path) -> None:
    """A node's own ``client_address`` in initial_cluster (NAT, a 0.0.0.0 bind) is what it
    advertises for itself, as the other members do for it."""
    port, peer_port = stable_port(), stable_port()
    members = Cluster.initial_cluster_toml({1: (f"127.0.0.1:{peer_port}", f"localhost:{port}")})
    with RespkvProcess(tmp_path, 1, port=port, peer_port=peer_port, cluster=members) as node:
        node.start()
        with control_client(port) as r:
            wait_until(
                lambda: r.execute_command("CLUSTER", "INFO").startswith(b"cluster_state:ok"),
                20,
                "a leader",
            )
            (_, _, master), *_ = r.execute_command("CLUSTER", "SLOTS")
            assert master[:2] == [b"localhost", port]
            assert (
                r.execute_command("CLUSTER", "NODES").split()[1]
                == f"localhost:{port}@{peer_port}".encode()
            )
