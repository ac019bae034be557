"""What the leader knows about each follower's log (etcd-io/raft's tracker, simplified).

A follower is in one of three states:
  PROBE      the leader does not know where the logs match; one append in flight at a time.
  REPLICATE  logs match up to ``match``; appends are pipelined, bounded by an inflight window
             of count and bytes.
  SNAPSHOT   the follower needs entries the leader compacted; chunks of a snapshot are
             streamed, with a window of chunks in flight.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from .types import Index, SnapshotMeta


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The appends in flight to one follower: (last index, bytes) in send order."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._window: deque[tuple[Index, int]] = deque()
        self.bytes = 0

    def add(self, last_index: Index, size: int) -> None:
        self._window.append((last_index, size))
        self.bytes += size

    def free_le(self, index: Index) -> None:
        window = self._window
        while window and window[0][0] <= index:
            self.bytes -= window.popleft()[1]

    def free_first(self) -> None:
        if self._window:
            self.bytes -= self._window.popleft()[1]

    def reset(self) -> None:
        self._window.clear()
        self.bytes = 0

    def full(self) -> bool:
        return len(self._window) >= self.max_count or self.bytes >= self.max_bytes

    def __len__(self) -> int:
        return len(self._window)


@dataclass(slots=True)
class SnapshotTransfer:
    """A snapshot being streamed to one follower."""

    meta: SnapshotMeta
    acked_offset: int = 0  # durable on the follower
    sent_offset: int = 0  # next byte to send
    sent_all: bool = False
    idle_ticks: int = 0  # ticks without an acknowledgement, for resending


@dataclass(slots=True)
class Progress:
    match: Index
    next: Index
    inflights: Inflights
    learner: bool = False
    state: ProgressState = ProgressState.PROBE
    # PROBE: an append was sent and we wait for its answer (or the next heartbeat response).
    probe_sent: bool = False
    # Heard from since the last check-quorum round.
    recent_active: bool = True
    # Ticks since we last heard from it (reported in status, never used for safety).
    last_contact_ticks: int = 0
    snapshot: SnapshotTransfer | None = field(default=None)

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT and self.snapshot is not None:
            self.next = Index(max(self.match + 1, self.snapshot.meta.index + 1))
        else:
            self.next = Index(self.match + 1)
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.snapshot = None
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = Index(self.match + 1)
        self.probe_sent = False
        self.snapshot = None
        self.inflights.reset()

    def become_snapshot(self, meta: SnapshotMeta) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snapshot = SnapshotTransfer(meta)
        self.probe_sent = False
        self.inflights.reset()

    def is_paused(self) -> bool:
        match self.state:
            case ProgressState.PROBE:
                return self.probe_sent
            case ProgressState.REPLICATE:
                return self.inflights.full()
            case ProgressState.SNAPSHOT:
                return True

    def sent_entries(self, last_index: Index | None, size: int) -> None:
        """Record an append just sent (last_index None: it carried no entries)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next = Index(last_index + 1)
                self.inflights.add(last_index, size)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: Index) -> bool:
        """The follower matches up to ``index``; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = Index(max(self.next, index + 1))
        return updated

    def maybe_decrease_to(self, rejected: Index, hint: Index) -> bool:
        """The follower rejected an append at ``rejected``; False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = Index(self.match + 1)
            return True
        if self.next - 1 != rejected:
            return False
        self.next = Index(max(min(rejected, hint + 1), self.match + 1))
        self.probe_sent = False
        return True
