"""The server: opens the store, runs the node, accepts clients, shuts down cleanly."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import signal
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from respkv import __version__
from respkv.config import Config
from respkv.kv.statemachine import StateMachine
from respkv.raft.node import RaftConfig, ReadMode
from respkv.raft.types import Member, NodeId
from respkv.storage import StorageError, Store

from .acl import AclTable
from .backup import Backups
from .blocking import BlockedPops
from .cluster import ClusterLink, derived_cluster_id
from .dispatch import Dispatcher
from .join import join_cluster
from .metrics import MetricsEndpoint, Observer
from .pubsub import LEADER_CHANNEL, PubSub
from .runtime import ClusterDown, NodeRuntime, member_context
from .tls import client_port_context, peer_options

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
    forwarded_writes: int = 0  # client writes this node forwarded to the leader


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = time.time
        self.run_id = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.started_at = time.time()
        self.stats = Stats()
        self.observer = Observer()  # per-command statistics, SLOWLOG, latency monitor
        self.metrics = MetricsEndpoint(self)
        self.clients: dict[int, ClientConnection] = {}
        self._client_ids = itertools.count(1)
        self.requirepass = config.server.requirepass
        self.maxclients = config.server.maxclients
        # CONFIG SET values of Redis parameters that mean nothing here, echoed by CONFIG GET.
        self.ignored_parameters: dict[str, str] = {}
        self.lastsave = int(time.time())
        self.backups = Backups(self)
        self.store: Store | None = None
        self.runtime: NodeRuntime | None = None
        self.cluster: ClusterLink | None = None
        self.state_machine: StateMachine | None = None
        self.dispatcher = Dispatcher(self)
        self.acl = AclTable(self)
        self.blocked = BlockedPops(self)
        self._listener: asyncio.AbstractServer | None = None
        self._tls_listener: asyncio.AbstractServer | None = None
        self.tls_port = config.tls.port
        self._expiry_handle: asyncio.TimerHandle | None = None
        self._expiry_in_flight = False
        self._stopped = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.port = config.server.port
        self.pubsub = PubSub()
        # Redis's default client-output-buffer-limit for pub/sub clients: hard bytes, soft
        # bytes, seconds over the soft limit (CONFIG SET client-output-buffer-limit).
        self.pubsub_output_limit: tuple[int, int, int] = (32 * 1024 * 1024, 8 * 1024 * 1024, 60)
        self._announced_leader: tuple[int, int] = (0, 0)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        # Certificates are loaded before anything starts: a bad file stops the start at once.
        client_tls = client_port_context(config.tls) if config.tls.client_port_enabled else None
        # Bound now (port 0 picks the port the node advertises), listening only once the
        # node is ready: until then clients are refused, not left waiting.
        sock = _bound_socket(config.server.bind, config.server.port)
        try:
            self.port = sock.getsockname()[1]
            await self._start_node()
            self._warn_if_exposed()
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(
                lambda: self.dispatcher.new_connection(), sock=sock, backlog=1024
            )
        except BaseException:
            sock.close()
            raise
        self.metrics.start()
        log.info("ready to accept connections on %s:%d", *sock.getsockname()[:2])
        if client_tls is not None:
            self._tls_listener = await loop.create_server(
                lambda: self.dispatcher.new_connection(),
                config.server.bind,
                config.tls.port,
                reuse_address=True,
                backlog=1024,
                ssl=client_tls,
                ssl_handshake_timeout=10.0,
            )
            sock = self._tls_listener.sockets[0].getsockname()
            self.tls_port = sock[1]
            log.info("ready to accept TLS connections on %s:%d", sock[0], sock[1])

    def _warn_if_exposed(self) -> None:
        """Loud warnings when a port is reachable beyond this machine without protection."""
        config = self.config
        if not _is_loopback(config.server.bind) and self.acl.default_nopass:
            log.warning(
                "SECURITY: the client port is bound to %s (not loopback) and the default user "
                "has no password: anyone who can reach %s:%d can read and change every key. "
                "Set [server] requirepass (or disable the default user with ACL users), and "
                "consider [tls]",
                config.server.bind,
                config.server.bind,
                config.server.port,
            )
        host = config.cluster.listen_address.rpartition(":")[0].strip("[]")
        if not _is_loopback(host) and not config.cluster.cluster_secret and not config.tls.peer:
            log.warning(
                "SECURITY: the peer port %s is not on loopback and neither [cluster] "
                "cluster_secret nor [tls] peer is set: anyone who can reach it can take part "
                "in this cluster's replication",
                config.cluster.listen_address,
            )

    async def _start_node(self) -> None:
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
        # Where clients reach this node (MOVED, CLUSTER SLOTS): this node's client_address in
        # initial_cluster when given (e.g. behind NAT, or bound to 0.0.0.0), else bind:port.
        me = config.me()
        client_address = (
            me.client_address
            if me is not None and me.client_address
            else _advertised_address(config, self.port)
        )
        join_target = config.join_target()
        joining = new and bool(join_target)
        if joining:
            cluster_id, leader, outcome = await join_cluster(
                config.cluster.node_id,
                join_target,
                config.cluster.listen_address,
                client_address,
                me.status if me is not None and me.status != "active" else "promotable",
                config.cluster.cluster_secret.encode() or None,
                options=peer_options(config),
            )
            log.info(
                "joined cluster %s through %s (leader %d): %s",
                cluster_id,
                join_target,
                leader,
                outcome,
            )
        else:
            # A new node of a static cluster takes the id every member derives from the same
            # initial_cluster; afterwards the store's recorded id is the truth.
            cluster_id = derived_cluster_id(config) if new else ""
        self.store = Store.open(data_dir, config.cluster.node_id, cluster_id or None)
        if self.store.removed:
            reason = self.store.removed
            self.store.close()
            raise StorageError(
                f"data dir {data_dir} belongs to node {config.cluster.node_id}, which was removed "
                f"from its cluster ({reason}); to take part again, start it with a new node id "
                "and an empty data dir"
            )
        self.state_machine = StateMachine(self.store.keyspace, databases=config.server.databases)
        self.state_machine.on_publish = self.pubsub.publish
        self.state_machine.on_acl_change = self.acl.refresh
        self.acl.refresh()
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
            max_apply_bytes=raft.max_apply_bytes,
        )
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
            max_log_hold=raft.max_log_hold,
            snapshot_rate_bytes_s=raft.snapshot_rate_mb_s * 1_000_000,
            initial_members=members,
            joining=bool(join_target),
        )
        self.runtime.writer.slow_fsync_threshold_ns = self.observer.latency_threshold_ns
        self.runtime.writer.on_slow_fsync = self.observer.slow_fsync
        self.runtime.on_removed.append(self._removed)
        self.runtime.on_soft_state.append(self._announce_leader)
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

    async def _stop_node(self) -> None:
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        await self.backups.wait()  # its thread reads the store
        if self.runtime is not None:
            await self.runtime.stop()
        if self.cluster is not None:
            await self.cluster.close()
        if self.store is not None:
            self.store.close()

    async def rejoin(self, target: str) -> str:
        """CLUSTER JOIN on a fresh single node without data: start over as a joiner."""
        log.info("leaving this node's own empty cluster to join through %s", target)
        await self._stop_node()
        shutil.rmtree(self.config.data_dir)
        self.config = replace(self.config, cluster=replace(self.config.cluster, join=target))
        await self._start_node()
        assert self.cluster is not None
        return f"joined cluster {self.cluster.cluster_id} as a learner"

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

    def _announce_leader(self, leader: NodeId, role: object, term: int) -> None:
        """Tell this node's subscribers of LEADER_CHANNEL about a new leader (or term)."""
        if not leader or (leader, term) == self._announced_leader:
            return
        self._announced_leader = (leader, term)
        address = self.cluster.client_address_of(leader) if self.cluster is not None else ""
        self.pubsub.publish(LEADER_CHANNEL, f"{leader} {address} {term}".encode())

    def _removed(self) -> None:
        assert self.store is not None
        log.warning("this node was removed from the cluster: it will not serve again")
        term = self.runtime.term if self.runtime is not None else 0
        self.store.mark_removed(f"removed by the cluster at term {term}")
        # A moment for replies in flight (e.g. the OK to the CLUSTER REMOVE that removed us).
        asyncio.get_running_loop().call_later(1.0, self.stop_requested.set)

    async def _hand_over_leadership(self) -> None:
        """SIGTERM on a leader: transfer leadership first, so clients see no failed write."""
        runtime, cluster = self.runtime, self.cluster
        if runtime is None or cluster is None or not runtime.is_leader:
            return
        if len(runtime.conf_state.voters) < 2:
            return
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def finished(result: object) -> None:
            if not done.done():
                done.set_result(result)

        cluster.membership.handle([b"failover"], finished)
        try:
            result = await asyncio.wait_for(done, 5)
            log.info("leadership handed over before shutdown: %s", result)
        except TimeoutError:
            log.warning("could not hand leadership over before shutdown")

    async def stop(self) -> None:
        log.info("shutting down")
        if self._listener is not None:
            self._listener.close()  # no new clients; those connected finish what they sent
        if self._tls_listener is not None:
            self._tls_listener.close()
        await self._hand_over_leadership()
        if self.cluster is not None:
            await self.cluster.drain(timeout=3.0)
        for client in list(self.clients.values()):
            client.kill()
        await self._stop_node()
        self.metrics.stop()
        log.info("shut down cleanly")
        self._stopped.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while starting (e.g. still trying to join)
            log.info("stop requested while starting")
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        else:
            starting.result()  # start-up errors propagate to the CLI
            await stopping
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
        self.pubsub.remove(client)
        self.blocked.client_gone(client.id)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _advertised_address(config: Config, port: int) -> str:
    """bind:port, unless bound to every interface: then the peer channel's host, which other
    nodes already reach (a wildcard address in MOVED or CLUSTER SLOTS helps no client)."""
    host = config.server.bind
    if host in ("0.0.0.0", "::", ""):
        peer_host = config.cluster.listen_address.rpartition(":")[0].strip("[]")
        if peer_host in ("0.0.0.0", "::", ""):
            log.warning(
                "bound to %s with no client_address for this node: MOVED and CLUSTER SLOTS "
                "will name %s; set client_address in its initial_cluster entry",
                host,
                host,
            )
        else:
            host = peer_host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere
