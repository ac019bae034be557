"""Frames of the peer channel that are not Raft messages: the handshake and forwarding.

The handshake (one per connection, the dialer speaks first)::

    dialer                                  listener
      Hello(cluster, ids, addresses, initial_cluster, dialer_nonce)  ->
                                            <-  Welcome(node_id, listener_nonce, listener_proof)
      Auth(dialer_proof)                    ->
                                            <-  HandshakeOk()
      ... Raft messages, Forward ...        ->
                                            <-  ForwardReply ...

Either side may answer with ``Reject(reason)`` instead and close: the reason names what did not
match (cluster id, node id, initial_cluster, secret) so both logs explain the refusal. Without a
cluster secret nonces and proofs are empty; with one they are 32 random bytes and HMAC-SHA256
digests (see :mod:`respkv.peer.handshake`).
"""

from __future__ import annotations

from dataclasses import dataclass

from respkv.raft.types import NodeId

#: Bumped on any incompatible change of the frame formats in :mod:`respkv.peer.codec`.
PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class Hello:
    """The dialer introduces itself; the first frame on every connection."""

    version: int
    cluster_id: str
    node_id: NodeId  # the dialer
    to: NodeId  # the node the dialer believes it reached at this address
    peer_address: str  # the dialer's advertised peer address, "host:port"
    client_address: str  # the dialer's client (RESP) address, "host:port"
    # The static cluster the dialer was configured with, sorted by id; empty for a node that
    # joins a running cluster (nothing to compare).
    initial_cluster: tuple[tuple[NodeId, str], ...]
    nonce: bytes  # empty when the dialer has no cluster secret


@dataclass(frozen=True, slots=True)
class Welcome:
    """The listener accepts the Hello and proves it knows the secret (when one is set)."""

    version: int
    node_id: NodeId  # the listener
    nonce: bytes
    proof: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    """The dialer's proof of the cluster secret (empty without a secret)."""

    proof: bytes


@dataclass(frozen=True, slots=True)
class HandshakeOk:
    """The listener accepted the dialer's proof; the channel is open."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Either side refuses the connection; the sender closes it right after."""

    reason: str


@dataclass(frozen=True, slots=True)
class Forward:
    """A client command a follower forwards to the leader."""

    request_id: int  # never reused by a dialer for the same peer; the reply carries it back
    db: int
    protocol: int  # 2 or 3: the RESP version the reply payload must be encoded in
    argv: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ForwardReply:
    request_id: int
    payload: bytes  # a complete, already encoded RESP reply


Frame = Hello | Welcome | Auth | HandshakeOk | Reject | Forward | ForwardReply
