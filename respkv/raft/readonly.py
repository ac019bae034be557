"""ReadIndex bookkeeping (Raft thesis 6.4): batching reads into heartbeat rounds.

Reads queue up until the leader starts a round: one heartbeat broadcast whose context names the
round. When a quorum of voters has echoed a round's context, the leader knows it was still the
leader when the round started, so every read of that round (and of all earlier rounds) may be
served once the state machine has applied the round's index.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .quorum import has_quorum
from .types import Index, NodeId


@dataclass(frozen=True, slots=True)
class ReadRequest:
    context: bytes
    requester: NodeId  # the node whose client asked (the leader itself, or a follower)


@dataclass(slots=True)
class ReadRound:
    context: bytes
    index: Index
    requests: list[ReadRequest]
    acks: set[NodeId] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.queued: list[ReadRequest] = []
        self.rounds: deque[ReadRound] = deque()
        # Never reset: a late echo from an older round can then never confirm a newer one.
        self._next_round = 1

    def queue(self, request: ReadRequest) -> None:
        self.queued.append(request)

    def start_round(self, index: Index, leader: NodeId) -> ReadRound | None:
        if not self.queued:
            return None
        context = b"r" + self._next_round.to_bytes(8, "big")
        self._next_round += 1
        round_ = ReadRound(context, index, self.queued, {leader})
        self.queued = []
        self.rounds.append(round_)
        return round_

    def last_context(self) -> bytes:
        """The newest round's context, carried by every heartbeat while rounds are pending."""
        return self.rounds[-1].context if self.rounds else b""

    def ack(self, context: bytes, voter: NodeId, voters: frozenset[NodeId]) -> list[ReadRound]:
        """Record ``voter``'s echo; return the rounds it confirms (oldest first)."""
        position = next((i for i, r in enumerate(self.rounds) if r.context == context), None)
        if position is None:
            return []
        round_ = self.rounds[position]
        # An echo of a round also vouches for the earlier ones: heartbeats of a term are
        # answered in order by a follower that still follows this leader.
        for earlier in list(self.rounds)[: position + 1]:
            earlier.acks.add(voter)
        if not has_quorum(voters, round_.acks):
            return []
        return [self.rounds.popleft() for _ in range(position + 1)]

    def take_all(self) -> list[ReadRequest]:
        """Every pending request (leadership lost: the host fails them)."""
        pending = [r for round_ in self.rounds for r in round_.requests] + self.queued
        self.rounds.clear()
        self.queued = []
        return pending

    def __len__(self) -> int:
        return len(self.queued) + sum(len(r.requests) for r in self.rounds)
