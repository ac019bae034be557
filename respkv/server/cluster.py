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
from respkv.raft.types import ConfState, NodeId, Role, Term
from respkv.resp.encoder import encode
from respkv.resp.replies import ErrorReply, Raw

from .errors import error_reply
from .runtime import ClusterDown, NodeRuntime, OutcomeUnknown, parse_member_context

if TYPE_CHECKING:
    from respkv.kv.statemachine import StateMachine

log = logging.getLogger(__name__)

STATUS_LOG_SECONDS = 3.0


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
        cluster = config.cluster
        self.identity = PeerIdentity(
            NodeId(cluster.node_id),
            cluster_id,
            cluster.listen_address,
            client_address,
            {NodeId(m.id): m.address for m in cluster.initial_cluster},
            cluster.cluster_secret.encode() or None,
        )
        self.network = PeerNetwork(
            self.identity,
            self._peer_addresses(runtime.conf_state),
            runtime.step,
            self._on_forward,
            listen_address=cluster.listen_address,
        )
        runtime.send_messages = self.network.send
        runtime.on_conf_state.append(self._conf_changed)
        runtime.on_soft_state.append(self._soft_state_changed)
        self._status_handle: asyncio.TimerHandle | None = None
        self._leaderless_since: float | None = time.monotonic()
        self._leader = NodeId(0)

    async def start(self) -> None:
        await self.network.start()
        log.info("peer channel listening on %s:%d", *self.network.listen_address or ("?", 0))
        self._status_handle = asyncio.get_running_loop().call_later(
            STATUS_LOG_SECONDS, self._log_status
        )

    async def close(self) -> None:
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

    def _conf_changed(self, conf: ConfState) -> None:
        self.network.update_members(self._peer_addresses(conf))

    def _soft_state_changed(self, leader: NodeId, role: Role, term: Term) -> None:
        previous = self._leader
        self._leader = leader
        self._leaderless_since = None if leader else time.monotonic()
        if previous and previous != leader and previous != self.identity.node_id:
            # Writes still queued for the old leader go to the new one instead.
            self.network.fail_forwards(previous, f"node {previous} is no longer the leader")

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
            self._run_write(argv, db, protocol, done)
            return
        if not leader:
            done(error_reply(ClusterDown("no leader is elected")))
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
                    done(error_reply(ClusterDown(f"could not reach the leader: {error}")))
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

    def _on_forward(self, request: Forward, responder: ForwardResponder) -> None:
        """Leader side: run a follower's client write as if a local client sent it."""
        protocol = request.protocol

        def reply(value: Any) -> None:
            responder.reply(request.request_id, encode(value, protocol))

        self._run_write(list(request.argv), request.db, protocol, reply)

    def _run_write(
        self, argv: list[bytes], db: int, protocol: int, done: Callable[[Any], None]
    ) -> None:
        """Validate, stamp and propose a write here; ``done`` gets a reply value."""
        payload = self.state_machine.prepare_write(argv, db, time.time_ns() // 1_000_000)
        if isinstance(payload, ErrorReply):
            done(payload)
            return

        def applied(value: Any) -> None:
            done(error_reply(value) if isinstance(value, BaseException) else value)

        try:
            self.runtime.propose(payload, applied)
        except ClusterDown as e:
            done(error_reply(e))

    # --- status ------------------------------------------------------------------------------

    def node_name(self, node_id: int) -> str:
        """The 40-character id the Redis cluster face uses for a node."""
        return f"{node_id:040x}"
