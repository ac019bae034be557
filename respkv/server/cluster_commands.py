"""CLUSTER: respkv's admin view of the Raft group, and the standard Redis Cluster subcommands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from respkv.config import ConfigError, parse_address
from respkv.resp.replies import ErrorReply, SimpleString, Verbatim

from .commands import Deferred
from .runtime import parse_member_context
from .slots import key_slot

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


def _myid(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return f"{server.config.cluster.node_id:040x}".encode()


def _keyslot(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) != 3:
        return ErrorReply("ERR wrong number of arguments for 'cluster|keyslot' command")
    return key_slot(argv[2])


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


def _info(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    runtime = server.runtime
    assert runtime is not None
    ok = bool(runtime.leader)
    voters = len(runtime.conf_state.voters)
    lines = [
        f"cluster_state:{'ok' if ok else 'fail'}",
        "cluster_slots_assigned:16384",
        f"cluster_slots_ok:{16384 if ok else 0}",
        "cluster_slots_pfail:0",
        f"cluster_slots_fail:{0 if ok else 16384}",
        f"cluster_known_nodes:{len(runtime.conf_state.members)}",
        "cluster_size:1",
        f"cluster_current_epoch:{runtime.term}",
        f"cluster_my_epoch:{runtime.term}",
        f"raft_voters:{voters}",
    ]
    return Verbatim(b"txt", ("\r\n".join(lines) + "\r\n").encode())


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


def _help(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return [
        b"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        b"STATUS -- this node's view of the Raft group (role, term, leader, indices, members).",
        b"MYID -- this node's id.",
        b"INFO -- cluster state, Redis Cluster style.",
        b"KEYSLOT <key> -- the hash slot of a key.",
        b"JOIN <host:port> -- an empty node joins the cluster of the member at that peer address.",
        b"REMOVE <id> -- remove a member (the leader hands over first when it is the one).",
        b"PROMOTE <id> -- promote a learner to voter (when auto_promote is off).",
        b"FAILOVER [<id>] -- transfer leadership (to <id>, or the most up-to-date voter).",
    ]


_SUBCOMMANDS = {
    b"myid": _myid,
    b"keyslot": _keyslot,
    b"status": _status,
    b"info": _info,
    b"help": _help,
    b"join": _join,
    b"remove": _on_leader,
    b"promote": _on_leader,
    b"failover": _on_leader,
}
