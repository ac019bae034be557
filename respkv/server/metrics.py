"""Observability: per-command statistics, SLOWLOG, the latency monitor, Prometheus metrics.

Theory of operation
-------------------
The event loop only ever touches plain integers: ``command_done`` (one call per command, at
reply time) bumps a call count, a nanosecond sum and one histogram bucket of the command's
``CommandStat``, and checks the two thresholds (SLOWLOG, latency monitor) with integer
comparisons. Nothing calls prometheus-client on the hot path.

``RespkvCollector`` reads those counters, the Raft state, the writer's fsync histogram and the
snapshot counters when Prometheus scrapes, on the HTTP server's thread
(``prometheus_client.start_http_server``). The reads are of ints and of lists and dicts copied
in one C call under the GIL, so a scrape may see one counter a command ahead of another, never
a torn value.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from respkv import __version__
from respkv.raft.types import Role
from respkv.storage.writer import LatencyHistogram

if TYPE_CHECKING:
    from respkv.kv.commands import CommandSpec

    from .app import Server
    from .connection import ClientConnection

log = logging.getLogger(__name__)

SLOWLOG_MAX_ARGC = 32  # as Redis: SLOWLOG_ENTRY_MAX_ARGC
SLOWLOG_MAX_STRING = 128  # as Redis: SLOWLOG_ENTRY_MAX_STRING
LATENCY_HISTORY_LEN = 160  # as Redis: LATENCY_TS_LEN
_REDACTED = b"(redacted)"
_NEVER_NS = 2**63  # a threshold no command reaches


class CommandStat:
    __slots__ = ("histogram",)

    def __init__(self) -> None:
        self.histogram = LatencyHistogram()


@dataclass(slots=True)
class LatencyEvent:
    """One latency-monitor event: per-second samples (the max of each second), as Redis."""

    samples: deque[tuple[int, int]] = field(
        default_factory=lambda: deque(maxlen=LATENCY_HISTORY_LEN)
    )  # (unix seconds, ms)
    max_ms: int = 0


class Observer:
    """What the server counts about commands, kept cheap; see the module docstring."""

    def __init__(self) -> None:
        self.commands: dict[bytes, CommandStat] = {}
        self._histograms: dict[bytes, LatencyHistogram] = {}  # the same, one lookup closer
        # SLOWLOG: Redis's defaults (10000 µs, 128 entries); a negative threshold disables it.
        self.slowlog_threshold_us = 10_000
        self.slowlog_max_len = 128
        self.slowlog: deque[list[Any]] = deque(maxlen=self.slowlog_max_len)
        self.slowlog_next_id = 0
        self._slowlog_threshold_ns = self.slowlog_threshold_us * 1000
        # Latency monitor: off (0 ms) by default, as in Redis.
        self.latency_threshold_ms = 0
        self._latency_threshold_ns = 0
        self.latency_events: dict[str, LatencyEvent] = {}
        # The lower of the two thresholds in force: below it, a command only feeds its histogram.
        self._notable_ns = _NEVER_NS
        self._update_notable()

    # --- configuration (CONFIG SET) ----------------------------------------------------------

    def set_slowlog_threshold(self, microseconds: int) -> None:
        self.slowlog_threshold_us = microseconds
        self._slowlog_threshold_ns = microseconds * 1000 if microseconds >= 0 else -1
        self._update_notable()

    def set_slowlog_max_len(self, entries: int) -> None:
        self.slowlog_max_len = entries
        self.slowlog = deque(self.slowlog, maxlen=entries)

    def set_latency_threshold(self, milliseconds: int) -> None:
        self.latency_threshold_ms = milliseconds
        self._latency_threshold_ns = milliseconds * 1_000_000
        self._update_notable()

    def _update_notable(self) -> None:
        slowlog, latency = self._slowlog_threshold_ns, self._latency_threshold_ns
        enabled = [t for t in (slowlog,) if t >= 0] + [t for t in (latency,) if t > 0]
        self._notable_ns = min(enabled, default=_NEVER_NS)

    def latency_threshold_ns(self) -> int:
        """The threshold (0: off); other threads may call it."""
        return self._latency_threshold_ns

    def slow_fsync(self, milliseconds: int) -> None:
        """A Raft log fsync over the threshold (Redis's event for appendfsync always)."""
        self.latency_sample("aof-fsync-always", milliseconds)

    # --- the hot path ------------------------------------------------------------------------

    def command_done(
        self,
        conn: ClientConnection,
        argv: list[bytes],
        spec: CommandSpec,
        started_ns: int,
        deferred: bool = False,
    ) -> None:
        """After dispatch: the time the command held the event loop goes to SLOWLOG and the
        latency monitor (Redis's "execution time"); unless its reply comes later
        (``deferred``), also to the command's histogram."""
        # Every command comes here: exact counts and times, kept to one clock read, one dict
        # lookup and one comparison unless the command is slow enough for SLOWLOG or the
        # latency monitor.
        elapsed = perf_counter_ns() - started_ns
        if not deferred:  # reply_sent, inlined
            histogram = self._histograms.get(spec.name_bytes)
            if histogram is None:
                histogram = self._new_stat(spec.name_bytes)
            histogram.observe_ns(elapsed)
        if elapsed >= self._notable_ns:
            self._notable(conn, argv, spec, elapsed)

    def _notable(
        self, conn: ClientConnection, argv: list[bytes], spec: CommandSpec, elapsed: int
    ) -> None:
        threshold = self._slowlog_threshold_ns
        if 0 <= threshold <= elapsed and "skip_slowlog" not in spec.flags:
            self._slowlog_add(conn, argv, elapsed // 1000)
        if self._latency_threshold_ns and elapsed >= self._latency_threshold_ns:
            event = "fast-command" if "fast" in spec.flags else "command"
            self.latency_sample(event, elapsed // 1_000_000)

    def reply_sent(self, spec: CommandSpec, elapsed_ns: int) -> None:
        """The command's time from receipt to reply (writes: replicated and applied)."""
        histogram = self._histograms.get(spec.name_bytes)
        if histogram is None:
            histogram = self._new_stat(spec.name_bytes)
        histogram.observe_ns(elapsed_ns)

    def _new_stat(self, name: bytes) -> LatencyHistogram:
        stat = self.commands[name] = CommandStat()
        self._histograms[name] = stat.histogram
        return stat.histogram

    # --- SLOWLOG -----------------------------------------------------------------------------

    def _slowlog_add(self, conn: ClientConnection, argv: list[bytes], duration_us: int) -> None:
        if self.slowlog_max_len <= 0:
            return
        self.slowlog.appendleft(
            [
                self.slowlog_next_id,
                int(time.time()),
                duration_us,
                slowlog_argv(argv),
                conn.addr.encode(),
                conn.name,
            ]
        )
        self.slowlog_next_id += 1

    # --- latency monitor ---------------------------------------------------------------------

    def latency_sample(self, event: str, milliseconds: int) -> None:
        now = int(time.time())
        record = self.latency_events.get(event)
        if record is None:
            record = self.latency_events[event] = LatencyEvent()
        samples = record.samples
        if samples and samples[-1][0] == now:
            samples[-1] = (now, max(samples[-1][1], milliseconds))
        else:
            samples.append((now, milliseconds))
        record.max_ms = max(record.max_ms, milliseconds)


def slowlog_argv(argv: list[bytes]) -> list[bytes]:
    """The arguments as Redis keeps them in a slowlog entry: at most 32 (the last one then
    says how many more there were), each cut at 128 bytes; passwords redacted."""
    name = argv[0].lower() if argv else b""
    redact_from = len(argv)
    if name == b"auth":
        redact_from = 1
    elif name == b"hello":
        lowered = [a.lower() for a in argv]
        if b"auth" in lowered:
            redact_from = lowered.index(b"auth") + 1
    argc = len(argv)
    kept = min(argc, SLOWLOG_MAX_ARGC)
    out: list[bytes] = []
    for j in range(kept):
        if kept != argc and j == kept - 1:
            out.append(b"... (%d more arguments)" % (argc - kept + 1))
        elif redact_from <= j < (redact_from + 2 if name == b"hello" else argc):
            out.append(_REDACTED)
        elif len(argv[j]) > SLOWLOG_MAX_STRING:
            extra = len(argv[j]) - SLOWLOG_MAX_STRING
            out.append(argv[j][:SLOWLOG_MAX_STRING] + b"... (%d more bytes)" % extra)
        else:
            out.append(argv[j])
    return out


# --- Prometheus --------------------------------------------------------------------------------


def _histogram(name: str, doc: str, labels: list[str]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: Any, labels: list[str], histogram: LatencyHistogram) -> None:
    buckets = histogram.cumulative()
    family.add_metric(labels, [(b, float(c)) for b, c in buckets], histogram.sum_ns / 1e9)


class RespkvCollector:
    """Everything respkv exports, built from the server's counters at scrape time."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def describe(self) -> list[Any]:
        return []  # unchecked collector: nothing is collected at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            InfoMetricFamily,
        )

        server = self.server
        node = str(server.config.cluster.node_id)
        yield InfoMetricFamily(
            "respkv_node", "This node", value={"node_id": node, "version": __version__}
        )
        stats = server.stats
        gauge = GaugeMetricFamily
        counter = CounterMetricFamily
        yield gauge(
            "respkv_connected_clients", "Client connections open", value=len(server.clients)
        )
        yield counter(
            "respkv_connections_received",
            "Client connections accepted",
            value=stats.connections_received,
        )
        yield counter(
            "respkv_rejected_connections",
            "Connections refused (maxclients)",
            value=stats.rejected_connections,
        )
        yield counter("respkv_net_input_bytes", "Bytes received from clients", value=stats.bytes_in)
        yield counter("respkv_net_output_bytes", "Bytes sent to clients", value=stats.bytes_out)
        yield counter(
            "respkv_forwarded_requests",
            "Client writes this follower forwarded to the leader",
            value=stats.forwarded_writes,
        )
        cluster = server.cluster
        yield counter(
            "respkv_forwarded_requests_served",
            "Writes other nodes forwarded to this one (as leader)",
            value=cluster.forwards_served if cluster is not None else 0,
        )
        yield counter("respkv_expired_keys", "Expired keys deleted", value=stats.expired_keys)
        observer = server.observer
        yield gauge("respkv_slowlog_length", "Entries in SLOWLOG", value=len(observer.slowlog))

        calls = counter("respkv_commands", "Commands run, by command", labels=["cmd"])
        durations = _histogram(
            "respkv_command_duration_seconds",
            "Time from receiving a command to its reply (writes: until committed and applied)",
            ["cmd"],
        )
        for name, stat in sorted(list(observer.commands.items())):
            label = name.decode(errors="replace")
            calls.add_metric([label], stat.histogram.total)
            _add_histogram(durations, [label], stat.histogram)
        yield calls
        yield durations

        runtime = server.runtime
        if runtime is None:
            return
        raft = runtime.raft
        raft_log = raft.log
        role = gauge("respkv_raft_role", "1 for this node's current role", labels=["role"])
        for candidate in Role:
            role.add_metric([candidate.value], 1.0 if runtime.role is candidate else 0.0)
        yield role
        yield gauge("respkv_raft_is_leader", "1 on the leader", value=int(runtime.is_leader))
        yield gauge("respkv_raft_term", "Current Raft term", value=runtime.term)
        yield gauge("respkv_raft_leader_id", "The leader's node id (0: none)", value=runtime.leader)
        yield gauge("respkv_raft_commit_index", "Commit index", value=raft_log.committed)
        yield gauge("respkv_raft_applied_index", "Applied index", value=raft_log.applied)
        first = raft_log.snapshot_index + 1
        last = raft_log.last_index
        yield gauge("respkv_raft_log_first_index", "First entry kept in the log", value=first)
        yield gauge("respkv_raft_log_last_index", "Last entry in the log", value=last)
        yield gauge(
            "respkv_raft_log_entries",
            "Log entries held (in memory)",
            value=max(0, last - first + 1),
        )
        yield counter(
            "respkv_raft_leader_changes",
            "Leaders this node has seen elected",
            value=runtime.leader_changes,
        )
        conf = runtime.conf_state
        yield gauge("respkv_raft_voters", "Voters in the membership", value=len(conf.voters))
        yield gauge("respkv_raft_learners", "Learners in the membership", value=len(conf.learners))
        yield gauge(
            "respkv_raft_pending_proposals",
            "Proposals waiting to be applied",
            value=runtime.pending_proposals,
        )
        if runtime.is_leader:
            match = gauge(
                "respkv_raft_follower_match_index",
                "Leader only: the last entry known replicated to each member",
                labels=["member"],
            )
            for member in raft.status().members:
                if member.id != runtime.id:
                    match.add_metric([str(member.id)], member.match)
            yield match
        snap = runtime.snapshot_stats
        transfers = counter(
            "respkv_snapshot_transfers",
            "Snapshot transfers completed",
            labels=["direction"],
        )
        transfers.add_metric(["sent"], snap.sent)
        transfers.add_metric(["received"], snap.received)
        yield transfers
        sizes = counter("respkv_snapshot_bytes", "Snapshot bytes streamed", labels=["direction"])
        sizes.add_metric(["sent"], snap.bytes_sent)
        sizes.add_metric(["received"], snap.bytes_received)
        yield sizes
        took = _histogram(
            "respkv_snapshot_transfer_duration_seconds",
            "Snapshot transfers, first chunk to last (received: including the install)",
            ["direction"],
        )
        _add_histogram(took, ["sent"], snap.send_duration)
        _add_histogram(took, ["received"], snap.receive_duration)
        yield took
        writer = runtime.writer
        fsync = _histogram(
            "respkv_fsync_duration_seconds", "Raft log fsyncs (one per write group)", []
        )
        _add_histogram(fsync, [], writer.fsync_histogram)
        yield fsync
        writer_stats = writer.stats
        yield counter(
            "respkv_storage_write_groups",
            "Synced write rounds of the writer thread",
            value=writer_stats.groups,
        )
        yield counter(
            "respkv_storage_write_jobs",
            "Batches written by the writer thread",
            value=writer_stats.jobs,
        )


class MetricsEndpoint:
    """The HTTP endpoint (prometheus_client's server thread), started and stopped with the
    node."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = 0
        self._http: Any = None
        self._thread: Any = None

    def start(self) -> None:
        config = self.server.config
        if not config.metrics.port:
            return
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.process_collector import ProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=registry)
        registry.register(RespkvCollector(self.server))
        address = config.metrics.bind or config.server.bind
        self._http, self._thread = start_http_server(
            config.metrics.port, addr=address, registry=registry
        )
        self.port = self._http.server_address[1]
        log.info("metrics on http://%s:%d/metrics", address, self.port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
