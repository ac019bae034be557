"""The server: opens the store, runs the node, accepts clients, shuts down cleanly."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from respkv import __version__
from respkv.config import Config, parse_address
from respkv.kv.statemachine import StateMachine
from respkv.raft.node import RaftConfig, ReadMode
from respkv.raft.types import Member, NodeId
from respkv.storage import Store

from .cluster import ClusterLink, derived_cluster_id
from .dispatch import Dispatcher
from .runtime import ClusterDown, NodeRuntime, member_context

if TYPE_CHECKING:
    from .connection import ClientConnection

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Stats:
    connections_received: int = 0
    rejected_connections: int = 0
    commands_processed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    expired_keys: int = 0


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = time.time
        self.run_id = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.started_at = time.time()
        self.stats = Stats()
        self.clients: dict[int, ClientConnection] = {}
        self._client_ids = itertools.count(1)
        self.requirepass = config.server.requirepass
        self.maxclients = config.server.maxclients
        # CONFIG SET values of Redis parameters that mean nothing here, echoed by CONFIG GET.
        self.ignored_parameters: dict[str, str] = {}
        self.lastsave = int(time.time())
        self.store: Store | None = None
        self.runtime: NodeRuntime | None = None
        self.cluster: ClusterLink | None = None
        self.state_machine: StateMachine | None = None
        self.dispatcher = Dispatcher(self)
        self._listener: asyncio.AbstractServer | None = None
        self._expiry_handle: asyncio.TimerHandle | None = None
        self._expiry_in_flight = False
        self._stopped = asyncio.Event()
        self.port = config.server.port

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        data_dir = config.data_dir
        log.info(
            "respkv %s starting: node %d, data dir %s",
            __version__,
            config.cluster.node_id,
            data_dir,
        )
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        new = not data_dir.exists()
        # A new node of a static cluster takes the id every member derives from the same
        # initial_cluster; afterwards the store's recorded id is the truth.
        self.store = Store.open(
            data_dir, config.cluster.node_id, derived_cluster_id(config) if new else None
        )
        self.state_machine = StateMachine(self.store.keyspace, databases=config.server.databases)
        raft = config.raft
        tick = raft.heartbeat_interval_ms / 1000
        raft_config = RaftConfig(
            NodeId(config.cluster.node_id),
            election_timeout_ticks=max(
                2, round(raft.election_timeout_ms / raft.heartbeat_interval_ms)
            ),
            heartbeat_ticks=1,
            pre_vote=raft.pre_vote,
            check_quorum=raft.check_quorum,
            read_mode=ReadMode.LEASE if raft.read_consistency == "lease" else ReadMode.SAFE,
            max_message_bytes=raft.max_message_bytes,
            max_inflight_messages=raft.max_inflight_messages,
            snapshot_chunk_bytes=raft.snapshot_chunk_bytes,
        )
        me = config.me()
        client_address = f"{config.server.bind}:{config.server.port}"
        members = [
            Member(
                NodeId(m.id),
                m.learner,
                member_context(
                    m.address,
                    m.client_address or (client_address if m.id == config.cluster.node_id else ""),
                    m.status,
                ),
            )
            for m in config.cluster.initial_cluster
        ] or [
            Member(
                NodeId(config.cluster.node_id),
                False,
                member_context(config.cluster.listen_address, client_address),
            )
        ]
        self.runtime = NodeRuntime(
            raft_config,
            self.store,
            self.state_machine,
            tick_seconds=tick,
            fsync=raft.fsync,
            request_timeout=raft.request_timeout_ms / 1000,
            snapshot_threshold=raft.snapshot_threshold,
            snapshot_tail=raft.snapshot_tail,
            initial_members=members,
            joining=me is not None and me.learner,
        )
        if not raft.fsync:
            log.warning("fsync is off: an acknowledged write can be lost if the machine fails")
        self.cluster = ClusterLink(
            config, self.runtime, self.state_machine, self.store.cluster_id, client_address
        )
        await self.cluster.start()
        self.runtime.start()
        loop = asyncio.get_running_loop()
        self._expiry_handle = loop.call_later(
            config.server.expiry_cycle_ms / 1000, self._expiry_cycle
        )
        self._listener = await loop.create_server(
            lambda: self.dispatcher.new_connection(),
            config.server.bind,
            config.server.port,
            reuse_address=True,
            backlog=1024,
        )
        sock = self._listener.sockets[0].getsockname()
        self.port = sock[1]
        log.info("ready to accept connections on %s:%d", sock[0], sock[1])

    def _expiry_cycle(self) -> None:
        """The leader deletes expired keys through the log; every node collects garbage."""
        runtime, sm = self.runtime, self.state_machine
        assert runtime is not None and sm is not None
        loop = asyncio.get_running_loop()
        if runtime.is_leader and not self._expiry_in_flight:
            now_ms = time.time_ns() // 1_000_000
            keys = sm.expired_keys(now_ms, 200)
            if keys:
                self._expiry_in_flight = True
                self.stats.expired_keys += len(keys)

                def done(_: object) -> None:
                    self._expiry_in_flight = False

                try:
                    runtime.propose(sm.prepare_expire(keys, now_ms), done)
                except ClusterDown:
                    self._expiry_in_flight = False
        sm.collect_garbage(1000)
        self._expiry_handle = loop.call_later(
            self.config.server.expiry_cycle_ms / 1000, self._expiry_cycle
        )

    async def stop(self) -> None:
        log.info("shutting down")
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        if self._listener is not None:
            self._listener.close()
        for client in list(self.clients.values()):
            client.kill()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.cluster is not None:
            await self.cluster.close()
        if self.store is not None:
            self.store.close()
        log.info("shut down cleanly")
        self._stopped.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()

    # --- clients -----------------------------------------------------------------------------

    def next_client_id(self) -> int:
        return next(self._client_ids)

    def client_connected(self, client: ClientConnection) -> bool:
        self.stats.connections_received += 1
        if len(self.clients) >= self.maxclients:
            self.stats.rejected_connections += 1
            return False
        self.clients[client.id] = client
        return True

    def client_disconnected(self, client: ClientConnection) -> None:
        self.clients.pop(client.id, None)

    @property
    def pid(self) -> int:
        return os.getpid()

    def client_address(self) -> tuple[str, int]:
        return parse_address(f"{self.config.server.bind}:{self.port}")
