"""Pure handshake rules and the bounded send queue (no sockets)."""

from __future__ import annotations

import dataclasses

import pytest

from respkv.peer.frames import PROTOCOL_VERSION
from respkv.peer.handshake import (
    PeerIdentity,
    check_hello,
    dialer_proof,
    initial_cluster_difference,
    listener_proof,
    make_hello,
    proof_matches,
)
from respkv.peer.queue import QueueLimits, SendQueue
from respkv.raft.types import NodeId

CLUSTER = {NodeId(1): "h:1", NodeId(2): "h:2", NodeId(3): "h:3"}


def identity(node: int, **changes: object) -> PeerIdentity:
    base = PeerIdentity(NodeId(node), "c1", CLUSTER[NodeId(node)], f"h:{100 + node}", CLUSTER)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def check(dialer: PeerIdentity, listener: PeerIdentity, nonce: bytes = b"", **kw: object) -> str:
    hello = make_hello(dialer, listener.node_id, nonce)
    reason = check_hello(listener, hello, listener.initial_cluster.keys(), **kw)  # type: ignore[arg-type]
    return reason or ""


def test_matching_nodes_pass() -> None:
    assert check(identity(2), identity(1), accept_unknown=False) == ""


def test_version_mismatch() -> None:
    hello = dataclasses.replace(make_hello(identity(2), NodeId(1), b""), version=99)
    reason = check_hello(identity(1), hello, CLUSTER.keys(), False)
    assert reason and f"peer speaks 99, this node speaks {PROTOCOL_VERSION}" in reason


def test_cluster_id_mismatch_is_named() -> None:
    reason = check(identity(2, cluster_id="other"), identity(1), accept_unknown=False)
    assert "cluster id mismatch" in reason and "'other'" in reason and "'c1'" in reason


def test_wrong_node_is_named() -> None:
    hello = make_hello(identity(2), NodeId(3), b"")  # dialed node 1's address expecting 3
    reason = check_hello(identity(1), hello, CLUSTER.keys(), False)
    assert reason and "expecting node 3, but this is node 1" in reason


def test_unknown_node_unless_accepted() -> None:
    stranger = identity(2, node_id=NodeId(9), peer_address="h:9", initial_cluster={})
    reason = check(stranger, identity(1), accept_unknown=False)
    assert "unknown node id 9" in reason and "members: 1, 2, 3" in reason
    assert check(stranger, identity(1), accept_unknown=True) == ""


def test_own_id_clash() -> None:
    hello = make_hello(identity(1, peer_address="h:other"), NodeId(1), b"")
    reason = check_hello(identity(1), hello, CLUSTER.keys(), False)
    assert reason and "node id clash" in reason


def test_initial_cluster_mismatch_names_the_difference() -> None:
    other = {NodeId(1): "h:1", NodeId(2): "h:2", NodeId(3): "h:33", NodeId(4): "h:4"}
    reason = check(identity(2, initial_cluster=other), identity(1), accept_unknown=False)
    assert "initial_cluster mismatch" in reason
    assert "node 3 is h:3 here but h:33 there" in reason
    assert "only the peer lists 4=h:4" in reason


def test_initial_cluster_not_compared_for_a_joining_node() -> None:
    joiner = identity(2, initial_cluster={})
    assert check(joiner, identity(1), accept_unknown=False) == ""


def test_initial_cluster_difference() -> None:
    a = ((NodeId(1), "x"), (NodeId(2), "y"))
    assert initial_cluster_difference(a, a) == ""
    assert "only this node lists 2=y" in initial_cluster_difference(a, a[:1])


def test_secret_on_one_side_only() -> None:
    with_secret = identity(1, secret=b"s")
    reason = check(identity(2), with_secret, accept_unknown=False)
    assert "has no cluster secret configured but this node requires one" in reason
    reason = check(identity(2, secret=b"s"), identity(1), b"n" * 32, accept_unknown=False)
    assert "uses a cluster secret but this node has none" in reason


def test_proofs() -> None:
    dn, ln = b"d" * 32, b"l" * 32
    args = ("c1", NodeId(2), NodeId(1), dn, ln)
    good = listener_proof(b"s", *args)
    assert len(good) == 32
    assert proof_matches(good, listener_proof(b"s", *args))
    assert not proof_matches(good, listener_proof(b"t", *args))
    # A listener proof cannot be reflected as a dialer proof, nor reused for other ids.
    assert not proof_matches(good, dialer_proof(b"s", *args))
    assert not proof_matches(good, listener_proof(b"s", "c1", NodeId(3), NodeId(1), dn, ln))
    assert not proof_matches(good, listener_proof(b"s", "c2", NodeId(2), NodeId(1), dn, ln))
    assert listener_proof(None, *args) == b"" and proof_matches(b"", b"")


# --- the send queue -------------------------------------------------------------------------


def test_queue_drains_control_then_forward_then_bulk() -> None:
    q = SendQueue(QueueLimits())
    q.push_bulk(b"B1")
    q.push_forward(7, b"F7")
    q.push_control(b"C1")
    q.push_bulk(b"B2")
    q.push_control(b"C2")
    batch, written = q.pop_batch(100, lambda _: True)
    assert batch == [b"C1", b"C2", b"F7", b"B1", b"B2"] and written == [7]
    assert len(q) == 0 and q.queued_bytes == 0


def test_queue_bulk_budget_lets_control_overtake() -> None:
    q = SendQueue(QueueLimits())
    for i in range(5):
        q.push_bulk(b"x" * 100 + bytes([i]))
    batch, _ = q.pop_batch(150, lambda _: True)
    assert len(batch) == 2
    q.push_control(b"HB")
    batch, _ = q.pop_batch(1, lambda _: True)
    assert batch[0] == b"HB" and len(batch) == 2


def test_queue_bounds_drop_oldest() -> None:
    q = SendQueue(QueueLimits(max_control_messages=3, max_bulk_messages=100, max_bulk_bytes=1000))
    for i in range(10):
        q.push_control(b"c%d" % i)
    for i in range(100):
        q.push_bulk(b"%03d" % i + b"x" * 97)
    assert q.bulk_bytes <= 1000
    assert q.dropped_messages == 7 + 90
    batch, _ = q.pop_batch(10**9, lambda _: True)
    assert batch[:3] == [b"c7", b"c8", b"c9"]
    assert batch[3].startswith(b"090") and batch[-1].startswith(b"099")


def test_queue_keeps_one_oversized_bulk_frame() -> None:
    q = SendQueue(QueueLimits(max_bulk_bytes=10))
    q.push_bulk(b"small")
    q.push_bulk(b"y" * 50)
    assert q.pop_batch(1000, lambda _: True)[0] == [b"y" * 50]


def test_queue_forward_lane_refuses_when_full_and_skips_abandoned() -> None:
    q = SendQueue(QueueLimits(max_forward_requests=2))
    assert q.push_forward(1, b"a") and q.push_forward(2, b"b")
    assert not q.push_forward(3, b"c")
    batch, written = q.pop_batch(0, lambda rid: rid != 1)
    assert batch == [b"b"] and written == [2]
    assert q.push_forward(4, b"d")
    assert q.take_forward_ids() == [4] and len(q) == 0


def test_queue_limits_validated() -> None:
    with pytest.raises(ValueError):
        QueueLimits(max_bulk_bytes=0)
