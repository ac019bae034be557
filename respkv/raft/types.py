"""Values that cross the boundary of the Raft core.

Everything here is an immutable value: ids, log entries, membership, messages and the Ready
batch the host drains. The host (server runtime, simulator) never reaches into the core's
private state; it feeds these in (``step``) and takes these out (``ready``).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NewType

NodeId = NewType("NodeId", int)
Term = NewType("Term", int)
Index = NewType("Index", int)

#: Node ids start at 1; 0 means "nobody" (no vote cast, no leader known).
NO_NODE = NodeId(0)


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryType(enum.IntEnum):
    NORMAL = 0  # opaque command for the state machine; empty data is the leader's no-op
    CONF_CHANGE = 1  # data is an encoded ConfChange


@dataclass(frozen=True, slots=True)
class Entry:
    term: Term
    index: Index
    type: EntryType
    data: bytes

    def size_bytes(self) -> int:
        """What the entry costs on the wire and on disk, for byte-bounded batches."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves the node."""

    term: Term
    vote: NodeId
    commit: Index


@dataclass(frozen=True, slots=True)
class Member:
    id: NodeId
    learner: bool
    # Opaque to the core: the host keeps addresses and its promotion policy here, so that every
    # node learns them from the log itself.
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership: sorted by id, each node at most once."""

    members: tuple[Member, ...]
    # Derived once: quorum checks ask for them on every read and commit.
    voters: frozenset[NodeId] = field(init=False, compare=False, repr=False)
    learners: frozenset[NodeId] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "voters", frozenset(m.id for m in self.members if not m.learner))
        object.__setattr__(self, "learners", frozenset(m.id for m in self.members if m.learner))

    def member(self, node_id: NodeId) -> Member | None:
        for m in self.members:
            if m.id == node_id:
                return m
        return None


class ConfChangeType(enum.IntEnum):
    ADD_LEARNER = 1  # a new node that receives the log but does not vote
    PROMOTE = 2  # learner -> voter
    REMOVE = 3  # voter or learner leaves
    UPDATE = 4  # replace a member's context (address, promotion policy)
    ADD_VOTER = 5  # a voter at once: only in the bootstrap entries of a static cluster


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: NodeId
    context: bytes = b""

    _HEADER = struct.Struct(">BQ")

    def encode(self) -> bytes:
        return self._HEADER.pack(self.type, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node_id = cls._HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), NodeId(node_id), bytes(data[cls._HEADER.size :]))


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Identifies a snapshot: the state after applying every entry up to ``index``."""

    index: Index
    term: Term
    conf_state: ConfState


# --- messages -------------------------------------------------------------------------------
# Every message carries the sender's term, its id and the recipient's id.


@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: Term
    sender: NodeId
    to: NodeId
    prev_index: Index
    prev_term: Term
    entries: tuple[Entry, ...]
    commit: Index


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    term: Term
    sender: NodeId
    to: NodeId
    # On success: the last index the follower now matches. On reject: the prev_index rejected.
    index: Index
    reject: bool = False
    # On reject, the follower's hint for fast backtracking: the largest index <= the rejected
    # one whose term is <= the rejected prev_term (hint_term is that entry's term).
    hint_index: Index = Index(0)
    hint_term: Term = Term(0)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    term: Term
    sender: NodeId
    to: NodeId
    commit: Index
    # Non-empty while a ReadIndex round is in flight: echoed back to confirm leadership.
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    term: Term
    sender: NodeId
    to: NodeId
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class RequestVote:
    term: Term  # for a pre-vote: the term the sender would campaign in, not its own
    sender: NodeId
    to: NodeId
    last_index: Index
    last_term: Term
    pre_vote: bool = False
    leadership_transfer: bool = False  # lets the vote through a recent leader's lease


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: Term
    sender: NodeId
    to: NodeId
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    term: Term
    sender: NodeId
    to: NodeId
    meta: SnapshotMeta
    offset: int  # byte offset of data within the whole snapshot
    data: bytes
    checksum: int  # zlib.crc32 of data
    done: bool  # the last chunk


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    term: Term
    sender: NodeId
    to: NodeId
    snapshot_index: Index
    # The next byte offset the follower expects (everything before it is durable there).
    # After the last chunk it equals the snapshot size and ``done`` is set.
    offset: int
    reject: bool = False
    done: bool = False


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: campaign now, ignoring the election timer and leases."""

    term: Term
    sender: NodeId
    to: NodeId


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks the leader for a read index on behalf of its clients."""

    term: Term
    sender: NodeId
    to: NodeId
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    term: Term
    sender: NodeId
    to: NodeId
    context: bytes
    index: Index
    reject: bool = False  # the leader could not serve it (stepping down, not yet committed)


Message = (
    AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | RequestVote
    | RequestVoteResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)


# --- output ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read with ``context`` is linearizable once the state machine has applied ``index``.

    ``index == 0`` with ``rejected`` set means the read could not be served (leadership lost,
    no leader known): the host fails it with a retry-safe error.
    """

    index: Index
    context: bytes
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the host reports; emitted in a Ready whenever it changes."""

    leader: NodeId
    role: Role
    term: Term


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """A received snapshot chunk, to be made durable before the acknowledgement leaves.

    Offset 0 starts a new snapshot: the host discards any partial one it holds.
    """

    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(slots=True)
class Ready:
    """Everything the host must do, in this order:

    1. send ``messages`` (may go before persisting: the leader's appends in parallel, Raft
       thesis 10.2.1);
    2. persist ``hard_state`` (if set) and ``snapshot_chunks``;
    3. if ``snapshot`` is set, install the fully received snapshot (the state machine becomes
       the snapshot, the stored log is discarded) - before step 4, because ``entries`` may
       hold entries that follow the snapshot;
    4. persist ``entries`` (they overwrite the stored log from ``entries[0].index`` on); steps
       2-4 must all be durable before step 5;
    5. send ``messages_after_persist``;
    6. apply ``committed_entries`` in order (they may include entries of this same Ready, so
       apply only after step 4), and serve ``read_states`` once applied >= their index;
    7. call ``advance(ready)``.
    """

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot_chunks: list[SnapshotChunk] = field(default_factory=list)
    snapshot: SnapshotMeta | None = None
    messages: list[Message] = field(default_factory=list)
    messages_after_persist: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    soft_state: SoftState | None = None
    # The membership in force (it takes effect when its entry is appended), when it changed.
    conf_state: ConfState | None = None


# --- errors ---------------------------------------------------------------------------------


class RaftError(Exception):
    """The caller asked for something the core cannot do right now."""


class NotLeader(RaftError):
    def __init__(self, leader: NodeId) -> None:
        super().__init__(f"not the leader (leader is {leader or 'unknown'})")
        self.leader = leader


class ProposalDropped(RaftError):
    """The proposal was not appended: leadership transfer in progress, or a conf change is
    already pending. Safe to retry."""
