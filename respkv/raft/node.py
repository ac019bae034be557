"""The Raft consensus core: a pure state machine (after etcd-io/raft).

Theory of operation
-------------------
The host owns all IO. It feeds the core with ``tick()`` (logical time), ``step(message)``
(a message from a peer), ``propose(data)``, ``propose_conf_change(change)``,
``read_index(context)`` and ``transfer_leader(node)``, and drains what the core decided with
``ready()`` -> :class:`Ready`, which it carries out in the documented order before calling
``advance(ready)``. ``ready()`` is never called again before ``advance()``; ``step`` and the
other inputs may be called at any time in between (while the host persists).

Safety rules implemented here: randomized election timeouts, pre-vote and check-quorum (a
partitioned leader steps down; a node rejoining from a partition cannot disrupt a healthy
leader), commit only by counting replicas of an entry of the leader's own term (the leader
appends a no-op when elected), ReadIndex reads only after the leader has committed in its term,
single-step membership changes that take effect when appended with one pending at a time, and
the durability contract: term, vote, appended entries and received snapshot chunks are
persisted before any message that depends on them leaves (``messages_after_persist``); the
leader's own appends go out in parallel with its local write (``messages``).

Role behaviour is data: ``_step_role`` and ``_tick_role`` are swapped on role changes.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .confchange import InvalidConfChange, apply_conf_change, bootstrap_entries, validate
from .log import RaftLog
from .progress import Inflights, Progress, ProgressState
from .quorum import committed_index, has_quorum, quorum_value, vote_result
from .readonly import ReadOnly, ReadRequest
from .types import (
    NO_NODE,
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    Index,
    InstallSnapshot,
    InstallSnapshotResponse,
    Member,
    Message,
    NodeId,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    Ready,
    RequestVote,
    RequestVoteResponse,
    Role,
    SnapshotChunk,
    SnapshotMeta,
    SoftState,
    Term,
    TimeoutNow,
)

if TYPE_CHECKING:
    import random


class ReadMode(enum.Enum):
    SAFE = "safe"  # ReadIndex: one heartbeat round per batch of reads
    LEASE = "lease"  # trust check-quorum's lease; no round trip (clock-drift assumption)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    node_id: NodeId
    election_timeout_ticks: int = 10  # randomized in [this, 2 * this)
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    read_mode: ReadMode = ReadMode.SAFE
    max_message_bytes: int = 1 << 20  # entries per AppendEntries (at least one)
    max_inflight_messages: int = 256  # appends in flight per follower
    max_inflight_bytes: int = 32 << 20
    max_apply_bytes: int = 64 << 20  # committed entries per Ready
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_window_chunks: int = 4  # snapshot chunks in flight per follower

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise ValueError("node_id must be >= 1")
        if not 0 < self.heartbeat_ticks < self.election_timeout_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_timeout_ticks")
        if self.read_mode is ReadMode.LEASE and not self.check_quorum:
            raise ValueError("lease reads are only safe with check_quorum")
        if min(self.max_message_bytes, self.max_inflight_messages, self.snapshot_chunk_bytes) < 1:
            raise ValueError("message, inflight and chunk limits must be positive")


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What the host loaded from disk; a new node has an empty log and a snapshot at index 0
    that carries its initial membership."""

    hard_state: HardState
    snapshot: SnapshotMeta
    entries: list[Entry]
    applied: Index


class SnapshotSource(Protocol):
    """The host's snapshots, streamed to followers that need compacted entries."""

    def snapshot_meta(self) -> SnapshotMeta | None:
        """A snapshot that can be streamed now (the state at some applied index), or None if
        none is ready yet (the host may start preparing one; the core asks again later)."""
        ...

    def read_chunk(
        self, meta: SnapshotMeta, offset: int, max_bytes: int
    ) -> tuple[bytes, bool] | None:
        """Up to ``max_bytes`` from ``offset`` and whether they end the snapshot; None if that
        snapshot is no longer available (the transfer then starts over); ``(b"", False)`` for
        "not now" (the host's rate limit): the core asks again on the next tick."""
        ...


@dataclass(frozen=True, slots=True)
class MemberStatus:
    id: NodeId
    learner: bool
    match: Index
    next: Index
    state: str
    recent_active: bool
    last_contact_ticks: int


@dataclass(frozen=True, slots=True)
class Status:
    id: NodeId
    role: Role
    term: Term
    vote: NodeId
    leader: NodeId
    commit: Index
    applied: Index
    first_index: Index
    last_index: Index
    conf_state: ConfState
    lead_transferee: NodeId
    members: tuple[MemberStatus, ...]  # leader only: its view of each member


