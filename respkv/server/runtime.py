"""The node runtime: the Raft core's host on the event loop (the Ready loop).

Every input (a client proposal, a read, a peer message, a tick) is fed to the core at once;
the Ready is handled once per loop turn, so everything that arrived in that turn shares one
synced write (group commit happens again in the writer thread across turns). Committed entries
are applied by the state machine on the loop, in one backend batch per Ready, and resolve the
futures of the clients waiting on them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from respkv.raft.confchange import apply_conf_change
from respkv.raft.node import (
    PersistedState,
    RaftConfig,
    RaftNode,
    bootstrap_state,
    joiner_state,
)
from respkv.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    HardState,
    Index,
    Member,
    Message,
    NodeId,
    NotLeader,
    RaftError,
    Ready,
    Role,
    SnapshotMeta,
    Term,
)
from respkv.storage import (
    SnapshotExport,
    StorageError,
    StorageWriter,
    Store,
    begin_export,
    install_snapshot,
    read_chunk,
    write_chunk,
)
from respkv.storage.progress import ProgressLog
from respkv.storage.snapshot import snapshot_file_name
from respkv.storage.writer import LatencyHistogram

log = logging.getLogger(__name__)


#: A Ready with at most this many entries is made durable on the loop (``write_inline``);
#: bigger ones go to the writer thread, so that the loop parses the next batch meanwhile.
_INLINE_PERSIST_MAX_ENTRIES = 1  # and so had the one before


class ClusterDown(Exception):
    """No leader is known or reachable: the request was not applied; safe to retry."""


class OutcomeUnknown(Exception):
    """The write may or may not have been applied (leader lost after it was appended)."""


class EntryLost(Exception):
    """The proposed entry was overwritten by another leader's: it was never applied."""


#: Called once with the state machine's reply, or with an exception (ClusterDown,
#: OutcomeUnknown, EntryLost) when there will be none.
Done = Callable[[Any], None]


@dataclass(slots=True)
class _Proposal:
    term: Term
    done: Done
    deadline: float


@dataclass(slots=True)
class SnapshotStats:
    """Snapshot transfers, for metrics. A transfer is sent once its last chunk was read for a
    follower, received once installed; durations run from the first chunk."""

    sent: int = 0
    received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    send_duration: LatencyHistogram = field(default_factory=LatencyHistogram)
    receive_duration: LatencyHistogram = field(default_factory=LatencyHistogram)


def member_context(peer_address: str, client_address: str, status: str = "active") -> bytes:
    """What the log records about a member besides its id (see respkv.raft.types.Member)."""
    return f"{peer_address}|{client_address}|{status}".encode()


def parse_member_context(context: bytes) -> tuple[str, str, str]:
    """(peer address, client address, status); empty strings where unknown."""
    parts = context.decode(errors="replace").split("|")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2] or "active"


