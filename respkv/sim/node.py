"""A simulated host around the real Raft core: disk, state machine, snapshots.

The disk keeps what was synced; a Ready's writes become durable only when the simulated fsync
completes, so a crash before that loses them (the unsynced tail). The state machine is a small
key-value map of integers whose snapshot is its serialized form at the applied index.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from respkv.raft.confchange import apply_conf_change
from respkv.raft.node import PersistedState, RaftConfig, RaftNode
from respkv.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Index,
    Member,
    NodeId,
    Ready,
    SnapshotMeta,
    Term,
)


@dataclass
class Disk:
    """What survives a crash."""

    hard_state: HardState
    snapshot: SnapshotMeta
    snapshot_data: bytes
    entries: list[Entry]  # after snapshot.index
    # Received snapshot chunks (the partial transfer on disk).
    incoming: bytearray = field(default_factory=bytearray)

    @classmethod
    def from_state(cls, state: PersistedState) -> Disk:
        return cls(state.hard_state, state.snapshot, encode_state({}), list(state.entries))

    def write_entries(self, entries: list[Entry]) -> None:
        first = entries[0].index
        keep = first - self.snapshot.index - 1
        if keep < 0:  # entries older than our snapshot: skip what it covers
            entries = [e for e in entries if e.index > self.snapshot.index]
            keep = 0
            if not entries:
                return
        del self.entries[keep:]
        self.entries.extend(entries)

    def load(self) -> PersistedState:
        return PersistedState(
            self.hard_state, self.snapshot, list(self.entries), Index(self.snapshot.index)
        )


def encode_state(data: dict[str, int]) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


def decode_state(blob: bytes) -> dict[str, int]:
    result: dict[str, int] = json.loads(blob)
    return result


@dataclass(frozen=True, slots=True)
class Command:
    """A client write in the simulated state machine: SET key value | INCR key."""

    op: str
    key: str
    value: int
    client_op: int  # the history id, so replies can be matched

    def encode(self) -> bytes:
        return json.dumps([self.op, self.key, self.value, self.client_op]).encode()

    @classmethod
    def decode(cls, data: bytes) -> Command:
        op, key, value, client_op = json.loads(data)
        return cls(op, key, value, client_op)


class SimNode:
    """One node: the real RaftNode plus a host that persists with delay and applies."""

    def __init__(
        self,
        config: RaftConfig,
        disk: Disk,
        rng: random.Random,
        snapshot_chunk_bytes: int,
        raft_class: type[RaftNode] = RaftNode,
    ) -> None:
        self.id = config.node_id
        self.disk = disk
        self.alive = True
        self.chunk_bytes = snapshot_chunk_bytes
        # Volatile state, rebuilt on restart.
        self.data = decode_state(disk.snapshot_data)
        self.applied = disk.snapshot.index
        self.applied_term = disk.snapshot.term
        self.applied_conf: ConfState = disk.snapshot.conf_state
        self.raft = raft_class(config, disk.load(), rng, self)
        self.persisting: Ready | None = None  # a Ready whose writes are being synced
        # Outputs collected by the cluster.
        self.applied_log: list[tuple[Index, Term, bytes]] = []
        self.applied_terms: dict[Index, Term] = {}  # index -> term of each entry applied here
        self.results: dict[int, int | None] = {}  # client_op -> result of applying it

    # --- SnapshotSource --------------------------------------------------------------------

    def snapshot_meta(self) -> SnapshotMeta | None:
        return self.disk.snapshot if self.disk.snapshot.index > 0 else None

    def read_chunk(
        self, meta: SnapshotMeta, offset: int, max_bytes: int
    ) -> tuple[bytes, bool] | None:
        if meta != self.disk.snapshot:
            return None
        data = self.disk.snapshot_data[offset : offset + max_bytes]
        return data, offset + len(data) >= len(self.disk.snapshot_data)

    # --- the Ready loop --------------------------------------------------------------------

    def take_ready(self) -> Ready | None:
        """Start handling a Ready if the core has one and we are not mid-write."""
        if not self.alive or self.persisting is not None or not self.raft.has_ready():
            return None
        self.persisting = self.raft.ready()
        return self.persisting

    def finish_persist(self) -> Ready:
        """The synced write of the current Ready completed: make it durable and apply."""
        rd = self.persisting
        assert rd is not None
        disk = self.disk
        if rd.hard_state is not None:
            disk.hard_state = rd.hard_state
        for chunk in rd.snapshot_chunks:
            if chunk.offset == 0:
                disk.incoming = bytearray()
            assert len(disk.incoming) == chunk.offset, "chunk gap reached the host"
            disk.incoming += chunk.data
        if rd.snapshot is not None:
            self._install(rd.snapshot)
        if rd.entries:
            disk.write_entries(rd.entries)
        for entry in rd.committed_entries:
            self._apply(entry)
        return rd

    def _install(self, meta: SnapshotMeta) -> None:
        disk = self.disk
        disk.snapshot, disk.snapshot_data = meta, bytes(disk.incoming)
        disk.incoming = bytearray()
        disk.entries = []
        self.data = decode_state(disk.snapshot_data)
        self.applied, self.applied_term = meta.index, meta.term
        self.applied_conf = meta.conf_state

    def _apply(self, entry: Entry) -> None:
        if entry.index <= self.applied:
            return  # covered by a snapshot installed in the meantime
        assert entry.index == self.applied + 1, f"apply gap: {self.applied} -> {entry.index}"
        self.applied, self.applied_term = entry.index, entry.term
        self.applied_log.append((entry.index, entry.term, entry.data))
        self.applied_terms[entry.index] = entry.term
        if entry.type is EntryType.CONF_CHANGE:
            self.applied_conf = apply_conf_change(self.applied_conf, ConfChange.decode(entry.data))
        elif b"=" in entry.data and not entry.data.startswith(b"["):  # scenario "key=number"
            key, _, value = entry.data.decode().partition("=")
            self.data[key] = int(value)
        elif entry.data.startswith(b"["):  # a simulated client's command
            cmd = Command.decode(entry.data)
            if cmd.op == "set":
                self.data[cmd.key] = cmd.value
                self.results[cmd.client_op] = None
            else:
                self.data[cmd.key] = self.data.get(cmd.key, 0) + 1
                self.results[cmd.client_op] = self.data[cmd.key]

    def maybe_snapshot(self, threshold: int, tail: int) -> None:
        """Snapshot the state and compact the log once enough entries were applied."""
        if self.applied - self.disk.snapshot.index < threshold:
            return
        meta = SnapshotMeta(self.applied, self.applied_term, self.applied_conf)
        self.disk.snapshot, self.disk.snapshot_data = meta, encode_state(self.data)
        compact_to = Index(self.applied - tail)
        if compact_to > self.raft.log.snapshot_index:
            self.raft.compact(compact_to)
        # The disk keeps entries after the snapshot (the core keeps its tail in memory).
        keep_from = meta.index + 1
        self.disk.entries = [e for e in self.disk.entries if e.index >= keep_from]


def members(ids: list[int], learners: tuple[int, ...] = ()) -> list[Member]:
    return [Member(NodeId(i), i in learners, f"node{i}".encode()) for i in ids]
