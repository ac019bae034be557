"""Transactions and Pub/Sub across a real 3-node respkv cluster: PUBLISH on one node reaches
subscribers on the others, MULTI/EXEC through a follower, WATCH conflicts made on another node,
and the leader-change channel after the leader is killed (last: it changes the cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from respkv_proc import Cluster, wait_until

from tests._server_util import FAST_RAFT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("txn-cluster")
    with Cluster(workdir, 3, raft_extra=FAST_RAFT) as c:
        c.start()
        c.wait_leader()
        yield c


def _roles(cluster: Cluster) -> tuple[int, list[int]]:
    leader = cluster.wait_leader()
    return leader, [i for i in cluster.alive() if i != leader]


def _next_message(sub: redis.client.PubSub, timeout: float = 10.0) -> dict[str, Any]:
    def got() -> dict[str, Any] | None:
        message = sub.get_message(timeout=0.2)
        return message if message is not None and "message" in message["type"] else None

    return wait_until(got, timeout, "a pub/sub message")  # type: ignore[no-any-return]


@pytest.mark.parametrize("protocol", [2, 3])
def test_publish_on_one_node_reaches_subscribers_on_every_node(
    cluster: Cluster, protocol: int
) -> None:
    leader, followers = _roles(cluster)
    subs = {}
    for i in cluster.alive():
        sub = cluster.client(i, protocol=protocol).pubsub()
        sub.subscribe("events")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        subs[i] = sub
    publisher = cluster.client(followers[0], protocol=protocol)
    assert publisher.publish("events", "from-a-follower") == 1  # the local receiver
    for i, sub in subs.items():
        message = _next_message(sub)
        assert (message["channel"], message["data"]) == (b"events", b"from-a-follower"), i
    assert cluster.client(leader).publish("events", "from-the-leader") == 1
    for sub in subs.values():
        assert _next_message(sub)["data"] == b"from-the-leader"
        sub.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_multi_exec_through_a_follower(cluster: Cluster, protocol: int) -> None:
    _, followers = _roles(cluster)
    r = cluster.client(followers[0], protocol=protocol)
    r.delete("txn:n", "txn:s")
    with r.pipeline(transaction=True) as pipe:
        pipe.set("txn:n", 10).incrby("txn:n", 5).get("txn:n").ping().set("txn:s", "x")
        pipe.incr("txn:s")
        replies = pipe.execute(raise_on_error=False)
    assert replies[:5] == [True, 15, b"15", True, True]
    assert isinstance(replies[5], redis.ResponseError)
    for i in cluster.alive():  # applied everywhere (a linearizable read on each node)
        assert cluster.client(i).get("txn:n") == b"15"


def test_watch_conflict_from_another_node(cluster: Cluster) -> None:
    leader, followers = _roles(cluster)
    r = cluster.client(followers[0])
    other = cluster.client(followers[1])
    r.set("w:k", "1")
    with r.pipeline() as pipe:
        pipe.watch("w:k")
        other.set("w:k", "2")  # through another follower
        pipe.multi()
        pipe.set("w:k", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("w:k") == b"2"
    # Unchanged: the same transaction commits.
    with r.pipeline() as pipe:
        pipe.watch("w:k")
        pipe.multi()
        pipe.set("w:k", "mine")
        assert pipe.execute() == [True]
    assert cluster.client(leader).get("w:k") == b"mine"


def test_transaction_helper_with_a_concurrent_modifier_on_another_node(cluster: Cluster) -> None:
    leader, followers = _roles(cluster)
    r = cluster.client(followers[0], protocol=3)
    modifier = cluster.client(leader)
    r.set("t:counter", 0)
    seen = []

    def add_ten(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("t:counter"))
        seen.append(value)
        if len(seen) == 1:
            modifier.incr("t:counter")
        pipe.multi()
        pipe.set("t:counter", value + 10)

    r.transaction(add_ten, "t:counter")
    assert seen == [0, 1]
    assert modifier.get("t:counter") == b"11"


def test_leader_change_is_announced_on_every_node(cluster: Cluster) -> None:
    leader, followers = _roles(cluster)
    subs = []
    for i in followers:
        sub = cluster.client(i).pubsub()
        sub.subscribe("__respkv__:leader")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        subs.append(sub)
    old_term = int(cluster.info_raft(followers[0])["raft_term"])
    cluster.kill(leader)
    new_leader = cluster.wait_leader(among=followers)
    for sub in subs:
        message = _next_message(sub, timeout=20)
        node_id, address, term = message["data"].decode().split()
        assert int(node_id) == new_leader != leader
        assert address == cluster.client_address(new_leader)
        assert int(term) > old_term
        sub.close()