class NodeRuntime:
    def __init__(
        self,
        raft_config: RaftConfig,
        store: Store,
        state_machine: Any,
        *,
        tick_seconds: float,
        fsync: bool = True,
        request_timeout: float = 5.0,
        snapshot_threshold: int = 10000,
        snapshot_tail: int = 1000,
        max_log_hold: int = 500_000,
        snapshot_rate_bytes_s: int = 0,
        initial_members: Iterable[Member] = (),
        joining: bool = False,
    ) -> None:
        self.id = raft_config.node_id
        self.store = store
        self.state_machine = state_machine
        self.tick_seconds = tick_seconds
        self.request_timeout = request_timeout
        self.snapshot_threshold = snapshot_threshold
        self.snapshot_tail = snapshot_tail
        self.max_log_hold = max_log_hold
        self._hold_exceeded_logged = False
        self.writer = StorageWriter(store, fsync=fsync)
        self.send_messages: Callable[[list[Message]], None] = lambda messages: None
        self.on_soft_state: list[Callable[[NodeId, Role, Term], None]] = []
        self.on_conf_state: list[Callable[[ConfState], None]] = []
        self.on_removed: list[Callable[[], None]] = []  # this node's removal was applied
        self.on_member_removed: list[Callable[[NodeId], None]] = []
        # Called after each apply batch while set (blocked clients: respkv.server.blocking).
        self.after_apply: Callable[[], None] | None = None
        # Ids of removed members (kept in the store); a join may not reuse them.
        self.removed_ids: set[NodeId] = {NodeId(i) for i in store.removed_ids()}
        state = self._load_state(list(initial_members), joining)
        self._synced_hard_state = state.hard_state  # the term and vote last made durable
        self.raft = RaftNode(raft_config, state, random.Random(), self)
        self.conf_state = self.raft.conf
        self.applied_conf = self._applied_conf(state)
        self._proposals: dict[Index, _Proposal] = {}
        self._read_contexts = itertools.count(1)
        # Reads wait in batches: every read that asks in one loop turn shares one ReadIndex.
        self._pending_reads: dict[bytes, list[Done]] = {}  # asked the core, no ReadState yet
        self._pending_read_deadlines: deque[tuple[float, bytes]] = deque()
        self._waiting_reads: deque[tuple[Index, list[Done], float]] = deque()
        self._read_batch: list[Done] | None = None
        self._ready_scheduled = False
        self._persisting = False
        self._in_follow_up = False  # _handle_ready runs a Ready that an inline persist allowed
        self._small_persist = False  # the last Ready persisted had at most 1 entry
        self._tick_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.leader: NodeId = NodeId(0)
        self.role = Role.FOLLOWER
        self.term = self.raft.term
        self.leader_changes = 0
        self.started_at = time.time()
        self._stopping = False
        self._export: tuple[SnapshotMeta, Path] | None = None  # the last snapshot exported
        self._export_task: asyncio.Task[None] | None = None
        self.installing_snapshot = False  # a leader's snapshot is being written or installed
        self.snapshot_bytes_sent = 0
        self.snapshot_stats = SnapshotStats()
        self._export_size = 0
        # Progress of snapshots being sent (by snapshot index) and received (one at a time).
        self._sending: dict[Index, ProgressLog] = {}
        self._receiving: ProgressLog | None = None
        # Replaying committed entries after a restart: progress until the recovered commit.
        self._recovery: ProgressLog | None = None
        self._recovery_from = self._recovery_target = Index(0)
        commit, applied = state.hard_state.commit, state.applied
        if commit > applied and self._recovered:
            self._recovery = ProgressLog(log, "replaying the log", commit - applied, "entries")
            self._recovery_from, self._recovery_target = applied, commit
            log.info(
                "replaying %d committed entries (%d..%d)", commit - applied, applied + 1, commit
            )
        # Token bucket for snapshot streaming (0: unlimited), refilled with elapsed time.
        self._snapshot_rate = snapshot_rate_bytes_s
        self._snapshot_tokens = float(snapshot_rate_bytes_s)
        self._snapshot_tokens_at = time.monotonic()

    # --- start and stop ----------------------------------------------------------------------

    def _load_state(self, members: list[Member], joining: bool) -> PersistedState:
        loaded = self.store.log.load()
        self._recovered = not loaded.is_new  # a restart: committed entries may wait for apply
        if loaded.is_new:
            if joining or not members:
                state = joiner_state()
            else:
                state = bootstrap_state(members)
                batch = self.store.batch()
                self.store.log.append(batch, state.entries)
                self.store.log.set_hard_state(batch, state.hard_state)
                self.store.write(batch, sync=True)
            log.info(
                "new data dir: %s",
                "waiting to join a cluster"
                if not state.entries
                else f"bootstrapped a cluster of {len(members)} member(s)",
            )
            return state
        hard_state = loaded.hard_state or HardState(Term(0), NodeId(0), Index(0))
        snapshot = loaded.snapshot or SnapshotMeta(Index(0), Term(0), ConfState(()))
        applied = Index(max(loaded.applied, snapshot.index))
        log.info(
            "recovered: term %d, log %d..%d (%d entries), applied %d",
            hard_state.term,
            snapshot.index + 1,
            snapshot.index + len(loaded.entries),
            len(loaded.entries),
            applied,
        )
        return PersistedState(hard_state, snapshot, loaded.entries, applied)

    def _applied_conf(self, state: PersistedState) -> ConfState:
        conf = state.snapshot.conf_state
        for entry in state.entries:
            if entry.index > state.applied:
                break
            if entry.type is EntryType.CONF_CHANGE:
                conf = apply_conf_change(conf, ConfChange.decode(entry.data))
        return conf

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start()
        if self.raft.conf.voters == {self.id}:
            self.raft.campaign()  # a single voter need not wait for an election timeout
        self._tick_handle = self._loop.call_later(self.tick_seconds, self._tick)
        self._schedule_ready()

    async def stop(self) -> None:
        self._stopping = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        proposals, self._proposals = self._proposals, {}
        for proposal in proposals.values():
            proposal.done(OutcomeUnknown("the server is shutting down"))
        self._fail_reads(ClusterDown("the server is shutting down"))
        await self.writer.aclose()
        if self._export_task is not None:  # its thread reads the store, which closes next
            await asyncio.wait([self._export_task])

    # --- inputs ------------------------------------------------------------------------------

    def _tick(self) -> None:
        assert self._loop is not None
        self.raft.tick()
        self._expire_requests()
        self._tick_handle = self._loop.call_later(self.tick_seconds, self._tick)
        self._schedule_ready()

    def step(self, message: Message) -> None:
        """A message from a peer."""
        self.raft.step(message)
        self._schedule_ready()

    def propose(self, payload: bytes, done: Done) -> None:
        """Propose a command; ``done`` gets the state machine's reply for it (or an error).

        Raises ClusterDown at once if this node cannot take proposals.
        """
        assert self._loop is not None
        try:
            index = self.raft.propose(payload)
        except NotLeader as e:
            raise ClusterDown(self._no_leader_text()) from e
        except RaftError as e:
            raise ClusterDown(str(e)) from e
        deadline = self._loop.time() + self.request_timeout
        self._proposals[index] = _Proposal(self.raft.term, done, deadline)
        self._schedule_ready()

    def propose_conf_change(self, change: ConfChange, done: Done) -> None:
        """Propose a membership change; ``done(None)`` once it is applied (or an error).

        Raises ClusterDown when this node does not lead, ProposalDropped (retry later) while
        another change is in progress, RaftError when the change makes no sense.
        """
        assert self._loop is not None
        if not self.is_leader:
            raise ClusterDown(self._no_leader_text())
        index = self.raft.propose_conf_change(change)
        deadline = self._loop.time() + self.request_timeout
        self._proposals[index] = _Proposal(self.raft.term, done, deadline)
        self._schedule_ready()

    def transfer_leader(self, target: NodeId) -> None:
        self.raft.transfer_leader(target)
        self._schedule_ready()

    def may_read_now(self) -> bool:
        """True if a linearizable read may run now (``read_barrier`` would return True)."""
        index = self.raft.read_index_now()
        return index is not None and self.raft.log.applied >= index

    def read_barrier(self, done: Done) -> bool:
        """True if a linearizable read may run now; else ``done(None)`` is called when it may
        (or ``done(error)`` if it cannot)."""
        index = self.raft.read_index_now()
        if index is not None and self.raft.log.applied >= index:
            return True
        assert self._loop is not None
        batch = self._read_batch
        if batch is None:
            batch = self._read_batch = []
            if index is not None:  # decided locally: only wait for the apply
                self._waiting_reads.append((index, batch, self._loop.time() + self.request_timeout))
            else:
                context = next(self._read_contexts).to_bytes(8, "big")
                self._pending_reads[context] = batch
                deadline = self._loop.time() + self.request_timeout
                self._pending_read_deadlines.append((deadline, context))
                self.raft.read_index(context)
            self._schedule_ready()
        batch.append(done)
        return False

    def _no_leader_text(self) -> str:
        if self.leader and self.leader != self.id:
            return f"this node is not the leader (node {self.leader} is)"
        return "no leader is elected (is a majority of the cluster up and connected?)"

    # --- the Ready loop ------------------------------------------------------------------------

    def _schedule_ready(self) -> None:
        if not self._ready_scheduled and not self._persisting and self._loop is not None:
            self._ready_scheduled = True
            self._loop.call_soon(self._handle_ready)

    def _handle_ready(self) -> None:
        self._ready_scheduled = False
        self._read_batch = None  # reads from now on wait for a newer read index
        if self._persisting or self._stopping or not self.raft.has_ready():
            return
        rd = self.raft.ready()
        if rd.messages:
            self.send_messages(rd.messages)
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state.leader, rd.soft_state.role, rd.soft_state.term)
        if rd.conf_state is not None:
            self.conf_state = rd.conf_state
            for callback in self.on_conf_state:
                callback(rd.conf_state)
        if rd.snapshot_chunks or rd.snapshot is not None:
            assert self._loop is not None
            self._persisting = True
            self._loop.create_task(self._persist_with_snapshot(rd))
            return
        if rd.hard_state is None and not rd.entries:
            self._after_persist(rd, None)
            return
        batch = self.store.batch()
        if rd.entries:
            self.store.log.append(batch, rd.entries)
        hard_state = rd.hard_state
        if hard_state is not None:
            self.store.log.set_hard_state(batch, hard_state)
        synced = self._synced_hard_state
        if (
            not rd.entries
            and hard_state is not None
            and (hard_state.term, hard_state.vote)
            == (
                synced.term,
                synced.vote,
            )
        ):
            # Only the commit index moved: it can be recovered from the log, so this write
            # needs no fsync (etcd's MustSync rule) and the Ready goes on in this turn.
            self.store.write(batch, sync=False)
            self._after_persist(rd, None)
            return
        if hard_state is not None:
            self._synced_hard_state = hard_state
        small = len(rd.entries) <= _INLINE_PERSIST_MAX_ENTRIES
        small_before, self._small_persist = self._small_persist, small
        if small and small_before and self.writer.idle:
            # Lone writes (one client, or a quiet time): fsync right here, the loop would only
            # wait for it; the writer thread costs two thread wake-ups. Not after a big Ready:
            # under load the loop should parse the next batch during the fsync.
            self._after_persist(rd, self.writer.write_inline(batch))
            if self._ready_scheduled and not self._in_follow_up:
                # What that persist allows (a single voter's commit) is ready: apply it in this
                # turn, not the next. Once: the replies may start more proposals.
                self._in_follow_up = True
                try:
                    self._handle_ready()
                finally:
                    self._in_follow_up = False
            return
        # Entries committed by the previous fsync usually come with the ones proposed during it.
        # Those already durable here may be applied (and answered) while the new ones are synced,
        # not one fsync later. A crash can then leave the applied index above the stored commit
        # index, which a restart takes as committed (RaftLog); never above the durable log.
        committed = rd.committed_entries
        early = bool(committed) and committed[-1].index <= self.raft.log.stable_index
        applied = [False]  # read by the completion: set once the early apply succeeded
        self._persisting = True
        self.writer.submit_callback(batch, lambda error: self._after_persist(rd, error, applied[0]))
        if early:
            self._apply(rd)  # after the submit: the writer thread starts meanwhile
            applied[0] = True  # (if it raised, _after_persist applies them as it used to)

    def _after_persist(self, rd: Ready, error: BaseException | None, applied: bool = False) -> None:
        """``rd`` is durable (or ``error``): send, apply (unless ``applied`` already), advance."""
        self._persisting = False
        if error is not None:
            # The log could not be made durable: acknowledging anything now could lose data.
            log.critical("persisting the Raft log failed: %s; stopping the node", error)
            os._exit(70)
        if rd.messages_after_persist:
            self.send_messages(rd.messages_after_persist)
        if rd.committed_entries and not applied:
            self._apply(rd)
        for read in rd.read_states:
            batch = self._pending_reads.pop(read.context, None)
            if batch is None:
                continue
            if read.rejected:
                _call_all(batch, ClusterDown(self._no_leader_text()))
            else:
                assert self._loop is not None
                deadline = self._loop.time() + self.request_timeout
                self._waiting_reads.append((read.index, batch, deadline))
        self.raft.advance(rd)
        self._release_reads()
        self._maybe_compact()
        if self.raft.has_ready():
            self._schedule_ready()

    def _apply(self, rd: Ready) -> None:
        commands: list[tuple[int, bytes]] = []
        for entry in rd.committed_entries:
            if entry.type is EntryType.CONF_CHANGE:
                change = ConfChange.decode(entry.data)
                self.applied_conf = apply_conf_change(self.applied_conf, change)
                self._conf_change_applied(change)
                commands.append((entry.index, b""))
            else:
                commands.append((entry.index, entry.data))
        replies = self.state_machine.apply(commands)
        if self._recovery is not None:
            last = rd.committed_entries[-1].index
            if last >= self._recovery_target:
                # The batch may hold entries past the target (e.g. a new leader's first entry).
                self._recovery.finish(self._recovery_target - self._recovery_from)
                self._recovery = None
            else:
                self._recovery.update(last - self._recovery_from)
        proposals = self._proposals
        if proposals:
            for entry, reply in zip(rd.committed_entries, replies, strict=True):
                proposal = proposals.pop(entry.index, None)
                if proposal is None:
                    continue
                if proposal.term == entry.term:
                    proposal.done(reply)
                else:
                    proposal.done(EntryLost("leadership changed before it committed"))
        if self.after_apply is not None:
            self.after_apply()

    def _conf_change_applied(self, change: ConfChange) -> None:
        what = {
            ConfChangeType.ADD_LEARNER: "added as a learner",
            ConfChangeType.ADD_VOTER: "added as a voter",
            ConfChangeType.PROMOTE: "promoted to voter",
            ConfChangeType.REMOVE: "removed from the cluster",
            ConfChangeType.UPDATE: "updated",
        }[change.type]
        voters = ",".join(str(v) for v in sorted(self.applied_conf.voters)) or "none"
        log.info("Node %d %s (voters now: %s)", change.node_id, what, voters)
        if change.type is ConfChangeType.REMOVE:
            self.removed_ids.add(change.node_id)
            self.store.add_removed_id(change.node_id)
            for notify in self.on_member_removed:
                notify(change.node_id)
        if change.type is ConfChangeType.REMOVE and change.node_id == self.id:
            for callback in self.on_removed:
                callback()

    def _release_reads(self) -> None:
        applied = self.raft.log.applied
        waiting = self._waiting_reads
        # Reads mostly arrive in index order; a read with a higher index blocks later ones
        # for at most one apply batch, which keeps this O(1) per read.
        while waiting and waiting[0][0] <= applied:
            _call_all(waiting.popleft()[1], None)

    def _expire_requests(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for index in list(self._proposals):
            proposal = self._proposals[index]
            if proposal.deadline > now:
                break  # proposals are in index order, hence in deadline order
            del self._proposals[index]
            proposal.done(OutcomeUnknown(f"no answer within {self.request_timeout:g}s"))
        deadlines = self._pending_read_deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][1] not in self._pending_reads):
            _, context = deadlines.popleft()
            batch = self._pending_reads.pop(context, None)
            if batch is not None:
                _call_all(batch, ClusterDown("the leader did not confirm the read in time"))
        waiting = self._waiting_reads
        while waiting and waiting[0][2] <= now:
            _call_all(waiting.popleft()[1], ClusterDown("the read could not be confirmed in time"))

    def _fail_reads(self, error: Exception) -> None:
        pending, self._pending_reads = self._pending_reads, {}
        self._pending_read_deadlines.clear()
        for batch in pending.values():
            _call_all(batch, error)
        while self._waiting_reads:
            _call_all(self._waiting_reads.popleft()[1], error)

    def _soft_state_changed(self, leader: NodeId, role: Role, term: Term) -> None:
        if role != self.role:
            log.info("node %d is now %s (term %d)", self.id, role.value, term)
        if leader != self.leader:
            if leader:
                log.info("Leader elected: node %d (term %d)", leader, term)
                self.leader_changes += 1
            else:
                log.info("no leader in term %d", term)
        if self.role is Role.LEADER and role is not Role.LEADER:
            # Reads confirmed by this node's leadership can no longer be trusted.
            self._fail_reads(ClusterDown("leadership changed; retry"))
            if term == self.term and not leader:
                # Stepped down without a successor (check-quorum: the majority is gone): the
                # pending writes may never commit, and waiting for the timeout helps nobody.
                proposals, self._proposals = self._proposals, {}
                for proposal in proposals.values():
                    proposal.done(OutcomeUnknown("the leader lost its majority"))
        elif leader != self.leader and self._pending_reads:
            # Read index requests sent to the old leader may never be answered.
            pending, self._pending_reads = self._pending_reads, {}
            for batch in pending.values():
                _call_all(batch, ClusterDown("the leader changed; retry"))
        self.leader, self.role, self.term = leader, role, term
        for callback in self.on_soft_state:
            callback(leader, role, term)

    def _maybe_compact(self) -> None:
        log_ = self.raft.log
        applied = log_.applied
        target = applied - self.snapshot_tail
        if target - log_.snapshot_index < self.snapshot_threshold:
            return
        # Keep what a live follower that is catching up (or installing a snapshot) still
        # needs, or it would need a new snapshot: under load a joining node would never
        # finish. A follower more than max_log_hold entries behind gets a snapshot anyway.
        floor = self.raft.compaction_floor()
        if floor is not None and floor < target:
            if applied - floor <= self.max_log_hold:
                target = floor
                if target - log_.snapshot_index < self.snapshot_threshold:
                    return
            elif not self._hold_exceeded_logged:
                self._hold_exceeded_logged = True
                log.warning(
                    "a follower is %d entries behind (max_log_hold %d): compacting anyway, "
                    "it will need a snapshot",
                    applied - floor,
                    self.max_log_hold,
                )
        meta = self.raft.compact(Index(target))
        batch = self.store.batch()
        self.store.log.compact(batch, meta)
        self.store.write(batch, sync=False)
        log.info("compacted the log up to %d", meta.index)

    # --- snapshots ---------------------------------------------------------------------------

    def snapshot_meta(self) -> SnapshotMeta | None:
        """The core asks for a snapshot to stream: the last export if it is recent enough,
        else start exporting the current state in a thread and answer None until it is done."""
        export = self._export
        if export is not None and export[0].index >= self.raft.log.snapshot_index:
            return export[0]
        if self._export_task is None and self._loop is not None:
            self._export_task = self._loop.create_task(self._export_snapshot())
        return None

    def begin_export(self) -> SnapshotExport:
        """A consistent view of the keyspace at the applied index, with its meta (index, term,
        membership). Call it on the loop; write it in a thread (applies go on meanwhile)."""
        if self.installing_snapshot:
            raise StorageError("a snapshot from the leader is being installed; try again")
        # The meta and the keyspace view are taken together, with no apply in between. The
        # state machine's index, not the core's: entries applied while their Ready is still
        # being synced (see _handle_ready) are in the keyspace before the core counts them.
        applied = Index(max(self.state_machine.applied_index, self.raft.log.applied))
        term = self.raft.log.term(applied)  # compaction keeps the applied entry's term
        assert term is not None
        meta = SnapshotMeta(applied, term, self.raft.conf_at(applied))
        return begin_export(self.store, meta)

    async def _export_snapshot(self) -> None:
        started = time.monotonic()
        try:
            export = self.begin_export()  # the view of the keyspace, now
            meta = export.meta
            directory = self.store.path / "snapshots"
            directory.mkdir(exist_ok=True)
            path = directory / snapshot_file_name(meta)
            await asyncio.to_thread(export.write, path)
        except Exception:
            log.exception("exporting a snapshot at %d failed", self.raft.log.applied)
            return
        finally:
            self._export_task = None
        old, self._export = self._export, (meta, path)
        self._export_size = path.stat().st_size
        log.info(
            "snapshot at index %d exported (%d bytes in %.2fs) for a follower that is behind",
            meta.index,
            path.stat().st_size,
            time.monotonic() - started,
        )
        if old is not None and old[1] != path:
            old[1].unlink(missing_ok=True)
        self._schedule_ready()

    def read_chunk(
        self, meta: SnapshotMeta, offset: int, max_bytes: int
    ) -> tuple[bytes, bool] | None:
        export = self._export
        if export is None or export[0] != meta:
            return None
        if self._snapshot_rate:
            now = time.monotonic()
            rate = self._snapshot_rate
            self._snapshot_tokens = min(
                rate, self._snapshot_tokens + (now - self._snapshot_tokens_at) * rate
            )
            self._snapshot_tokens_at = now
            if self._snapshot_tokens < min(max_bytes, rate):
                return b"", False  # over the configured rate: the core asks again next tick
            self._snapshot_tokens -= max_bytes
        data, done = read_chunk(export[1], offset, max_bytes)
        self.snapshot_bytes_sent += len(data)
        stats = self.snapshot_stats
        stats.bytes_sent += len(data)
        progress = self._sending.get(meta.index)
        if offset == 0 or progress is None:
            progress = self._sending[meta.index] = ProgressLog(
                log, f"sending snapshot {meta.index}", self._export_size
            )
            log.info("sending snapshot %d (%d bytes)", meta.index, self._export_size)
        if done:
            seconds = progress.finish(offset + len(data))
            del self._sending[meta.index]
            stats.sent += 1
            stats.send_duration.observe_ns(int(seconds * 1e9))
        else:
            progress.update(offset + len(data))
        return data, done

    async def _persist_with_snapshot(self, rd: Ready) -> None:
        """A Ready with received snapshot chunks: chunks, install, then the rest as usual."""
        error: BaseException | None = None
        self.installing_snapshot = True
        try:
            directory = self.store.path / "snapshots"
            directory.mkdir(exist_ok=True)
            stats = self.snapshot_stats
            for chunk in rd.snapshot_chunks:
                path = directory / ("incoming-" + snapshot_file_name(chunk.meta))
                if chunk.offset == 0 or self._receiving is None:
                    log.info("receiving a snapshot at index %d from the leader", chunk.meta.index)
                    self._receiving = ProgressLog(log, f"receiving snapshot {chunk.meta.index}", 0)
                receiving = self._receiving
                await asyncio.to_thread(write_chunk, path, chunk.offset, chunk.data)
                stats.bytes_received += len(chunk.data)
                if chunk.done:  # the leader sends no total: the size is known at the end
                    receiving.finish(chunk.offset + len(chunk.data))
                else:
                    receiving.update(chunk.offset + len(chunk.data))
            if rd.snapshot is not None:
                meta = rd.snapshot
                path = directory / ("incoming-" + snapshot_file_name(meta))
                started = time.monotonic()
                await asyncio.to_thread(install_snapshot, self.store, path, meta)
                self.state_machine.reload()
                if self.after_apply is not None:
                    self.after_apply()
                self.applied_conf = meta.conf_state
                path.unlink(missing_ok=True)
                log.info(
                    "installed the leader's snapshot at index %d in %.2fs",
                    meta.index,
                    time.monotonic() - started,
                )
                stats.received += 1
                if self._receiving is not None:
                    seconds = time.monotonic() - self._receiving.started
                    stats.receive_duration.observe_ns(int(seconds * 1e9))
                    self._receiving = None
            batch = self.store.batch()
            if rd.entries:
                self.store.log.append(batch, rd.entries)
            if rd.hard_state is not None:
                self.store.log.set_hard_state(batch, rd.hard_state)
                self._synced_hard_state = rd.hard_state
            await self.writer.submit(batch)
        except Exception as e:  # handed to _after_persist, which stops the node
            error = e
        finally:
            self.installing_snapshot = False
        self._after_persist(rd, error)

    # --- status ------------------------------------------------------------------------------

    @property
    def pending_proposals(self) -> int:
        return len(self._proposals)

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER


def _call_all(callbacks: list[Done], value: Any) -> None:
    for callback in callbacks:
        callback(value)
