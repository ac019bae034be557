"""The Redis Cluster face: the Raft group presented as one shard that owns all 16384 slots.

What a cluster-aware client sees (CLUSTER SLOTS, SHARDS, NODES, INFO, MYID, REPLICAS), with
the reply shapes of Redis 7.0:

* The leader is the master; the other voters are its replicas; learners are replicas that are
  still syncing: CLUSTER NODES lists them as ``slave,nofailover`` (they are never elected),
  CLUSTER SHARDS with ``health: loading``, and CLUSTER SLOTS leaves them out, as Redis leaves
  out replicas that have not finished their first sync (so clients never read from them).
* A voter this node cannot reach over the peer channel is ``fail?`` and ``disconnected`` in
  CLUSTER NODES, ``failed`` in CLUSTER SHARDS, and left out of CLUSTER SLOTS.
* Node ids are 40 hex digits derived from the cluster id and the Raft node id: the same on
  every node, never the same in two clusters. The epoch is the Raft term.
* Every node answers from its last known membership, also while no leader is known (clients
  must be able to bootstrap then): the master is then the last leader this node knew (or the
  lowest voter id if it never knew one), and CLUSTER INFO says ``cluster_state:fail``.
* Addresses are the members' client addresses (from the membership in the log, the config or
  the peer handshake); the cluster bus port is the member's peer port.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from respkv.config import parse_address
from respkv.raft.types import NodeId
from respkv.resp.replies import Verbatim

from .runtime import parse_member_context
from .slots import SLOTS

if TYPE_CHECKING:
    from .app import Server


def redis_node_id(cluster_id: str, raft_id: int) -> str:
    """The 40-hex-digit Redis Cluster id of Raft node ``raft_id`` of cluster ``cluster_id``."""
    return hashlib.sha1(f"respkv:{cluster_id}:{raft_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FaceNode:
    raft_id: NodeId
    node_id: str  # 40 hex digits
    host: str  # "" when the client address is unknown
    port: int
    bus_port: int  # the peer (Raft) port
    master: bool
    learner: bool
    myself: bool
    reachable: bool  # myself, or the peer channel to it is up
    replication_offset: int  # what this node knows of the member's log (Raft index)
    pong_ms: int  # unix ms of the last contact (0: myself or never)

    @property
    def endpoint(self) -> bytes:
        return self.host.encode()


@dataclass(frozen=True, slots=True)
class Topology:
    """One node's view of the group, as Redis Cluster sees a shard."""

    master: FaceNode
    replicas: tuple[FaceNode, ...]  # voters other than the master, then learners
    leader_known: bool
    epoch: int  # the Raft term

    @property
    def nodes(self) -> tuple[FaceNode, ...]:
        return (self.master, *self.replicas)

    def by_id(self, node_id: bytes) -> FaceNode | None:
        for node in self.nodes:
            if node.node_id.encode() == node_id:
                return node
        return None


def _split(address: str) -> tuple[str, int]:
    if not address:
        return "", 0
    try:
        return parse_address(address)
    except ValueError:
        return "", 0


def topology(server: Server) -> Topology:
    runtime, cluster = server.runtime, server.cluster
    assert runtime is not None and cluster is not None
    conf = runtime.conf_state
    me = runtime.id
    leader = runtime.leader
    voters = sorted(conf.voters)
    master_id = leader or cluster.last_leader
    if master_id not in conf.voters:
        master_id = NodeId(voters[0]) if voters else me
    reachable = cluster.network.reachable()
    now = time.time()
    contacts = {s.node_id: s.last_contact_s for s in cluster.network.status()}
    status = runtime.raft.status()
    progress = {m.id: m.match for m in status.members}

    def node(raft_id: NodeId, learner: bool) -> FaceNode:
        member = conf.member(raft_id)
        peer = parse_member_context(member.context)[0] if member is not None else ""
        host, port = _split(cluster.client_address_of(raft_id))
        myself = raft_id == me
        offset: int
        if myself:
            offset = status.applied
        elif raft_id in progress:  # this node leads: it knows every member's match index
            offset = progress[raft_id]
        elif raft_id == leader:
            offset = status.commit  # the leader has at least what we know is committed
        else:
            offset = 0
        contact = contacts.get(raft_id)
        return FaceNode(
            raft_id=raft_id,
            node_id=redis_node_id(cluster.cluster_id, raft_id),
            host=host,
            port=port,
            bus_port=_split(peer)[1],
            master=raft_id == master_id,
            learner=learner,
            myself=myself,
            reachable=myself or raft_id in reachable,
            replication_offset=offset,
            pong_ms=0 if myself or contact is None else int((now - contact) * 1000),
        )

    master = node(master_id, False)
    replicas = [node(NodeId(v), False) for v in voters if v != master_id]
    replicas += [node(m.id, True) for m in sorted(conf.members, key=lambda m: m.id) if m.learner]
    return Topology(master, tuple(replicas), bool(leader), runtime.term)