_LEASE_PREFIX = b"L"  # heartbeat context of a lease probe (read rounds use b"r")

# Messages that may only leave once the Ready's hard state, entries and chunks are durable.
_AFTER_PERSIST = (AppendEntriesResponse, RequestVote, RequestVoteResponse, InstallSnapshotResponse)
_FROM_LEADER = (AppendEntries, Heartbeat, InstallSnapshot)


class RaftNode:
    def __init__(
        self,
        config: RaftConfig,
        state: PersistedState,
        rng: random.Random,
        snapshots: SnapshotSource,
    ) -> None:
        self.config = config
        self.id = config.node_id
        self._rng = rng
        self._snapshots = snapshots
        hs = state.hard_state
        self.term: Term = hs.term
        self.vote: NodeId = hs.vote
        snap = state.snapshot
        self.log = RaftLog(snap.index, snap.term, list(state.entries), state.applied)
        self.log.commit_to(Index(min(max(hs.commit, self.log.committed), self.log.last_index)))
        self.leader: NodeId = NO_NODE
        self.role = Role.FOLLOWER
        self.progress: dict[NodeId, Progress] = {}
        # Membership: the snapshot's, then one record per conf-change entry in the log, so a
        # truncated conf entry can be undone.
        self._conf_base = snap.conf_state
        self._conf_records: list[tuple[Index, ConfState]] = []
        self._conf_changed = True  # the first Ready tells the host the membership
        self._rebuild_conf(Index(snap.index + 1))
        self.votes: dict[NodeId, bool] = {}
        self.election_elapsed = 0  # ticks since the last valid leader contact (or election)
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self.lead_transferee: NodeId = NO_NODE
        # Index of the last conf-change entry proposed by this leader; no new one until it
        # commits (one membership change at a time).
        self.pending_conf_index = Index(0)
        self.readonly = ReadOnly()
        # Lease (ReadMode.LEASE): the tick count, and per voter the newest tick of ours that it
        # echoed. A follower that heard from us refuses other candidates for an election
        # timeout, so a quorum echo of tick t protects our leadership until about
        # t + election_timeout.
        self._ticks = 0
        self._lease_acks: dict[NodeId, int] = {}
        # A restarted node does not know whether it recently promised loyalty to a leader, so
        # in lease mode it refuses votes for one election timeout after it starts.
        self._booting = config.read_mode is ReadMode.LEASE
        self._reads_before_commit: list[ReadRequest] = []  # until the no-op of our term commits
        self._incoming_snapshot: tuple[SnapshotMeta, int] | None = None  # meta, next offset
        # Accumulated for the next Ready.
        self._messages: list[Message] = []
        self._messages_after: list[Message] = []
        self._read_states: list[ReadState] = []
        self._chunks: list[SnapshotChunk] = []
        self._snapshot_to_install: SnapshotMeta | None = None
        self._bcast_pending = False  # new entries or commit news for followers
        self._commit_news = False
        self._applying = self.log.applied  # committed entries handed out, not yet advanced
        self._persisted_hard_state = HardState(self.term, self.vote, self.log.committed)
        self._reported_soft_state: SoftState | None = None
        self._step_role: Callable[[Message], None] = self._step_follower
        self._tick_role: Callable[[], None] = self._tick_election
        self._become_follower(self.term, NO_NODE)

    # --- public inputs ---------------------------------------------------------------------

    @property
    def conf(self) -> ConfState:
        return self._conf_records[-1][1] if self._conf_records else self._conf_base

    @property
    def promotable(self) -> bool:
        """A voter of the current membership: may campaign."""
        return self.id in self.conf.voters

    def tick(self) -> None:
        self._ticks += 1
        if self._booting and self._ticks >= self.config.election_timeout_ticks:
            self._booting = False
        self._tick_role()

    def campaign(self) -> None:
        """Start an election now (tests, and a single node at start-up)."""
        if self.promotable and self.role is not Role.LEADER:
            self._campaign(pre_vote=self.config.pre_vote)

    def step(self, m: Message) -> None:
        if m.term > self.term:
            if isinstance(m, RequestVote):
                in_lease = (
                    self.config.check_quorum
                    and (self.leader != NO_NODE or self._booting)
                    and self.election_elapsed < self.config.election_timeout_ticks
                )
                if in_lease and not m.leadership_transfer:
                    return  # we heard from a live leader recently: do not let it be deposed
                if not m.pre_vote:
                    self._become_follower(m.term, NO_NODE)
            elif isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted:
                pass  # granted pre-votes carry the term we would campaign in
            else:
                self._become_follower(m.term, m.sender if isinstance(m, _FROM_LEADER) else NO_NODE)
        elif m.term < self.term:
            if isinstance(m, (AppendEntries, Heartbeat)) and (
                self.config.check_quorum or self.config.pre_vote
            ):
                # A stale leader (e.g. back from a partition): tell it our term so it steps
                # down. Without this it could keep disrupting with pre-vote enabled.
                self._send(AppendEntriesResponse(self.term, self.id, m.sender, Index(0)))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._send(RequestVoteResponse(self.term, self.id, m.sender, False, True))
            return
        if isinstance(m, RequestVote):
            self._handle_vote_request(m)
        else:
            self._step_role(m)

    def propose(self, data: bytes) -> Index:
        """Append a command; it is committed at the returned index in the current term, or
        never (if that index later holds an entry of another term)."""
        self._check_can_propose()
        index = Index(self.log.last_index + 1)
        self.log.append([Entry(self.term, index, EntryType.NORMAL, data)])
        self._bcast_pending = True
        return index

    def propose_conf_change(self, change: ConfChange) -> Index:
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed or not self._committed_in_term():
            raise ProposalDropped("a membership change is already in progress")
        try:
            validate(self.conf, change)
        except InvalidConfChange as e:
            raise RaftError(str(e)) from e
        index = Index(self.log.last_index + 1)
        self.log.append([Entry(self.term, index, EntryType.CONF_CHANGE, change.encode())])
        self.pending_conf_index = index
        self._rebuild_conf(index)
        self._bcast_pending = True
        return index

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered by a ReadState with this context."""
        request = ReadRequest(context, self.id)
        if self.role is Role.LEADER:
            self._leader_read(request)
        elif self.leader == NO_NODE:
            self._read_states.append(ReadState(Index(0), context, rejected=True))
        else:
            self._send(ReadIndexRequest(self.term, self.id, self.leader, context))

    def transfer_leader(self, target: NodeId) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if target == self.id or target == self.lead_transferee:
            return
        if target not in self.conf.voters:
            raise RaftError(f"node {target} is not a voter")
        self.lead_transferee = target
        self.election_elapsed = 0  # the transfer is aborted after one election timeout
        if self.progress[target].match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, target))
        else:
            self._send_append(target)

    def read_index_now(self) -> Index | None:
        """The read index, when it can be decided without a round trip: this node leads, has
        committed in its term, and is the only voter or holds a lease (ReadMode.LEASE)."""
        # Asked before every linearizable read: kept to attribute reads, no helper calls.
        if self.role is not Role.LEADER:
            return None
        log = self.log
        committed = log.committed
        if log.term(committed) != self.term:  # _committed_in_term
            return None
        voters = self.conf.voters
        if (len(voters) == 1 and self.id in voters) or self._lease_valid():
            return committed
        return None

    def _single_voter(self) -> bool:
        voters = self.conf.voters
        return len(voters) == 1 and self.id in voters  # no set to build on every read

    def _lease_valid(self) -> bool:
        if self.config.read_mode is not ReadMode.LEASE or self.lead_transferee != NO_NODE:
            return False
        acks = dict(self._lease_acks)
        acks[self.id] = self._ticks
        confirmed = quorum_value(self.conf.voters, acks)  # the quorum's oldest echo
        # Two ticks of margin: tick phases differ between nodes by up to one tick.
        return self._ticks - confirmed < self.config.election_timeout_ticks - 2

    def compact(self, index: Index) -> SnapshotMeta:
        """The application's state covers everything up to ``index``: drop those entries.

        Returns the new start of the log (index, term and membership there), which the host
        stores with its own compaction so that a restart rebuilds the same membership.
        """
        self.log.compact(Index(min(index, self.log.applied)))
        self._conf_base = self._conf_at(self.log.snapshot_index)
        self._conf_records = [r for r in self._conf_records if r[0] > self.log.snapshot_index]
        return SnapshotMeta(self.log.snapshot_index, self.log.snapshot_term, self._conf_base)

    def compaction_floor(self) -> Index | None:
        """On a leader, the lowest index a live follower still needs from the log.

        Compacting past it makes that follower need a snapshot (again, if one is in flight:
        a learner receiving a snapshot at index S needs the entries after S). None when this
        node is not the leader or no live follower is behind. Followers not heard from for
        two election timeouts do not count (a dead node must not pin the log), except while a
        snapshot is streamed to them: installing a big one keeps a node silent for seconds.
        The host bounds how far behind it holds the log for anyone.
        """
        if self.role is not Role.LEADER:
            return None
        horizon = 2 * self.config.election_timeout_ticks
        floor: Index | None = None
        for node_id, pr in self.progress.items():
            if node_id == self.id:
                continue
            need = pr.match
            if pr.state is ProgressState.SNAPSHOT and pr.snapshot is not None:
                need = max(need, pr.snapshot.meta.index)
            elif pr.last_contact_ticks > horizon:
                continue
            if floor is None or need < floor:
                floor = need
        return floor

    def conf_at(self, index: Index) -> ConfState:
        """The membership in force at ``index`` (for snapshots taken at the applied index)."""
        return self._conf_at(index)

    # --- output ----------------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._messages
            or self._messages_after
            or self._read_states
            or self._chunks
            or self._snapshot_to_install
            or self._conf_changed
            or self._bcast_pending
            or self.readonly.queued
            or self.log.unstable_from <= self.log.last_index
            or self.log.committed > self._applying
            or self._hard_state() != self._persisted_hard_state
            or self._soft_state() != self._reported_soft_state
        )

    def ready(self) -> Ready:
        if self.role is Role.LEADER:
            if self._bcast_pending:
                self._bcast_append()
            self._start_read_round()
        rd = Ready()
        hs = self._hard_state()
        if hs != self._persisted_hard_state:
            rd.hard_state = hs
            self._persisted_hard_state = hs
        log = self.log
        if log.unstable_from <= log.last_index:
            rd.entries = log.unstable_entries()
            log.unstable_from = Index(log.last_index + 1)
        if self._chunks:
            rd.snapshot_chunks, self._chunks = self._chunks, []
        rd.snapshot, self._snapshot_to_install = self._snapshot_to_install, None
        if self._messages:
            rd.messages, self._messages = self._messages, []
        if self._messages_after:
            rd.messages_after_persist, self._messages_after = self._messages_after, []
        if log.committed > self._applying:
            start = Index(max(self._applying, log.applied) + 1)
            rd.committed_entries = log.slice(
                start, Index(log.committed + 1), self.config.max_apply_bytes
            )
            if rd.committed_entries:
                self._applying = rd.committed_entries[-1].index
        if self._read_states:
            rd.read_states, self._read_states = self._read_states, []
        soft = self._soft_state()
        if soft != self._reported_soft_state:
            rd.soft_state = self._reported_soft_state = soft
        if self._conf_changed:
            rd.conf_state, self._conf_changed = self.conf, False
        return rd

    def advance(self, rd: Ready) -> None:
        """The host has carried out ``rd``."""
        log = self.log
        if rd.entries:
            last = rd.entries[-1]
            if log.match_term(last.index, last.term):
                log.stable_index = max(log.stable_index, last.index)
        if rd.committed_entries:
            log.applied = max(log.applied, rd.committed_entries[-1].index)
        self._applying = max(self._applying, log.applied)
        if self.role is Role.LEADER:
            own = self.progress.get(self.id)
            if own is not None and own.maybe_update(log.stable_index):
                self._maybe_commit()
            self._step_down_if_removed()

    def status(self) -> Status:
        members = tuple(
            MemberStatus(
                i,
                p.learner,
                p.match,
                p.next,
                p.state.value,
                p.recent_active,
                p.last_contact_ticks,
            )
            for i, p in sorted(self.progress.items())
        )
        return Status(
            self.id,
            self.role,
            self.term,
            self.vote,
            self.leader,
            self.log.committed,
            self.log.applied,
            self.log.first_index,
            self.log.last_index,
            self.conf,
            self.lead_transferee,
            members,
        )

    # --- role changes ----------------------------------------------------------------------

    def _reset(self, term: Term) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.leader = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        timeout = self.config.election_timeout_ticks
        self.randomized_election_timeout = self._rng.randrange(timeout, 2 * timeout)
        self.lead_transferee = NO_NODE
        self.votes = {}
        self.progress = {}
        self._lease_acks = {}
        self._bcast_pending = self._commit_news = False
        self._fail_pending_reads()

    def _become_follower(self, term: Term, leader: NodeId) -> None:
        self._reset(term)
        self.leader = leader
        self.role = Role.FOLLOWER
        self._step_role = self._step_follower
        self._tick_role = self._tick_election

    def _become_pre_candidate(self) -> None:
        # Term and vote stay as they are: a pre-vote changes nothing durable.
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election
        self.votes = {}
        self.leader = NO_NODE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        self._reset(Term(self.term + 1))
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.leader = self.id
        self.role = Role.LEADER
        self._step_role = self._step_leader
        self._tick_role = self._tick_heartbeat
        self._sync_progress()
        # The no-op: committing it commits every earlier entry and lets reads proceed.
        self.log.append([Entry(self.term, Index(self.log.last_index + 1), EntryType.NORMAL, b"")])
        # Conservatively treat the uncommitted tail as possibly holding a conf change.
        self.pending_conf_index = self.log.last_index
        self._bcast_pending = True

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self._become_pre_candidate()
            term = Term(self.term + 1)
        else:
            self._become_candidate()
            term = self.term
        self.votes[self.id] = True
        if self._tally_votes():
            return
        for voter in sorted(self.conf.voters):
            if voter != self.id:
                self._send(
                    RequestVote(
                        term,
                        self.id,
                        voter,
                        self.log.last_index,
                        self.log.last_term,
                        pre_vote,
                        transfer,
                    )
                )

    def _tally_votes(self) -> bool:
        """Act on the election result so far; True if the election is decided."""
        result = vote_result(self.conf.voters, self.votes)
        if result is None:
            return False
        if not result:
            self._become_follower(self.term, NO_NODE)
        elif self.role is Role.PRE_CANDIDATE:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()
        return True

    # --- ticks -----------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._campaign(pre_vote=self.config.pre_vote)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for peer, pr in self.progress.items():
            pr.last_contact_ticks += 1
            if pr.snapshot is not None:
                pr.snapshot.idle_ticks += 1
                if pr.snapshot.idle_ticks >= self.config.election_timeout_ticks:
                    # No acknowledgement for a while: resend from the last acknowledged byte.
                    pr.snapshot.sent_offset = pr.snapshot.acked_offset
                    pr.snapshot.sent_all = False
                    pr.snapshot.idle_ticks = 0
                self._send_snapshot_chunks(peer, pr)  # also resumes a rate-limited transfer
        if self.election_elapsed >= self.config.election_timeout_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum:
                active = {i for i, p in self.progress.items() if p.recent_active or i == self.id}
                if not has_quorum(self.conf.voters, active):
                    self._become_follower(self.term, NO_NODE)  # partitioned away: step down
                    return
                for peer, pr in self.progress.items():
                    pr.recent_active = peer == self.id
            self.lead_transferee = NO_NODE  # a transfer that took this long has failed
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            context = self.readonly.last_context()
            if not context and self.config.read_mode is ReadMode.LEASE:
                context = _LEASE_PREFIX + self._ticks.to_bytes(8, "big")
            self._bcast_heartbeat(context)

    # --- message handling by role ------------------------------------------------------------

    def _handle_vote_request(self, m: RequestVote) -> None:
        can_vote = (
            self.vote == m.sender
            or (self.vote == NO_NODE and self.leader == NO_NODE)
            or (m.pre_vote and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            # A learner answers too: it may have been promoted without knowing it yet. Only
            # votes of the candidate's voters are counted.
            self._send(RequestVoteResponse(m.term, self.id, m.sender, True, m.pre_vote))
            if not m.pre_vote:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            self._send(RequestVoteResponse(self.term, self.id, m.sender, False, m.pre_vote))

    def _step_follower(self, m: Message) -> None:
        match m:
            case AppendEntries():
                self.election_elapsed = 0
                self.leader = m.sender
                self._handle_append(m)
            case Heartbeat():
                self.election_elapsed = 0
                self.leader = m.sender
                self.log.commit_to(Index(min(m.commit, self.log.last_index)))
                self._send(HeartbeatResponse(self.term, self.id, m.sender, m.context))
            case InstallSnapshot():
                self.election_elapsed = 0
                self.leader = m.sender
                self._handle_snapshot(m)
            case TimeoutNow():
                if self.promotable:
                    self._campaign(pre_vote=False, transfer=True)
            case ReadIndexRequest():
                self._send(
                    ReadIndexResponse(self.term, self.id, m.sender, m.context, Index(0), True)
                )
            case ReadIndexResponse():
                self._read_states.append(ReadState(m.index, m.context, m.reject))
            case _:
                pass

    def _step_candidate(self, m: Message) -> None:
        match m:
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                self._become_follower(self.term, m.sender)
                self._step_follower(m)
            case RequestVoteResponse():
                if m.pre_vote != (self.role is Role.PRE_CANDIDATE):
                    return  # an answer to an earlier phase
                if m.sender in self.conf.voters:
                    self.votes[m.sender] = m.granted
                    self._tally_votes()
            case ReadIndexRequest():
                self._send(
                    ReadIndexResponse(self.term, self.id, m.sender, m.context, Index(0), True)
                )
            case _:
                pass

    def _step_leader(self, m: Message) -> None:
        match m:
            case AppendEntriesResponse():
                self._handle_append_response(m)
            case HeartbeatResponse():
                pr = self._heard_from(m.sender)
                if pr is None:
                    return
                pr.probe_sent = False
                if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                    # Appends may have been lost: free a slot so the next append (or the
                    # follower's rejection of it) gets things moving again.
                    pr.inflights.free_first()
                if pr.match < self.log.last_index and self._send_append(m.sender):
                    while self._send_append(m.sender, send_empty=False):
                        pass
                if m.context.startswith(_LEASE_PREFIX):
                    sent = int.from_bytes(m.context[1:], "big")
                    if sent > self._lease_acks.get(m.sender, -1):
                        self._lease_acks[m.sender] = sent
                elif m.context:
                    for round_ in self.readonly.ack(m.context, m.sender, self.conf.voters):
                        for request in round_.requests:
                            self._answer_read(request, round_.index)
            case InstallSnapshotResponse():
                self._handle_snapshot_response(m)
            case ReadIndexRequest():
                self._leader_read(ReadRequest(m.context, m.sender))
            case _:
                pass

    # --- replication: follower side ----------------------------------------------------------

    def _handle_append(self, m: AppendEntries) -> None:
        log = self.log
        if m.prev_index < log.committed:
            self._send(AppendEntriesResponse(self.term, self.id, m.sender, log.committed))
            return
        last_new = log.maybe_append(m.prev_index, m.prev_term, m.entries)
        if last_new is None:
            hint_index, hint_term = log.find_conflict_by_term(
                Index(min(m.prev_index, log.last_index)), m.prev_term
            )
            self._send(
                AppendEntriesResponse(
                    self.term, self.id, m.sender, m.prev_index, True, hint_index, hint_term
                )
            )
            return
        if (self._conf_records and self._conf_records[-1][0] > m.prev_index) or any(
            e.type is EntryType.CONF_CHANGE for e in m.entries
        ):
            self._rebuild_conf(Index(m.prev_index + 1))
        log.commit_to(Index(min(m.commit, last_new)))
        self._send(AppendEntriesResponse(self.term, self.id, m.sender, last_new))

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        meta = m.meta
        end = m.offset + len(m.data)
        if meta.index <= self.log.committed or (
            m.offset == 0 and self.log.match_term(meta.index, meta.term)
        ):
            # We already hold everything it contains: skip the transfer.
            self.log.commit_to(Index(max(self.log.committed, min(meta.index, self.log.last_index))))
            self._incoming_snapshot = None
            self._send(
                InstallSnapshotResponse(self.term, self.id, m.sender, meta.index, end, done=True)
            )
            return
        incoming = self._incoming_snapshot
        if incoming is None or incoming[0] != meta:
            if m.offset != 0:
                self._send(
                    InstallSnapshotResponse(self.term, self.id, m.sender, meta.index, 0, True)
                )
                return
            incoming = (meta, 0)
        expected = incoming[1]
        if m.offset != expected or zlib.crc32(m.data) != m.checksum:
            # A gap, a corrupt chunk, or a duplicate of one we have: say where to go on from.
            reject = m.offset > expected or zlib.crc32(m.data) != m.checksum
            self._send(
                InstallSnapshotResponse(self.term, self.id, m.sender, meta.index, expected, reject)
            )
            self._incoming_snapshot = incoming
            return
        self._chunks.append(SnapshotChunk(meta, m.offset, m.data, m.done))
        if m.done:
            self._incoming_snapshot = None
            self._restore(meta)
        else:
            self._incoming_snapshot = (meta, end)
        self._send(
            InstallSnapshotResponse(self.term, self.id, m.sender, meta.index, end, done=m.done)
        )

    def _restore(self, meta: SnapshotMeta) -> None:
        self.log.restore(meta.index, meta.term)
        self._applying = meta.index
        self._conf_base = meta.conf_state
        self._conf_records = []
        self._conf_changed = True
        self._snapshot_to_install = meta

    # --- replication: leader side ------------------------------------------------------------

    def _heard_from(self, peer: NodeId) -> Progress | None:
        pr = self.progress.get(peer)
        if pr is not None:
            pr.recent_active = True
            pr.last_contact_ticks = 0
        return pr

    def _handle_append_response(self, m: AppendEntriesResponse) -> None:
        pr = self._heard_from(m.sender)
        if pr is None:
            return
        if m.reject:
            probe_from = m.hint_index
            if m.hint_term > 0:
                probe_from, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decrease_to(m.index, probe_from):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.sender)
            return
        # A probe answered at the index we already knew (e.g. right after a snapshot) still
        # confirms where the logs match: that too ends probing (as in etcd).
        confirmed_probe = pr.state is ProgressState.PROBE and pr.match == m.index
        if not pr.maybe_update(m.index) and not confirmed_probe:
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            assert pr.snapshot is not None
            if pr.match >= pr.snapshot.meta.index:
                pr.become_probe()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._step_down_if_removed()
            if self.role is not Role.LEADER:
                return
        while self._send_append(m.sender, send_empty=False):
            pass
        if m.sender == self.lead_transferee and pr.match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, m.sender))

    def _send_append(self, to: NodeId, send_empty: bool = True) -> bool:
        """Send the next append to ``to`` if its window allows; True if something was sent."""
        pr = self.progress[to]
        if pr.is_paused():
            return False
        log = self.log
        prev_index = Index(pr.next - 1)
        prev_term = log.term(prev_index)
        if prev_term is None:  # compacted away: only a snapshot can help
            return self._start_snapshot(to, pr)
        entries = (
            log.slice(pr.next, Index(log.last_index + 1), self.config.max_message_bytes)
            if pr.next <= log.last_index
            else []
        )
        if not entries and not send_empty:
            return False
        self._messages.append(
            AppendEntries(
                self.term, self.id, to, prev_index, prev_term, tuple(entries), log.committed
            )
        )
        if entries:
            pr.sent_entries(entries[-1].index, sum(e.size_bytes() for e in entries))
        else:
            pr.sent_entries(None, 0)
        return True

    def _bcast_append(self) -> None:
        send_empty = self._commit_news
        self._bcast_pending = self._commit_news = False
        for peer in self.progress:
            if peer != self.id and self._send_append(peer, send_empty):
                while self._send_append(peer, send_empty=False):
                    pass

    def _bcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for peer, pr in self.progress.items():
            if peer != self.id:
                commit = Index(min(pr.match, committed))
                self._messages.append(Heartbeat(self.term, self.id, peer, commit, context))

    def _maybe_commit(self) -> bool:
        match = {peer: pr.match for peer, pr in self.progress.items()}
        index = committed_index(self.conf.voters, match)
        if index <= self.log.committed or not self._may_commit_at(index):
            return False
        self.log.commit_to(index)
        self._bcast_pending = self._commit_news = True
        if self._reads_before_commit:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for request in waiting:
                self._leader_read(request)
        return True

    def _may_commit_at(self, index: Index) -> bool:
        """Raft 5.4.2: only entries of the current term are committed by counting replicas."""
        return self.log.term(index) == self.term

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _step_down_if_removed(self) -> None:
        # A leader removed from the voters manages the cluster until the removal commits.
        if (
            self.role is Role.LEADER
            and self.id not in self.conf.voters
            and self._conf_index() <= self.log.committed
        ):
            self._commit_news = True  # let the others learn that the removal committed
            self._bcast_append()
            self._become_follower(self.term, NO_NODE)

    # --- snapshots: leader side --------------------------------------------------------------

    def _start_snapshot(self, to: NodeId, pr: Progress) -> bool:
        meta = self._snapshots.snapshot_meta()
        if meta is None or meta.index < self.log.snapshot_index:
            return False  # not ready yet: the next heartbeat response retries
        pr.become_snapshot(meta)
        self._send_snapshot_chunks(to, pr)
        return True

    def _send_snapshot_chunks(self, to: NodeId, pr: Progress) -> None:
        transfer = pr.snapshot
        assert transfer is not None
        chunk = self.config.snapshot_chunk_bytes
        window = chunk * self.config.snapshot_window_chunks
        while not transfer.sent_all and transfer.sent_offset - transfer.acked_offset < window:
            got = self._snapshots.read_chunk(transfer.meta, transfer.sent_offset, chunk)
            if got is None:  # that snapshot is gone: probe again, which starts a fresh one
                pr.snapshot = None
                pr.state = ProgressState.PROBE
                pr.become_probe()
                return
            data, done = got
            if not data and not done:
                return  # not now: the next tick asks again
            self._messages.append(
                InstallSnapshot(
                    self.term,
                    self.id,
                    to,
                    transfer.meta,
                    transfer.sent_offset,
                    data,
                    zlib.crc32(data),
                    done,
                )
            )
            transfer.sent_offset += len(data)
            transfer.sent_all = done

    def _handle_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        pr = self._heard_from(m.sender)
        if pr is None or pr.snapshot is None or pr.snapshot.meta.index != m.snapshot_index:
            return
        transfer = pr.snapshot
        transfer.idle_ticks = 0
        if m.done:
            pr.match = Index(max(pr.match, m.snapshot_index))
            pr.become_probe()
            self._send_append(m.sender)
            return
        if m.reject:
            transfer.sent_offset = transfer.acked_offset = m.offset
            transfer.sent_all = False
        else:
            transfer.acked_offset = max(transfer.acked_offset, m.offset)
        self._send_snapshot_chunks(m.sender, pr)

    # --- reads -------------------------------------------------------------------------------

    def _leader_read(self, request: ReadRequest) -> None:
        if not self._committed_in_term():
            self._reads_before_commit.append(request)
        elif self._single_voter() or self._lease_valid():
            self._answer_read(request, self.log.committed)
        else:
            self.readonly.queue(request)  # no lease (yet): a ReadIndex round

    def _start_read_round(self) -> None:
        round_ = self.readonly.start_round(self.log.committed, self.id)
        if round_ is not None:
            self._bcast_heartbeat(round_.context)

    def _answer_read(self, request: ReadRequest, index: Index) -> None:
        if request.requester == self.id:
            self._read_states.append(ReadState(index, request.context))
        else:
            self._send(
                ReadIndexResponse(self.term, self.id, request.requester, request.context, index)
            )

    def _fail_pending_reads(self) -> None:
        pending = self.readonly.take_all() + self._reads_before_commit
        self._reads_before_commit = []
        for request in pending:
            if request.requester == self.id:
                self._read_states.append(ReadState(Index(0), request.context, rejected=True))
            # Remote requesters time out and retry: our term may be stale, so stay quiet.

    # --- membership --------------------------------------------------------------------------

    def _conf_at(self, index: Index) -> ConfState:
        conf = self._conf_base
        for at, state in self._conf_records:
            if at > index:
                break
            conf = state
        return conf

    def _conf_index(self) -> Index:
        return self._conf_records[-1][0] if self._conf_records else self.log.snapshot_index

    def _rebuild_conf(self, from_index: Index) -> None:
        """Recompute membership records for log entries from ``from_index`` on."""
        before = self.conf
        records = [r for r in self._conf_records if r[0] < from_index]
        conf = records[-1][1] if records else self._conf_base
        start = max(from_index, self.log.first_index)
        for entry in self.log.entries[start - self.log.snapshot_index - 1 :]:
            if entry.type is EntryType.CONF_CHANGE:
                conf = apply_conf_change(conf, ConfChange.decode(entry.data))
                records.append((entry.index, conf))
        self._conf_records = records
        if self.conf != before:
            self._conf_changed = True
            if self.role is Role.LEADER:
                self._sync_progress()

    def _sync_progress(self) -> None:
        """Make the progress map match the membership (leader only)."""
        conf = self.conf
        last = self.log.last_index
        members = {m.id: m for m in conf.members}
        for peer in list(self.progress):
            if peer not in members:
                del self.progress[peer]
                if peer == self.lead_transferee:
                    self.lead_transferee = NO_NODE
        for peer, member in members.items():
            pr = self.progress.get(peer)
            if pr is None:
                pr = Progress(
                    match=Index(0),
                    next=Index(last + 1),
                    inflights=Inflights(
                        self.config.max_inflight_messages, self.config.max_inflight_bytes
                    ),
                )
                if peer == self.id:
                    pr.match = self.log.stable_index
                    pr.become_replicate()
                self.progress[peer] = pr
            pr.learner = member.learner
        self._maybe_commit_after_conf()

    def _maybe_commit_after_conf(self) -> None:
        # A smaller quorum (a removal) may commit entries at once.
        if self.role is Role.LEADER and self.id in self.progress:
            self._maybe_commit()

    # --- helpers -----------------------------------------------------------------------------

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.lead_transferee != NO_NODE:
            raise ProposalDropped("leadership transfer in progress")

    def _send(self, m: Message) -> None:
        if isinstance(m, _AFTER_PERSIST):
            self._messages_after.append(m)
        else:
            self._messages.append(m)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role, self.term)


def bootstrap_state(members: list[Member]) -> PersistedState:
    """The state of a brand-new node of a static cluster (see ``bootstrap_entries``)."""
    entries = bootstrap_entries(members)
    return PersistedState(
        HardState(Term(1), NO_NODE, Index(len(entries))),
        SnapshotMeta(Index(0), Term(0), ConfState(())),
        entries,
        Index(0),
    )


def joiner_state() -> PersistedState:
    """The state of a brand-new node that joins a running cluster: it knows nothing yet."""
    return PersistedState(
        HardState(Term(0), NO_NODE, Index(0)),
        SnapshotMeta(Index(0), Term(0), ConfState(())),
        [],
        Index(0),
    )
