"""CLUSTER: respkv's admin view of the Raft group, and the standard Redis Cluster subcommands.

The Redis Cluster ones (SLOTS, SHARDS, NODES, INFO, MYID, REPLICAS, KEYSLOT, COUNTKEYSINSLOT,
GETKEYSINSLOT) present the group as one shard: see ``cluster_face``. Those that manage slots or
a Redis Cluster's own membership (ADDSLOTS, MEET, RESET, ...) make no sense for one Raft group
that always owns every slot, and answer an error that says what to use instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from respkv.config import ConfigError, parse_address
from respkv.kv.layout import EXPIRE_FLAG, I64
from respkv.resp.replies import ErrorReply, SimpleString

from . import cluster_face
from .commands import Deferred, parse_int
from .runtime import parse_member_context
from .slots import SLOTS, key_slot

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection


def cluster_command(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    handler = _SUBCOMMANDS.get(sub)
    if handler is None:
        return ErrorReply(
            f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try CLUSTER HELP."
        )
    return handler(server, conn, argv)


def _arity_error(argv: list[bytes]) -> ErrorReply:
    sub = argv[1].decode(errors="replace").lower()
    return ErrorReply(f"ERR wrong number of arguments for 'cluster|{sub}' command")


def _myid(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 2:
        return _arity_error(argv)
    cluster = server.cluster
    assert cluster is not None
    return cluster_face.redis_node_id(cluster.cluster_id, server.config.cluster.node_id).encode()


def _keyslot(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 3:
        return _arity_error(argv)
    return key_slot(argv[2])


def _slots(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 2:
        return _arity_error(argv)
    return cluster_face.slots_reply(cluster_face.topology(server))


def _shards(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 2:
        return _arity_error(argv)
    return cluster_face.shards_reply(cluster_face.topology(server))


def _nodes(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 2:
        return _arity_error(argv)
    return cluster_face.nodes_reply(cluster_face.topology(server))


def _replicas(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """REPLICAS (or SLAVES) <node id>."""
    if len(argv) != 3:
        return _arity_error(argv)
    topo = cluster_face.topology(server)
    node = topo.by_id(argv[2])
    if node is None:
        return ErrorReply(f"ERR Unknown node {argv[2].decode(errors='replace')}")
    if not node.master:
        return ErrorReply("ERR The specified node is not a master")
    return cluster_face.replicas_reply(topo, node)


def _info(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """Redis Cluster's fields only (respkv's own view is CLUSTER STATUS and INFO raft)."""
    if len(argv) != 2:
        return _arity_error(argv)
    runtime = server.runtime
    assert runtime is not None
    topo = cluster_face.topology(server)
    return cluster_face.info_reply(topo, len(runtime.conf_state.members))


# --- keys in a slot --------------------------------------------------------------------------

#: Keys examined per event loop turn by COUNTKEYSINSLOT/GETKEYSINSLOT (a few milliseconds).
SLOT_SCAN_KEYS_PER_TURN = 5000


def _slot_arg(raw: bytes) -> int | ErrorReply:
    value = parse_int(raw)
    if value is None:
        return ErrorReply("ERR value is not an integer or out of range")
    return value


def _countkeysinslot(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 3:
        return _arity_error(argv)
    slot = _slot_arg(argv[2])
    if isinstance(slot, ErrorReply):
        return slot
    if not 0 <= slot < SLOTS:
        return ErrorReply("ERR Invalid slot")
    return _scan_slot(server, conn.db, slot, None)


def _getkeysinslot(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 4:
        return _arity_error(argv)
    slot, count = _slot_arg(argv[2]), _slot_arg(argv[3])
    for value in (slot, count):
        if isinstance(value, ErrorReply):
            return value
    assert isinstance(slot, int) and isinstance(count, int)
    if not 0 <= slot < SLOTS or count < 0:
        return ErrorReply("ERR Invalid slot or number of keys")
    if count == 0:
        return []
    return _scan_slot(server, conn.db, slot, count)


def _scan_slot(server: Server, db_index: int, slot: int, limit: int | None) -> Deferred:
    """The keys of ``slot`` in this node's local state (the count when ``limit`` is None, else
    up to ``limit`` key names), found by scanning the database in key order.

    There is no per-slot index (keeping one would cost every write that creates or deletes a
    key a second record): each call reads the database's keys, a slice per loop turn so that
    other clients and Raft keep running, until it has ``limit`` keys or reached the end. Keys
    whose expiry has passed are not counted.
    """

    def start(done: Callable[[Any], None]) -> None:
        loop = asyncio.get_running_loop()
        found: list[bytes] = []
        count = 0
        start_key = b""

        def step() -> None:
            nonlocal count, start_key
            sm = server.state_machine
            if sm is None:
                done(ErrorReply("ERR the server is restarting"))
                return
            now = time.time_ns() // 1_000_000
            for seen, (key, record) in enumerate(sm.iterate_keys(sm.db(db_index), start_key), 1):
                if key_slot(key) == slot and (
                    not record[0] & EXPIRE_FLAG or now <= I64.unpack_from(record, 1)[0]
                ):
                    count += 1
                    if limit is not None:
                        found.append(key)
                        if len(found) >= limit:
                            done(found)
                            return
                if seen >= SLOT_SCAN_KEYS_PER_TURN:
                    start_key = key + b"\x00"  # the first key after this one
                    loop.call_soon(step)
                    return
            done(found if limit is not None else count)

        step()

    return Deferred(start)


def _status(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """Our admin view: this node, the leader, indices, and every member as the leader sees it
    (on a follower, the membership without replication progress)."""
    runtime, cluster = server.runtime, server.cluster
    assert runtime is not None and cluster is not None
    status = runtime.raft.status()
    progress = {m.id: m for m in status.members}
    tick_ms = server.config.raft.heartbeat_interval_ms
    members: list[Any] = []
    for member in status.conf_state.members:
        peer, _, member_status = parse_member_context(member.context)
        entry: dict[bytes, Any] = {
            b"id": member.id,
            b"role": b"learner" if member.learner else b"voter",
            b"status": member_status.encode(),
            b"leader": int(member.id == status.leader),
            b"peer_address": peer.encode(),
            b"client_address": cluster.client_address_of(member.id).encode(),
        }
        p = progress.get(member.id)
        if p is not None:
            entry[b"match_index"] = p.match
            entry[b"replication"] = p.state.encode()
            entry[b"last_contact_ms"] = (
                0 if member.id == status.id else p.last_contact_ticks * tick_ms
            )
        members.append(entry)
    return {
        b"node_id": status.id,
        b"cluster_id": cluster.cluster_id.encode(),
        b"role": status.role.value.encode(),
        b"term": status.term,
        b"leader_id": status.leader,
        b"commit_index": status.commit,
        b"applied_index": status.applied,
        b"first_index": status.first_index,
        b"last_index": status.last_index,
        b"members": members,
    }


def _on_leader(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """REMOVE <id>, PROMOTE <id>, FAILOVER [<id>]: run by the leader, from any node."""
    cluster = server.cluster
    assert cluster is not None
    sub = argv[1].lower()
    if (sub in (b"remove", b"promote") and len(argv) != 3) or (
        sub == b"failover" and len(argv) > 3
    ):
        return ErrorReply(f"ERR wrong number of arguments for 'cluster|{sub.decode()}' command")
    return Deferred(lambda done: cluster.run_admin_on_leader([sub, *argv[2:]], done))


def _join(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """JOIN <peer host:port>: idempotent; an empty single node leaves its own cluster."""
    if len(argv) != 3:
        return ErrorReply("ERR wrong number of arguments for 'cluster|join' command")
    runtime, cluster, sm = server.runtime, server.cluster, server.state_machine
    assert runtime is not None and cluster is not None and sm is not None
    target = argv[2].decode(errors="replace")
    try:
        parse_address(target)
    except ConfigError:
        return ErrorReply(
            f"ERR the address must be host:port of a member's peer port, not {target!r}"
        )
    members = runtime.conf_state.members
    if len(members) > 1 or server.config.join_target():
        return SimpleString(
            f"OK already a member of cluster {cluster.cluster_id} ({len(members)} members, "
            f"leader {runtime.leader})".encode()
        )
    if any(sm.key_count(sm.db(i)) for i in range(sm.databases)):
        return ErrorReply(
            "ERR this node holds data in its own cluster; only an empty node can join another "
            "(start it with --join, or empty it first)"
        )

    def start(done: Callable[[Any], None]) -> None:
        async def run() -> None:
            try:
                done(SimpleString(("OK " + await server.rejoin(target)).encode()))
            except Exception as e:
                done(ErrorReply(f"ERR join failed: {e}"))

        asyncio.get_running_loop().create_task(run())

    return Deferred(start)


_NOT_HERE = (
    "respkv is one Raft group that owns all 16384 slots on every node: slots cannot be "
    "assigned or moved, and members are managed with CLUSTER JOIN, REMOVE, PROMOTE and "
    "FAILOVER (see CLUSTER HELP)"
)


def _unsupported(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    sub = argv[1].decode(errors="replace").upper()
    return ErrorReply(f"ERR CLUSTER {sub} is not supported: {_NOT_HERE}")


def _help(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return [
        b"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        b"STATUS -- this node's view of the Raft group (role, term, leader, indices, members).",
        b"MYID -- this node's Redis Cluster id (40 hex digits).",
        b"INFO -- cluster state, Redis Cluster style.",
        b"SLOTS, SHARDS, NODES -- the group as one Redis Cluster shard owning every slot.",
        b"REPLICAS <node-id> -- the master's replicas, as CLUSTER NODES lines.",
        b"KEYSLOT <key> -- the hash slot of a key.",
        b"COUNTKEYSINSLOT <slot> -- keys of a slot on this node (scans the database).",
        b"GETKEYSINSLOT <slot> <count> -- up to <count> keys of a slot (scans the database).",
        b"JOIN <host:port> -- an empty node joins the cluster of the member at that peer address.",
        b"REMOVE <id> -- remove a member (the leader hands over first when it is the one).",
        b"PROMOTE <id> -- promote a learner to voter (when auto_promote is off).",
        b"FAILOVER [<id>] -- transfer leadership (to <id>, or the most up-to-date voter).",
    ]


_SUBCOMMANDS = {
    b"myid": _myid,
    b"keyslot": _keyslot,
    b"slots": _slots,
    b"shards": _shards,
    b"nodes": _nodes,
    b"replicas": _replicas,
    b"slaves": _replicas,
    b"countkeysinslot": _countkeysinslot,
    b"getkeysinslot": _getkeysinslot,
    b"status": _status,
    b"info": _info,
    b"help": _help,
    b"join": _join,
    b"remove": _on_leader,
    b"promote": _on_leader,
    b"failover": _on_leader,
}
for _name in (
    "addslots",
    "addslotsrange",
    "delslots",
    "delslotsrange",
    "flushslots",
    "setslot",
    "meet",
    "forget",
    "replicate",
    "reset",
    "saveconfig",
    "bumpepoch",
    "set-config-epoch",
    "count-failure-reports",
    "links",
):
    _SUBCOMMANDS[_name.encode()] = _unsupported