# --- replies -------------------------------------------------------------------------------------


def _slots_entry(node: FaceNode) -> list[Any]:
    return [node.endpoint, node.port, node.node_id.encode(), {}]


def slots_reply(topo: Topology) -> list[Any]:
    """CLUSTER SLOTS: one range, the master, then the replicas clients may read from."""
    servable = [r for r in topo.replicas if not r.learner and r.reachable and r.host and r.port]
    return [[0, SLOTS - 1, _slots_entry(topo.master), *(_slots_entry(r) for r in servable)]]


def _health(node: FaceNode) -> bytes:
    if not node.reachable:
        return b"failed"
    return b"loading" if node.learner else b"online"


def shards_reply(topo: Topology) -> list[Any]:
    """CLUSTER SHARDS: one shard with every member."""
    nodes = [
        {
            b"id": node.node_id.encode(),
            b"port": node.port,
            b"ip": node.endpoint,
            b"endpoint": node.endpoint,
            b"role": b"master" if node.master else b"replica",
            b"replication-offset": node.replication_offset,
            b"health": _health(node),
        }
        for node in topo.nodes
    ]
    return [{b"slots": [0, SLOTS - 1], b"nodes": nodes}]


def node_line(topo: Topology, node: FaceNode) -> str:
    """One line of CLUSTER NODES (without the newline)."""
    flags = ["myself"] if node.myself else []
    flags.append("master" if node.master else "slave")
    if not node.reachable:
        flags.append("fail?")
    if node.learner and not node.master:
        flags.append("nofailover")
    master = "-" if node.master else topo.master.node_id
    link = "connected" if node.reachable else "disconnected"
    slots = f" 0-{SLOTS - 1}" if node.master else ""
    return (
        f"{node.node_id} {node.host}:{node.port}@{node.bus_port} {','.join(flags)} {master} "
        f"0 {node.pong_ms} {topo.epoch} {link}{slots}"
    )


def nodes_reply(topo: Topology) -> Verbatim:
    text = "".join(node_line(topo, node) + "\n" for node in topo.nodes)
    return Verbatim(b"txt", text.encode())


def replicas_reply(topo: Topology, node: FaceNode) -> list[bytes]:
    """CLUSTER REPLICAS <master id>: the replicas' CLUSTER NODES lines."""
    return [node_line(topo, r).encode() for r in topo.replicas] if node.master else []


def info_reply(topo: Topology, known_nodes: int) -> Verbatim:
    ok = topo.leader_known
    lines = [
        f"cluster_state:{'ok' if ok else 'fail'}",
        f"cluster_slots_assigned:{SLOTS}",
        f"cluster_slots_ok:{SLOTS if ok else 0}",
        "cluster_slots_pfail:0",
        f"cluster_slots_fail:{0 if ok else SLOTS}",
        f"cluster_known_nodes:{known_nodes}",
        "cluster_size:1",
        f"cluster_current_epoch:{topo.epoch}",
        f"cluster_my_epoch:{topo.epoch}",
        "cluster_stats_messages_sent:0",
        "cluster_stats_messages_received:0",
        "total_cluster_links_buffer_limit_exceeded:0",
    ]
    return Verbatim(b"txt", ("\r\n".join(lines) + "\r\n").encode())
