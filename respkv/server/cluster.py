"""The node's place in its cluster: peer network wiring, member addresses, write forwarding.

A follower that gets a write forwards the client's argv to the leader over the peer channel
(the leader validates, stamps and proposes it, and sends back the encoded reply), or answers
``-MOVED`` when configured so. Addresses come from the membership in the log (each member's
context holds its peer and client address), completed by what peers say in their handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from respkv.config import Config
from respkv.peer import (
    Forward,
    ForwardNotSent,
    ForwardOutcomeUnknown,
    ForwardResponder,
    PeerIdentity,
    PeerNetwork,
)
from respkv.raft.types import ConfState, Message, NodeId, Role, Term
from respkv.resp.encoder import encode
from respkv.resp.replies import OK, ErrorReply, Raw

from .errors import error_reply
from .membership import Membership
from .runtime import ClusterDown, NodeRuntime, OutcomeUnknown, parse_member_context
from .tls import peer_options
from .transactions import envelope, internal_payload

if TYPE_CHECKING:
    from respkv.kv.statemachine import StateMachine

log = logging.getLogger(__name__)

STATUS_LOG_SECONDS = 3.0
REMOVED_GRACE_SECONDS = 5.0


def derived_cluster_id(config: Config) -> str:
    """A new cluster's id: the same on every node configured with the same initial_cluster."""
    members = sorted((m.id, m.address) for m in config.cluster.initial_cluster) or [
        (config.cluster.node_id, config.cluster.listen_address)
    ]
    text = ";".join(f"{i}={a}" for i, a in members)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ClusterLink:
    def __init__(
        self,
        config: Config,
        runtime: NodeRuntime,
        state_machine: StateMachine,
        cluster_id: str,
        client_address: str,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.state_machine = state_machine
        self.cluster_id = cluster_id
        self.client_address = client_address
        self.forwards_served = 0  # requests other nodes forwarded here (metrics)
        cluster = config.cluster
        # Only nodes that bootstrapped one static cluster compare their initial_cluster lists
        # at the handshake; a node that joins (or joined) lists the cluster differently.
        static = not config.join_target()
        self.identity = PeerIdentity(
            NodeId(cluster.node_id),
            cluster_id,
            cluster.listen_address,
            client_address,
            {NodeId(m.id): m.address for m in cluster.initial_cluster} if static else {},
            cluster.cluster_secret.encode() or None,
        )
        self._recently_removed: dict[NodeId, tuple[str, float]] = {}
        # The members' addresses last given to the network (not removed ones in their grace).
        self._last_addresses = self._peer_addresses(runtime.conf_state)
        self.network = PeerNetwork(
            self.identity,
            self._last_addresses,
            self._on_message,
            self._on_forward,
            listen_address=cluster.listen_address,
            # A node that joins by address alone knows no member yet: it accepts the leader's
            # connection until the membership arrives with the log.
            accept_unknown_peers=not runtime.conf_state.members,
            options=peer_options(config),
        )
        self.membership = Membership(self)
        runtime.send_messages = self._send
        runtime.on_conf_state.append(self._conf_changed)
        runtime.on_soft_state.append(self._soft_state_changed)
        runtime.on_member_removed.append(self.removal_applied)
        self._status_handle: asyncio.TimerHandle | None = None
        self._leaderless_since: float | None = time.monotonic()
        self._leader = NodeId(0)
        # The last leader this node knew (0: none yet): the master of the Redis Cluster face
        # while no leader is known.
        self.last_leader = NodeId(0)
        self._election_timeout = config.raft.election_timeout_ms / 1000
        self._waiting_writes: list[tuple[float, list[bytes], int, int, Callable[[Any], None]]] = []
        self._waiting_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        await self.network.start()
        self.membership.start()
        log.info("peer channel listening on %s:%d", *self.network.listen_address or ("?", 0))
        self._status_handle = asyncio.get_running_loop().call_later(
            STATUS_LOG_SECONDS, self._log_status
        )

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until writes this node holds or passed on have their answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            self._waiting_writes
            or self.runtime.pending_proposals
            or self.network.pending_forwards()
        ):
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.membership.close()
        if self._status_handle is not None:
            self._status_handle.cancel()
        await self.network.close()

    # --- addresses ---------------------------------------------------------------------------

    def _peer_addresses(self, conf: ConfState) -> dict[NodeId, str]:
        addresses = {NodeId(m.id): m.address for m in self.config.cluster.initial_cluster}
        for member in conf.members:
            peer, _, _ = parse_member_context(member.context)
            if peer:
                addresses[member.id] = peer
        # A removed member stays connected for a moment, so that the answer to its last
        # request and the notice of its removal reach it.
        now = time.monotonic()
        for node_id, (address, until) in list(self._recently_removed.items()):
            if until < now:
                del self._recently_removed[node_id]
            else:
                addresses.setdefault(node_id, address)
        return {i: a for i, a in addresses.items() if i != self.identity.node_id}

    def client_address_of(self, node_id: NodeId) -> str:
        """Where clients reach ``node_id`` ("" if unknown)."""
        if node_id == self.identity.node_id:
            return self.client_address
        member = self.runtime.conf_state.member(node_id)
        if member is not None:
            _, client, _ = parse_member_context(member.context)
            if client:
                return client
        for m in self.config.cluster.initial_cluster:
            if m.id == node_id and m.client_address:
                return m.client_address
        hello = self.network.peer_hello(node_id)
        return hello.client_address if hello is not None else ""

    def _send(self, messages: list[Message]) -> None:
        """Send Raft messages; a peer we have no address for yet (a joiner before the log
        told it the members) is reached at the address it gave when it connected to us."""
        for m in messages:
            if m.to not in self._last_addresses and m.to not in self._recently_removed:
                hello = self.network.peer_hello(m.to)
                if hello is not None and hello.peer_address:
                    self._last_addresses[m.to] = hello.peer_address
                    self.network.update_members(self._wanted_addresses())
        self.network.send(messages)

    def _wanted_addresses(self) -> dict[NodeId, str]:
        return {**self._peer_addresses(self.runtime.conf_state), **self._last_addresses}

    def _conf_changed(self, conf: ConfState) -> None:
        self.network.accept_unknown_peers = not conf.members
        if not conf.members:
            # A joiner before its first snapshot: the peers it talks to (the leader) are not
            # removed, they are not known yet.
            self.network.update_members(self._wanted_addresses())
            return
        for node_id, address in self._last_addresses.items():
            if conf.member(node_id) is None:
                self._recently_removed[node_id] = (
                    address,
                    time.monotonic() + REMOVED_GRACE_SECONDS,
                )
        addresses = self._peer_addresses(conf)
        self._last_addresses = {i: a for i, a in addresses.items() if conf.member(i) is not None}
        self.network.update_members(addresses)
        asyncio.get_running_loop().call_later(REMOVED_GRACE_SECONDS + 0.1, self._expire_removed)

    def _expire_removed(self) -> None:
        self.network.update_members(self._wanted_addresses())

    def removal_applied(self, node_id: NodeId) -> None:
        """The leader tells a removed member, which may not learn it from the log."""
        if self.runtime.is_leader and node_id != self.identity.node_id:
            notice = [
                b"CLUSTER",
                b"REMOVED-NOTICE",
                str(node_id).encode(),
                self.cluster_id.encode(),
            ]
            future = self.network.forward(node_id, 0, notice, 2)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _soft_state_changed(self, leader: NodeId, role: Role, term: Term) -> None:
        previous = self._leader
        self._leader = leader
        if leader:
            self.last_leader = leader
        self._leaderless_since = None if leader else time.monotonic()
        if previous and previous != leader and previous != self.identity.node_id:
            # Writes still queued for the old leader go to the new one instead.
            self.network.fail_unsent_forwards(previous, f"node {previous} is no longer the leader")

    def _log_status(self) -> None:
        """While there is no leader, say every few seconds which peers we reach (the seed's
        "cluster stuck, no leader elected" case explains itself)."""
        if self.runtime.leader == 0 and len(self.runtime.conf_state.voters) > 1:
            waited = time.monotonic() - (self._leaderless_since or time.monotonic())
            voters = len(self.runtime.conf_state.voters)
            log.warning(
                "no leader yet after %.0fs: waiting for a majority (%d of %d voters); peers: %s",
                waited,
                voters // 2 + 1,
                voters,
                self.network.describe(),
            )
        self._status_handle = asyncio.get_running_loop().call_later(
            STATUS_LOG_SECONDS, self._log_status
        )

    # --- forwarding --------------------------------------------------------------------------

    def write_or_wait(
        self,
        argv: list[bytes],
        db: int,
        protocol: int,
        done: Callable[[Any], None],
        error: ClusterDown,
    ) -> None:
        """A write that found no leader to take it: while leadership is moving (a transfer,
        or a leader seen within an election timeout) and this node reaches a majority, it
        waits for the new leader; otherwise it fails fast."""
        runtime = self.runtime
        now = time.monotonic()
        voters = runtime.conf_state.voters
        reachable = len(self.network.reachable() & voters) + (self.identity.node_id in voters)
        moving = reachable >= len(voters) // 2 + 1 and (
            bool(runtime.raft.lead_transferee)
            or bool(runtime.leader)
            or (
                self._leaderless_since is not None
                and now - self._leaderless_since < self._election_timeout
            )
        )
        if not moving:
            done(error_reply(error))
            return
        # One election timeout: a handover takes milliseconds, an election after a crash
        # about one timeout; a cluster without a majority answers CLUSTERDOWN soon after.
        deadline = now + self._election_timeout
        self._waiting_writes.append((deadline, argv, db, protocol, done))
        if self._waiting_timer is None:
            self._waiting_timer = asyncio.get_running_loop().call_later(0.05, self._retry_waiting)

    def _retry_waiting(self) -> None:
        """Resubmit waiting writes once a leader that takes them is known; fail late ones."""
        self._waiting_timer = None
        runtime = self.runtime
        ready = (
            runtime.leader
            and not runtime.raft.lead_transferee
            and (runtime.is_leader or runtime.leader != self.identity.node_id)
        )
        waiting, self._waiting_writes = self._waiting_writes, []
        now = time.monotonic()
        for deadline, argv, db, protocol, done in waiting:
            if ready:
                self.forward_write(argv, db, protocol, done)
            elif now > deadline:
                done(error_reply(ClusterDown("no leader was elected in time")))
            else:
                self._waiting_writes.append((deadline, argv, db, protocol, done))
        if self._waiting_writes:
            self._waiting_timer = asyncio.get_running_loop().call_later(0.05, self._retry_waiting)

    def forward_write(
        self,
        argv: list[bytes],
        db: int,
        protocol: int,
        done: Callable[[Any], None],
        attempts: int = 3,
    ) -> None:
        """Send a write to the leader; ``done`` gets the reply (Raw bytes) or an error reply.

        A forward that never left this node when the leader changed is sent again to the new
        leader (or proposed here, if that is us), so a failover costs clients no error.
        """
        leader = self.runtime.leader
        if leader == self.identity.node_id:
            if argv[0].lower() == b"cluster":
                self.membership.handle(argv[1:], done)
            else:
                self._run_write(argv, db, protocol, done)
            return
        if not leader:
            self.write_or_wait(argv, db, protocol, done, ClusterDown("no leader is elected"))
            return
        future = self.network.forward(leader, db, argv, protocol)
        timeout = self.runtime.request_timeout
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, future.cancel)

        def finished(f: asyncio.Future[bytes]) -> None:
            timer.cancel()
            if f.cancelled():
                done(error_reply(OutcomeUnknown(f"the leader did not answer within {timeout:g}s")))
                return
            error = f.exception()
            if error is None:
                done(Raw(f.result()))
            elif isinstance(error, ForwardNotSent):
                if attempts > 1 and self.runtime.leader and self.runtime.leader != leader:
                    self.forward_write(argv, db, protocol, done, attempts - 1)
                else:
                    down = ClusterDown(f"could not reach the leader: {error}")
                    self.write_or_wait(argv, db, protocol, done, down)
            elif isinstance(error, ForwardOutcomeUnknown):
                done(error_reply(OutcomeUnknown(f"lost the leader: {error}")))
            else:
                done(error_reply(error))

        future.add_done_callback(finished)

    def moved(self, slot: int) -> ErrorReply:
        leader = self.runtime.leader
        address = self.client_address_of(leader) if leader else ""
        if not address:
            return error_reply(ClusterDown("no leader is elected"))
        return ErrorReply(f"MOVED {slot} {address}")

    def _on_message(self, message: Message) -> None:
        """A Raft message from a peer. Once this node has a membership, messages from nodes
        outside it (removed nodes, joiners not yet added) are dropped: they may not vote or
        disturb the cluster."""
        conf = self.runtime.conf_state
        if conf.members and conf.member(message.sender) is None:
            log.debug("dropping %s from non-member %d", type(message).__name__, message.sender)
            return
        self.runtime.step(message)

    def _on_forward(self, request: Forward, responder: ForwardResponder) -> None:
        """Run a peer's forwarded command: a follower's client write (we lead), or a
        membership request (from a joiner or a follower), which goes on to the leader."""
        protocol = request.protocol

        def reply(value: Any) -> None:
            if isinstance(value, Raw):
                responder.reply(request.request_id, value.data)
            else:
                responder.reply(request.request_id, encode(value, protocol))

        argv = list(request.argv)
        self.forwards_served += 1
        if argv[:2] == [b"CLUSTER", b"REMOVED-NOTICE"]:
            self._removed_notice(argv, responder.peer_id, reply)
            return
        if argv and argv[0].lower() == b"cluster":
            self.run_admin_on_leader(argv[1:], reply)
            return
        # Any peer of this cluster may forward a client's write, members or not: during a
        # membership change the sender may be a joiner this node does not know yet, or a
        # leader that just removed itself and still has clients; it is only a proxy.
        if argv and argv[0] == b"#exec":
            self._run_write(argv, request.db, protocol, lambda v: reply(envelope(argv, v)))
            return
        self._run_write(argv, request.db, protocol, reply)

    def _removed_notice(
        self, argv: list[bytes], sender: NodeId, reply: Callable[[Any], None]
    ) -> None:
        mine = str(self.identity.node_id).encode(), self.cluster_id.encode()
        if len(argv) == 4 and (argv[2], argv[3]) == mine and sender == self.runtime.leader:
            log.warning("the leader (node %d) removed this node from the cluster", sender)
            reply(OK)
            for callback in self.runtime.on_removed:
                callback()
        else:
            reply(ErrorReply("ERR not a removal notice for this node from its leader"))

    def run_admin_on_leader(self, argv: list[bytes], done: Callable[[Any], None]) -> None:
        """A membership request (CLUSTER JOIN-REQUEST/REMOVE/PROMOTE/FAILOVER ...), run by the
        leader: here, or forwarded to it."""
        leader = self.runtime.leader
        if leader == self.identity.node_id:
            self.membership.handle(argv, done)
        elif not leader:
            done(error_reply(ClusterDown("no leader is elected")))
        else:
            self.forward_write([b"CLUSTER", *argv], 0, 2, done)

    def _run_write(
        self, argv: list[bytes], db: int, protocol: int, done: Callable[[Any], None]
    ) -> None:
        """Validate, stamp and propose a write here; ``done`` gets a reply value."""
        now_ms = time.time_ns() // 1_000_000
        if argv[0][:1] == b"#":  # EXEC or PUBLISH from a follower (respkv.server.transactions)
            payload = internal_payload(self.state_machine, argv, now_ms)
        else:
            payload = self.state_machine.prepare_write(argv, db, now_ms)
        if isinstance(payload, ErrorReply):
            done(payload)
            return

        def applied(value: Any) -> None:
            done(error_reply(value) if isinstance(value, BaseException) else value)

        try:
            self.runtime.propose(payload, applied)
        except ClusterDown as e:
            self.write_or_wait(argv, db, protocol, done, e)
