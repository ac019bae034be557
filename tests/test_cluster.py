"""Three real respkv processes on loopback: elections, forwarding, failover, restarts,
redirects, handshake refusals, and (through tests/netproxy.py) network partitions.

Every wait is a polled condition with a generous deadline (the CI machine is small and busy);
the timings the tests promise (failover, fail-fast) are measured and printed.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from netproxy import NetProxy
from redis.crc import key_slot
from respkv_proc import Cluster, control_client, free_port, wait_until

from respkv.server.cluster_face import redis_node_id
from respkv.sim.linearizability import History, Kind

pytestmark = pytest.mark.integration

ELECTED = re.compile(r"Leader elected: node (\d+) \(term (\d+)\)")


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Build clusters (optionally behind a NetProxy) that are torn down after the test."""
    made: list[Cluster | NetProxy] = []

    def make(size: int = 3, *, proxy: NetProxy | None = None, **kwargs: object) -> Cluster:
        workdir = tmp_path / f"cluster{len(made)}"
        if proxy is not None:
            kwargs["listed_address"] = proxy.add_node
        cluster = Cluster(workdir, size, **kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield make
    for thing in reversed(made):
        thing.close()


@pytest.fixture
def proxy() -> Iterator[NetProxy]:
    with NetProxy() as p:
        yield p


def others(cluster: Cluster, *excluded: int) -> list[int]:
    return [i for i in cluster.ids if i not in excluded]


def redis_cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def error_of(fn: Callable[[], object]) -> tuple[str, float]:
    """Run ``fn`` expecting a server error reply; (the error as sent, seconds it took)."""
    start = time.monotonic()
    with pytest.raises(redis.ResponseError) as info:
        fn()
    return wire_error(info.value), time.monotonic() - start


def wire_error(error: redis.ResponseError) -> str:
    """The error as the server sent it: redis-py strips the prefix of those it has a class
    for (CLUSTERDOWN, TRYAGAIN, MOVED, ...)."""
    for prefix, cls in redis.connection.DefaultParser.EXCEPTION_CLASSES.items():
        if isinstance(cls, type) and type(error) is cls and cls is not redis.ResponseError:
            return f"{prefix} {error}"
    return str(error)


def first_word(error: str) -> str:
    return error.split(" ", 1)[0]


def retry_write(port: int, key: str, value: str, timeout: float) -> float:
    """SET through a fresh connection per attempt until one is acknowledged; seconds taken."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        try:
            with control_client(port, timeout=2.0) as r:
                if r.set(key, value):
                    return time.monotonic() - start
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no write acknowledged on port {port} within {timeout}s")
        time.sleep(0.02)


def no_leader(cluster: Cluster, node: int) -> bool:
    info = cluster.try_info_raft(node)
    return info is not None and info["raft_leader_id"] == 0


# --- election, replication ----------------------------------------------------------------------


def test_three_nodes_elect_one_leader_and_every_node_logs_it(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)

    def all_logged() -> dict[int, tuple[int, int]] | None:
        seen = {}
        for i, node in cluster.nodes.items():
            found = ELECTED.findall(node.log())
            if not found:
                return None
            seen[i] = (int(found[-1][0]), int(found[-1][1]))
        return seen

    seen = wait_until(all_logged, 20, "every node to log 'Leader elected'")
    assert {node for node, _ in seen.values()} == {leader}, seen
    assert len({term for _, term in seen.values()}) == 1, seen
    for i in cluster.ids:
        info = cluster.info_raft(i)
        assert info["raft_role"] == ("leader" if i == leader else "follower")
        assert info["raft_leader_id"] == leader
        assert info["raft_voters"] == [1, 2, 3]


def test_write_on_any_node_reads_on_every_node(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    for writer in cluster.ids:  # the leader and both followers (forwarded)
        key, value = f"k{writer}", f"written on node {writer}"
        assert cluster.client(writer).set(key, value) is True
        assert cluster.client(writer).incr(f"n{writer}") == 1
        for reader in cluster.ids:  # linearizable reads: no waiting needed anywhere
            assert cluster.client(reader).get(key) == value.encode()
            assert redis_cli(cluster.port(reader), "GET", key) == value
            assert redis_cli(cluster.port(reader), "GET", f"n{writer}") == "1"
    follower = others(cluster, leader)[0]
    assert redis_cli(cluster.port(follower), "SET", "cli", "from redis-cli") == "OK"
    assert redis_cli(cluster.port(follower), "INCRBY", "cli-n", "5") == "5"
    for reader in cluster.ids:
        assert redis_cli(cluster.port(reader), "GET", "cli") == "from redis-cli"
        assert cluster.client(reader).get("cli-n") == b"5"
    replication = cluster.client(leader).info("replication")
    assert replication["role"] == "master"
    assert replication["connected_slaves"] == 2
    assert cluster.client(follower).info("replication")["role"] == "slave"


# --- failover -----------------------------------------------------------------------------------


def test_leader_kill_failover_and_rejoin(make_cluster) -> None:
    cluster = make_cluster().start()
    old = cluster.wait_leader(timeout=30)
    survivor = others(cluster, old)[0]
    cluster.client(survivor).set("before", "1")

    cluster.kill(old)
    took = retry_write(cluster.port(survivor), "during", "written while the leader was down", 30)
    print(f"\nfailover: first acknowledged write on a survivor {took:.2f}s after SIGKILL")
    assert took < 5.0, f"failover took {took:.2f}s"
    new = cluster.wait_leader(among=others(cluster, old), timeout=20)
    assert new != old

    cluster.restart(old)
    cluster.wait_caught_up(timeout=30)
    info = cluster.info_raft(old)
    assert info["raft_role"] == "follower"
    assert info["raft_leader_id"] == new
    rejoined = cluster.client(old)
    assert rejoined.get("during") == b"written while the leader was down"
    assert rejoined.get("before") == b"1"
    assert redis_cli(cluster.port(old), "GET", "during") == "written while the leader was down"
    local = cluster.client(old, single_connection_client=True)
    assert local.execute_command("READONLY") is True  # local reads, after it caught up
    assert local.get("during") == b"written while the leader was down"
    assert local.execute_command("READWRITE") is True
    assert local.get("before") == b"1"
    assert rejoined.set("after", "2") is True  # forwarded to the new leader
    assert cluster.client(new).get("after") == b"2"


def test_whole_cluster_sigkill_and_restart_keeps_acknowledged_writes(make_cluster) -> None:
    cluster = make_cluster().start()
    cluster.wait_leader(timeout=30)
    acked: dict[str, str] = {}
    for n in range(60):
        node = cluster.ids[n % 3]
        key, value = f"key{n}", f"value{n}-{node}"
        assert cluster.client(node).set(key, value) is True
        acked[key] = value
    assert cluster.client(cluster.ids[1]).incrby("counter", 7) == 7
    for i in cluster.ids:
        cluster.kill(i)
    cluster.start()
    cluster.wait_leader(timeout=30)
    for i in cluster.ids:
        r = cluster.client(i)
        assert r.mget(list(acked)) == [v.encode() for v in acked.values()]
        assert r.get("counter") == b"7"
    assert cluster.client(cluster.ids[2]).incr("counter") == 8


def test_one_of_three_alive_fails_fast_with_clusterdown(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    cluster.client(leader).set("k", "v")
    cluster.wait_caught_up(timeout=30)  # so the survivor's local state holds k
    survivor = others(cluster, leader)[0]
    for i in others(cluster, survivor):
        cluster.kill(i)
    r = cluster.client(survivor)
    # Right away the survivor still names the dead leader, but it reaches no majority, so it
    # does not hold the write for a new leader: CLUSTERDOWN at once, never the 5 s request
    # timeout or UNKNOWN.
    error, took = error_of(lambda: r.set("k", "new"))
    print(f"\nwrite on a lone follower right after the kill: {error!r} in {took:.2f}s")
    assert first_word(error) == "CLUSTERDOWN" and took < 3.0
    wait_until(lambda: no_leader(cluster, survivor), 20, "the survivor to know there is no leader")
    for command in (lambda: r.set("k", "new"), lambda: r.incr("n"), lambda: r.get("k")):
        error, took = error_of(command)
        assert first_word(error) == "CLUSTERDOWN", error
        assert took < 3.0, f"{error!r} took {took:.2f}s"
    assert redis_cli(cluster.port(survivor), "GET", "k").startswith("CLUSTERDOWN")
    local = cluster.client(survivor, single_connection_client=True)
    assert local.execute_command("READONLY") is True
    start = time.monotonic()
    assert local.get("k") == b"v"  # the local state, no leader needed
    assert time.monotonic() - start < 1.0
    assert local.execute_command("READWRITE") is True
    error, took = error_of(lambda: local.get("k"))
    assert first_word(error) == "CLUSTERDOWN" and took < 3.0


def test_lone_ex_leader_fails_writes_and_reads_once_it_steps_down(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    for i in others(cluster, leader):
        cluster.kill(i)
    # check-quorum: the leader steps down within about an election timeout.
    start = time.monotonic()
    wait_until(lambda: no_leader(cluster, leader), 20, "the lone leader to step down")
    print(f"\nlone leader stepped down after {time.monotonic() - start:.2f}s")
    r = cluster.client(leader)
    for command in (lambda: r.set("k", "new"), lambda: r.get("k")):
        error, took = error_of(command)
        assert first_word(error) == "CLUSTERDOWN", error
        assert took < 3.0


def test_cluster_status_myid_and_info(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    cluster.client(leader).set("k", "v")
    applied = cluster.wait_caught_up(timeout=30)
    for i in cluster.ids:
        r = cluster.client(i)
        status = r.execute_command("CLUSTER", "STATUS")
        # Redis Cluster node ids: 40 hex digits from the cluster id and the node id.
        redis_id = redis_node_id(status[b"cluster_id"].decode(), i)
        assert r.execute_command("CLUSTER", "MYID") == redis_id.encode()
        assert status[b"node_id"] == i
        assert status[b"role"] == (b"leader" if i == leader else b"follower")
        assert status[b"leader_id"] == leader
        assert status[b"term"] == cluster.info_raft(i)["raft_term"]
        assert status[b"commit_index"] == status[b"applied_index"] == applied
        members = {m[b"id"]: m for m in status[b"members"]}
        assert sorted(members) == cluster.ids
        for member_id, member in members.items():
            assert member[b"role"] == b"voter"
            assert member[b"status"] == b"active"
            assert member[b"client_address"] == cluster.client_address(member_id).encode()
            assert member[b"peer_address"] == cluster.listed[member_id].encode()
            if i == leader:  # replication progress is the leader's to know
                assert member[b"match_index"] == applied
        info = r.execute_command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info
    leader_id = redis_node_id(
        cluster.client(leader).execute_command("CLUSTER", "STATUS")[b"cluster_id"].decode(), leader
    )
    assert redis_cli(cluster.port(leader), "CLUSTER", "MYID") == leader_id


# --- configuration ------------------------------------------------------------------------------


def test_follower_writes_moved_redirects_to_the_leader(make_cluster) -> None:
    cluster = make_cluster(cluster_extra='follower_writes = "moved"').start()
    leader = cluster.wait_leader(timeout=30)
    leader_address = cluster.client_address(leader)
    for follower in others(cluster, leader):
        r = cluster.client(follower)
        with pytest.raises(redis.exceptions.MovedError) as info:
            r.set("somekey", "v")
        assert str(info.value) == f"{key_slot(b'somekey')} {leader_address}"
        assert redis_cli(cluster.port(follower), "INCR", "{tag}n") == (
            f"MOVED {key_slot(b'{tag}n')} {leader_address}"
        )
        assert r.get("somekey") is None  # reads are still served (linearizable) here
    assert cluster.client(leader).set("somekey", "v") is True
    for follower in others(cluster, leader):
        assert cluster.client(follower).get("somekey") == b"v"


def _with_extra_member(cluster: Cluster, node: int) -> str:
    """Rewrite ``node``'s config so its initial_cluster also lists a node 4; that entry as
    the refusal names it ("4=host:port")."""
    address = f"127.0.0.1:{free_port()}"
    members = {i: (cluster.listed[i], cluster.client_address(i)) for i in cluster.ids} | {
        4: (address, "127.0.0.1:1")
    }
    config = cluster.nodes[node].config_path
    text = config.read_text()
    assert cluster.initial_cluster_text in text
    config.write_text(
        text.replace(cluster.initial_cluster_text, Cluster.initial_cluster_toml(members))
    )
    return f"4={address}"


def test_mismatched_initial_cluster_is_refused_at_the_handshake(make_cluster) -> None:
    cluster = make_cluster()
    _with_extra_member(cluster, 3)
    cluster.start()
    assert cluster.wait_leader(among=[1, 2], timeout=30) in (1, 2)

    def refused() -> bool:
        logs = [cluster.nodes[i].log() for i in cluster.ids]
        return all("refused peer connection" in text and "(node 3)" in text for text in logs[:2])

    wait_until(refused, 20, "nodes 1 and 2 to log that they refused node 3")
    assert cluster.info_raft(3)["raft_leader_id"] == 0
    assert cluster.client(1).set("k", "v") is True
    error, _ = error_of(lambda: cluster.client(3).get("k"))
    assert first_word(error) == "CLUSTERDOWN"


def test_restart_with_a_changed_initial_cluster_names_the_difference(make_cluster) -> None:
    cluster = make_cluster().start()
    cluster.wait_leader(timeout=30)
    cluster.kill(3)
    entry = _with_extra_member(cluster, 3)
    cluster.restart(3)
    expected = f"initial_cluster mismatch with node 3: only the peer lists {entry}"

    def named() -> bool:
        return all(expected in cluster.nodes[i].log() for i in (1, 2))

    wait_until(named, 20, f"nodes 1 and 2 to log {expected!r}")


def test_no_leader_status_log_names_unreachable_peers(make_cluster) -> None:
    cluster = make_cluster()
    cluster.start([1])  # nodes 2 and 3 never start
    node = cluster.nodes[1]
    pattern = re.compile(r"WARNING .*no leader yet .*peers: (.*)")

    def logged() -> str | None:
        found = pattern.findall(node.log())
        return found[-1] if found else None

    peers = wait_until(logged, 20, "the 'no leader yet' status log")
    for i in (2, 3):
        assert f"{i}@{cluster.listed[i]} DOWN" in peers, peers
    assert "Connection refused" in peers


# --- partitions (tests/netproxy.py) -------------------------------------------------------------


def test_isolated_leader_cannot_serve_majority_elects_and_heal_keeps_writes(
    make_cluster, proxy
) -> None:
    cluster = make_cluster(proxy=proxy).start()
    old = cluster.wait_leader(timeout=30)
    majority = others(cluster, old)
    cluster.client(old).set("before", "1")

    proxy.isolate(old)
    stale = cluster.client(old)
    error, took = error_of(lambda: stale.set("lost", "written on the minority side"))
    print(f"\nwrite on the isolated leader: {error!r} after {took:.2f}s")
    assert first_word(error) in ("CLUSTERDOWN", "UNKNOWN")
    assert took < 8.0
    error, took = error_of(lambda: stale.get("before"))
    assert first_word(error) == "CLUSTERDOWN"
    assert took < 8.0
    new = cluster.wait_leader(among=majority, timeout=20)
    assert new != old
    acked = {}
    for n, node in enumerate(majority * 5):
        key = f"majority{n}"
        assert cluster.client(node).set(key, str(n)) is True
        acked[key] = str(n).encode()
    for node in majority:
        assert cluster.client(node).get("before") == b"1"

    proxy.heal()
    cluster.wait_caught_up(timeout=30)
    assert cluster.current_leader() == new
    assert cluster.info_raft(old)["raft_role"] == "follower"
    for node in cluster.ids:
        r = cluster.client(node)
        assert r.mget(list(acked)) == list(acked.values())
        assert r.get("before") == b"1"
        # Never acknowledged, only ever on the minority side: it must not have committed.
        assert r.get("lost") is None


def test_isolated_follower_cannot_serve_while_the_majority_keeps_its_leader(
    make_cluster, proxy
) -> None:
    cluster = make_cluster(proxy=proxy).start()
    leader = cluster.wait_leader(timeout=30)
    cut, peer = others(cluster, leader)
    term = cluster.info_raft(leader)["raft_term"]
    cluster.client(leader).set("k", "before")
    cluster.wait_caught_up(timeout=30)

    proxy.isolate(cut)
    r = cluster.client(cut)
    error, took = error_of(lambda: r.set("k", "from the minority"))
    print(f"\nwrite on an isolated follower: {error!r} after {took:.2f}s")
    assert first_word(error) in ("CLUSTERDOWN", "UNKNOWN") and took < 8.0
    error, took = error_of(lambda: r.get("k"))
    assert first_word(error) == "CLUSTERDOWN" and took < 8.0
    for n in range(10):
        assert cluster.client(peer).incr("n") == n + 1  # forwarded within the majority
    assert cluster.client(leader).get("k") == b"before"
    assert cluster.info_raft(leader)["raft_term"] == term  # pre-vote: no disruption
    local = cluster.client(cut, single_connection_client=True)
    assert local.execute_command("READONLY") is True
    assert local.get("k") == b"before"  # stale but served
    assert local.get("n") is None

    proxy.heal()
    cluster.wait_caught_up(timeout=30)
    assert cluster.current_leader() == leader
    assert cluster.info_raft(leader)["raft_term"] == term
    assert local.get("n") == b"10"
    for node in cluster.ids:
        assert cluster.client(node).get("k") == b"before"  # the minority write never landed


def test_one_way_partition_does_not_depose_a_healthy_leader(make_cluster, proxy) -> None:
    cluster = make_cluster(proxy=proxy).start()
    leader = cluster.wait_leader(timeout=30)
    deaf = others(cluster, leader)[0]
    term = cluster.info_raft(leader)["raft_term"]
    proxy.block(leader, deaf)  # the follower hears nothing; it still reaches everyone
    wait_until(lambda: no_leader(cluster, deaf), 20, f"node {deaf} to lose the leader")
    # pre-vote + check-quorum: the deaf node's campaigns cannot win or bump terms
    for n in range(20):
        assert cluster.client(leader).set(f"k{n}", n) is True
    info = cluster.info_raft(leader)
    assert info["raft_role"] == "leader" and info["raft_term"] == term
    error, _ = error_of(lambda: cluster.client(deaf).get("k0"))
    assert first_word(error) == "CLUSTERDOWN"
    proxy.heal()
    cluster.wait_caught_up(timeout=30)
    assert cluster.current_leader() == leader
    assert cluster.client(deaf).get("k19") == b"19"


def _incr_through_followers(
    cluster: Cluster,
    client_id: int,
    key: str,
    targets: list[int],
    stop: threading.Event,
    history: History,
    replies: list[tuple[str, int | None]],
) -> None:
    """INCR ``key`` over and over through the nodes in ``targets`` (the followers, kept up
    to date by the test; round robin, a few INCRs per connection), recording ('ok', value) /
    ('fail', None) / ('unknown', None)."""
    n = 0
    while not stop.is_set():
        pool = list(targets)
        node = pool[(client_id + n) % len(pool)]
        n += 1
        conn = redis.Connection(
            port=cluster.port(node), socket_timeout=10, socket_connect_timeout=2
        )
        try:
            conn.connect()
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
            continue
        try:
            for _ in range(5):
                if stop.is_set():
                    break
                op = history.invoke(client_id, key, Kind.INCR)
                conn.send_command("INCR", key)
                try:
                    value = conn.read_response()
                except redis.ResponseError as e:
                    if first_word(wire_error(e)) in ("CLUSTERDOWN", "TRYAGAIN"):
                        history.fail(op)
                        replies.append(("fail", None))
                    else:
                        history.info(op)
                        replies.append(("unknown", None))
                    break
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    history.info(op)
                    replies.append(("unknown", None))
                    break
                history.ok(op, value)
                replies.append(("ok", int(value)))
        finally:
            conn.disconnect()


def test_forwarding_under_leader_change_never_misroutes_or_duplicates(make_cluster) -> None:
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    clients = 8
    # Each client's counter lives in its own range: a reply meant for another client's key
    # cannot pass for one of ours.
    starts = {c: (c + 1) * 1_000_000 for c in range(clients)}
    setup = cluster.client(leader)
    for c, start in starts.items():
        setup.set(f"ctr{c}", start)
    history = History(time.monotonic)
    for c, start in starts.items():  # the SET above, as the history's first operation
        op = history.invoke(-1, f"ctr{c}", Kind.SET, start)
        history.ok(op, b"OK")
    stop = threading.Event()
    targets = others(cluster, leader)  # the followers; updated in place below
    replies: dict[int, list[tuple[str, int | None]]] = {c: [] for c in range(clients)}
    threads = [
        threading.Thread(
            target=_incr_through_followers,
            args=(cluster, c, f"ctr{c}", targets, stop, history, replies[c]),
            daemon=True,
        )
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: all(len(r) >= 5 for r in replies.values()), 30, "every client to INCR")
    cluster.kill(leader)
    survivors = others(cluster, leader)
    new = cluster.wait_leader(among=survivors, timeout=20)
    targets[:] = others(cluster, leader, new)  # the surviving follower
    wait_until(
        lambda: sum(1 for r in replies.values() for kind, _ in r if kind == "ok") > 400,
        60,
        "more acknowledged INCRs after the failover",
    )
    cluster.restart(leader)
    targets[:] = others(cluster, new)  # both followers, the rejoined old leader too
    counts = {c: len(r) for c, r in replies.items()}
    wait_until(
        lambda: all(len(replies[c]) >= counts[c] + 5 for c in range(clients)),
        60,
        "every client to INCR through the rejoined node too",
    )
    stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    cluster.wait_caught_up(timeout=30)
    final = cluster.client(new).mget([f"ctr{c}" for c in range(clients)])
    summary = []
    for c in range(clients):
        got = [v for kind, v in replies[c] if kind == "ok"]
        unknown = sum(1 for kind, _ in replies[c] if kind == "unknown")
        start, end = starts[c], int(final[c])
        summary.append(f"client {c}: {len(got)} ok, {unknown} unknown, counter +{end - start}")
        assert all(start < v <= end for v in got), f"client {c}: reply outside its counter"
        assert got == sorted(set(got)), f"client {c}: replies not strictly increasing: {got}"
        # Every INCR applied is an acknowledged one or one whose outcome is unknown.
        assert len(got) <= end - start <= len(got) + unknown, summary[-1]
        applied_before = 0
        for kind, value in replies[c]:  # each reply counts the INCRs applied before it
            if kind == "unknown":
                applied_before += 1
            elif kind == "ok":
                rank = got.index(value) + 1
                assert rank <= value - start <= rank + applied_before, (c, value, rank)
    print("\n" + "\n".join(summary))
    for c in range(clients):
        op = history.invoke(-1, f"ctr{c}", Kind.GET)
        history.ok(op, final[c])
    result = history.check(budget_steps=2_000_000)
    print(result.explanation)
    assert result.ok is not None, f"linearizability checker gave up: {result.explanation}"
    assert result.ok, result.explanation


def test_fresh_mismatched_initial_cluster_log_names_the_difference(make_cluster) -> None:
    cluster = make_cluster()
    entry = f"4=127.0.0.1:{free_port()}"
    config = cluster.nodes[3].config_path
    changed = cluster.initial_cluster_text[:-1] + (
        '    { id = 4, address = "' + entry[2:] + '" },\n]'
    )
    config.write_text(config.read_text().replace(cluster.initial_cluster_text, changed))
    cluster.start()
    cluster.wait_leader(among=[1, 2], timeout=30)
    expected = f"initial_cluster mismatch with node 3: only the peer lists {entry}"
    wait_until(lambda: expected in cluster.nodes[1].log(), 15, repr(expected))


def test_a_leader_left_alone_answers_quickly(make_cluster) -> None:
    """The write it took after losing its followers was appended, so its outcome is unknown:
    UNKNOWN once the leader steps down (about an election timeout), not after the 5 s request
    timeout; the next write is refused at once with CLUSTERDOWN."""
    cluster = make_cluster().start()
    leader = cluster.wait_leader(timeout=30)
    for i in others(cluster, leader):
        cluster.kill(i)
    r = cluster.client(leader)
    error, took = error_of(lambda: r.set("k", "v"))
    assert first_word(error) in ("UNKNOWN", "CLUSTERDOWN") and took < 3.0, (error, took)
    wait_until(lambda: no_leader(cluster, leader), 20, "the old leader to step down")
    error, took = error_of(lambda: r.set("k", "w"))
    assert first_word(error) == "CLUSTERDOWN" and took < 1.0, (error, took)
