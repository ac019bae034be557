"""The bounded, prioritised send queue of one outbound peer connection. Pure (no IO).

Three lanes, drained in this order on every flush:

1. control - small Raft messages whose relative order with appends does not matter
   (heartbeats, votes, responses, ReadIndex, TimeoutNow). Bounded by count; when full the oldest
   is dropped (Raft retries all of them on its own: the next heartbeat, the next election).
2. forward - client commands forwarded to this peer. They have a caller waiting, so they are
   never dropped silently: when the lane is full a new one is refused at once, and one whose
   caller gave up before it was written is skipped.
3. bulk - AppendEntries and InstallSnapshot chunks, in order. Bounded by count and bytes; when
   full the oldest are dropped (the follower rejects the gap and the leader backs off and
   resends). A flush writes bulk frames only up to a byte budget, so control frames that arrive
   meanwhile overtake the rest of the bulk backlog: a heartbeat is never queued behind megabytes
   of appends.

Every frame is encoded when queued, so the byte bounds are exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueLimits:
    max_control_messages: int = 4096
    max_bulk_messages: int = 8192
    max_bulk_bytes: int = 64 << 20
    max_forward_requests: int = 10_000
    max_forward_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if (
            min(
                self.max_control_messages,
                self.max_bulk_messages,
                self.max_bulk_bytes,
                self.max_forward_requests,
                self.max_forward_bytes,
            )
            < 1
        ):
            raise ValueError("peer send queue limits must be positive")


class SendQueue:
    __slots__ = (
        "_bulk",
        "_control",
        "_forward",
        "bulk_bytes",
        "dropped_messages",
        "forward_bytes",
        "limits",
    )

    def __init__(self, limits: QueueLimits) -> None:
        self.limits = limits
        self._control: deque[bytes] = deque()
        self._bulk: deque[bytes] = deque()
        self._forward: deque[tuple[int, bytes]] = deque()
        self.bulk_bytes = 0
        self.forward_bytes = 0
        self.dropped_messages = 0  # Raft messages dropped because a lane was full (cumulative)

    def __len__(self) -> int:
        return len(self._control) + len(self._bulk) + len(self._forward)

    @property
    def queued_bytes(self) -> int:
        return sum(map(len, self._control)) + self.bulk_bytes + self.forward_bytes

    def push_control(self, frame: bytes) -> None:
        control = self._control
        if len(control) >= self.limits.max_control_messages:
            control.popleft()
            self.dropped_messages += 1
        control.append(frame)

    def push_bulk(self, frame: bytes) -> None:
        bulk = self._bulk
        limits = self.limits
        size = len(frame)
        # Drop the oldest until the new frame fits (an oversized frame alone is still kept).
        while bulk and (
            len(bulk) >= limits.max_bulk_messages or self.bulk_bytes + size > limits.max_bulk_bytes
        ):
            self.bulk_bytes -= len(bulk.popleft())
            self.dropped_messages += 1
        bulk.append(frame)
        self.bulk_bytes += size

    def push_forward(self, request_id: int, frame: bytes) -> bool:
        """Queue a forwarded request; False (nothing queued) when the lane is full."""
        limits = self.limits
        if self._forward and (
            len(self._forward) >= limits.max_forward_requests
            or self.forward_bytes + len(frame) > limits.max_forward_bytes
        ):
            return False
        self._forward.append((request_id, frame))
        self.forward_bytes += len(frame)
        return True

    def pop_batch(
        self, bulk_budget_bytes: int, forward_wanted: Callable[[int], bool]
    ) -> tuple[list[bytes], list[int]]:
        """Frames to write now, in order, and the ids of the forwarded requests among them.

        All control frames, all forwarded requests whose caller still waits, then bulk frames
        while the budget lasts (at least one if the budget is positive)."""
        batch = list(self._control)
        self._control.clear()
        written: list[int] = []
        if self._forward:
            for request_id, frame in self._forward:
                if forward_wanted(request_id):
                    batch.append(frame)
                    written.append(request_id)
            self._forward.clear()
            self.forward_bytes = 0
        bulk = self._bulk
        while bulk and bulk_budget_bytes > 0:
            frame = bulk.popleft()
            batch.append(frame)
            bulk_budget_bytes -= len(frame)
            self.bulk_bytes -= len(frame)
        return batch, written

    def take_forward_ids(self) -> list[int]:
        """Remove every queued forwarded request (the peer went away for good)."""
        ids = [request_id for request_id, _ in self._forward]
        self._forward.clear()
        self.forward_bytes = 0
        return ids

    def clear(self) -> None:
        self._control.clear()
        self._bulk.clear()
        self._forward.clear()
        self.bulk_bytes = 0
        self.forward_bytes = 0
