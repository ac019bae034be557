"""The handshake rules, pure: who may connect, and the cluster-secret proofs.

Both ends of a connection check each other before any Raft message crosses it:

* the dialer's Hello must name the same cluster id, the protocol version this node speaks, this
  node's id as the node it meant to reach, a node id that is a known member (unless the
  listener accepts unknown peers, e.g. while it joins), and - when both sides were started from
  a static ``initial_cluster`` - the same list of ids and addresses;
* with a cluster secret, each side proves it knows the secret by an HMAC-SHA256 over the other
  side's fresh nonce, a role label (so a proof cannot be reflected back) and both ids. Without
  a secret on both sides the proofs are empty; a secret on one side only is a refusal.

The proofs authenticate the handshake of a connection, not each later frame: anyone who can
reach the port cannot join or inject messages, but this is not a defence against an attacker
on the network path (that would need TLS).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from respkv.raft.types import NodeId

from .frames import PROTOCOL_VERSION, Hello

NONCE_BYTES = 32
_IDS = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What this node tells its peers about itself, and what it expects of them."""

    node_id: NodeId
    cluster_id: str
    peer_address: str  # advertised "host:port" of the peer channel
    client_address: str  # advertised "host:port" for clients
    # The static cluster this node was configured with (id -> peer address); empty for a node
    # that joins a running cluster.
    initial_cluster: Mapping[NodeId, str]
    secret: bytes | None = None  # the shared cluster secret; None or b"" means none

    def initial_pairs(self) -> tuple[tuple[NodeId, str], ...]:
        return tuple(sorted(self.initial_cluster.items()))


def make_hello(me: PeerIdentity, to: NodeId, nonce: bytes) -> Hello:
    return Hello(
        version=PROTOCOL_VERSION,
        cluster_id=me.cluster_id,
        node_id=me.node_id,
        to=to,
        peer_address=me.peer_address,
        client_address=me.client_address,
        initial_cluster=me.initial_pairs(),
        nonce=nonce,
    )


def check_hello(
    me: PeerIdentity, hello: Hello, known_members: Collection[NodeId], accept_unknown: bool
) -> str | None:
    """Why the listener ``me`` must refuse this Hello, or None if it may proceed."""
    if hello.version != PROTOCOL_VERSION:
        return (
            f"protocol version mismatch: peer speaks {hello.version}, "
            f"this node speaks {PROTOCOL_VERSION}"
        )
    # A node joining a running cluster knows neither the cluster id nor, if it was given only
    # an address, the id of the node it dials: it says so with an empty cluster id and may then
    # only ask to join (the server accepts nothing else from a non-member).
    # (A node that was added but did not hear the answer asks again, as a member.)
    joining = hello.cluster_id == ""
    if hello.initial_cluster and me.initial_cluster and not joining:
        # Checked before the cluster id, which a static cluster derives from this very list:
        # naming the differing entries is what the operator needs.
        diff = initial_cluster_difference(me.initial_pairs(), hello.initial_cluster)
        if diff:
            return f"initial_cluster mismatch with node {hello.node_id}: {diff}"
    if hello.cluster_id != me.cluster_id and not joining:
        return (
            f"cluster id mismatch: peer belongs to cluster {hello.cluster_id!r}, "
            f"this node to {me.cluster_id!r}"
        )
    if hello.to != me.node_id and not (joining and hello.to == 0):
        return (
            f"wrong node: peer {hello.node_id} dialed {me.peer_address} expecting node "
            f"{hello.to}, but this is node {me.node_id} (check the addresses in the config)"
        )
    if hello.node_id == me.node_id:
        return f"node id clash: peer at {hello.peer_address} claims this node's own id {me.node_id}"
    if not accept_unknown and not joining and hello.node_id not in known_members:
        known = ", ".join(str(n) for n in sorted(known_members)) or "none"
        return (
            f"unknown node id {hello.node_id} (from {hello.peer_address}): "
            f"not a member of this cluster (members: {known})"
        )
    has_secret = bool(me.secret)
    if has_secret and not hello.nonce:
        return f"node {hello.node_id} has no cluster secret configured but this node requires one"
    if not has_secret and hello.nonce:
        return f"node {hello.node_id} uses a cluster secret but this node has none configured"
    if has_secret and len(hello.nonce) != NONCE_BYTES:
        return f"bad handshake nonce length {len(hello.nonce)}"
    return None


def initial_cluster_difference(
    mine: tuple[tuple[NodeId, str], ...], theirs: tuple[tuple[NodeId, str], ...]
) -> str:
    """Empty if equal, else a short description naming the difference."""
    a, b = dict(mine), dict(theirs)
    if a == b:
        return ""
    problems = []
    only_mine = sorted(a.keys() - b.keys())
    only_theirs = sorted(b.keys() - a.keys())
    if only_mine:
        problems.append("only this node lists " + ", ".join(f"{i}={a[i]}" for i in only_mine))
    if only_theirs:
        problems.append("only the peer lists " + ", ".join(f"{i}={b[i]}" for i in only_theirs))
    for node_id in sorted(a.keys() & b.keys()):
        if a[node_id] != b[node_id]:
            problems.append(f"node {node_id} is {a[node_id]} here but {b[node_id]} there")
    return "; ".join(problems)


def _proof(
    secret: bytes, role: bytes, cluster_id: str, nonces: bytes, dialer: NodeId, listener: NodeId
) -> bytes:
    cluster = cluster_id.encode()
    message = b"".join(
        (
            b"respkv-peer-v%d " % PROTOCOL_VERSION,
            role,
            struct.pack(">I", len(cluster)),
            cluster,
            _IDS.pack(dialer, listener),
            nonces,
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def listener_proof(
    secret: bytes | None,
    cluster_id: str,
    dialer: NodeId,
    listener: NodeId,
    dialer_nonce: bytes,
    listener_nonce: bytes,
) -> bytes:
    """The listener's answer to the dialer's challenge (empty without a secret)."""
    if not secret:
        return b""
    nonces = dialer_nonce + listener_nonce
    return _proof(secret, b"listener", cluster_id, nonces, dialer, listener)


def dialer_proof(
    secret: bytes | None,
    cluster_id: str,
    dialer: NodeId,
    listener: NodeId,
    dialer_nonce: bytes,
    listener_nonce: bytes,
) -> bytes:
    """The dialer's answer to the listener's challenge (empty without a secret)."""
    if not secret:
        return b""
    nonces = listener_nonce + dialer_nonce
    return _proof(secret, b"dialer", cluster_id, nonces, dialer, listener)


def proof_matches(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison; two empty proofs match (no secret on either side)."""
    return hmac.compare_digest(expected, received)
