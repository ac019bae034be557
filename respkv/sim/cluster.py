"""A whole cluster of real Raft cores under one seeded random source.

The simulator owns the clock (integer time units; a Raft tick every ``TICK`` units), the network
(delay, reorder, drop, duplicate, symmetric and one-way partitions), the disks (fsync latency;
a crash loses what was not yet synced) and the nemesis (crashes, restarts, partitions,
membership changes, leadership transfers). Clients run a GET/SET/INCR workload and record a
history. The checkers in ``checks.py`` look at every step; the history is checked for
linearizability at the end, after a liveness phase in which every fault is healed.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from respkv.raft.node import RaftConfig, RaftNode, ReadMode, bootstrap_state, joiner_state
from respkv.raft.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Index,
    Message,
    NodeId,
    NotLeader,
    RaftError,
    Role,
    Term,
)

from .checks import Checker, SimViolation
from .linearizability import History, Kind, check
from .node import Command, Disk, SimNode, members

TICK = 10  # time units per Raft tick


@dataclass(frozen=True)
class SimOptions:
    seed: int
    voters: int = 3
    fault_ticks: int = 400  # how long faults are injected
    heal_ticks: int = 300  # bound for the liveness phase
    clients: int = 4
    keys: int = 3
    max_delay: int = 12  # message delay in time units (reorders when > 1)
    drop_rate: float = 0.03
    duplicate_rate: float = 0.02
    nemesis_every_ticks: int = 25
    crashes: bool = True
    partitions: bool = True
    membership: bool = True
    transfers: bool = True
    snapshot_threshold: int = 30
    snapshot_tail: int = 4
    snapshot_chunk_bytes: int = 48
    read_mode: str = "safe"
    bug: str | None = None  # a deliberately wrong rule, to prove the checks can fail

    def command(self) -> str:
        """The command that reproduces this run."""
        base = SimOptions.randomized(self.seed)
        args = [f"--seed {self.seed}"]
        for name in ("voters", "fault_ticks", "clients", "read_mode", "bug"):
            value = getattr(self, name)
            if value != getattr(base, name):
                args.append(f"--{name.replace('_', '-')} {value}")
        return "python -m respkv.sim " + " ".join(args)

    @classmethod
    def randomized(cls, seed: int, **overrides: Any) -> SimOptions:
        """Options whose fault rates vary with the seed, so a sweep explores many regimes."""
        rng = random.Random(seed * 7919)
        opts = cls(
            seed,
            voters=rng.choice([3, 3, 5]),
            max_delay=rng.choice([2, 8, 15, 25]),
            drop_rate=rng.choice([0.0, 0.02, 0.1]),
            duplicate_rate=rng.choice([0.0, 0.02, 0.05]),
            nemesis_every_ticks=rng.choice([15, 25, 40]),
            read_mode=rng.choice(["safe", "safe", "lease"]),
        )
        return replace(opts, **overrides)


class _ForgetfulDisk(Disk):
    """Bug: the vote is not kept across restarts."""

    def load(self):  # type: ignore[no-untyped-def]
        state = super().load()
        return replace(state, hard_state=replace(state.hard_state, vote=NodeId(0)))


class _CommitsOldTerms(RaftNode):
    """Bug: counts replicas of entries of earlier terms toward commit (Raft 5.4.2, figure 8)."""

    def _may_commit_at(self, index: Index) -> bool:
        return self.log.term(index) is not None


@dataclass(order=True)
class _Event:
    time: int
    seq: int
    action: Callable[[], None] = field(compare=False)


@dataclass
class _PendingWrite:
    op_id: int
    node: NodeId
    incarnation: int
    term: Term
    index: Index
    deadline: int


@dataclass
class _PendingRead:
    op_id: int
    key: str
    node: NodeId
    incarnation: int
    deadline: int
    read_index: Index | None = None


class Cluster:
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.now = 0
        self._queue: list[_Event] = []
        self._seq = 0
        self.events = 0
        self.nodes: dict[NodeId, SimNode] = {}
        self.incarnation: dict[NodeId, int] = {}
        self.removed: set[NodeId] = set()
        self.blocked: set[tuple[NodeId, NodeId]] = set()  # (from, to) pairs cut off
        self.next_id = options.voters + 1
        self.checker = Checker()
        self.history = History(clock=lambda: float(self.now))
        self.writes: dict[int, _PendingWrite] = {}
        self.reads: dict[bytes, _PendingRead] = {}
        self.faults_on = True
        self.clients_on = True
        self.drop_rate = options.drop_rate
        self.duplicate_rate = options.duplicate_rate
        self.last_leader: NodeId | None = None
        ids = list(range(1, options.voters + 1))
        initial = bootstrap_state(members(ids))
        for i in ids:
            self._create(NodeId(i), Disk.from_state(initial))

    # --- nodes -----------------------------------------------------------------------------

    def _raft_config(self, node_id: NodeId) -> RaftConfig:
        mode = ReadMode.LEASE if self.options.read_mode == "lease" else ReadMode.SAFE
        return RaftConfig(
            node_id,
            election_timeout_ticks=10,
            heartbeat_ticks=1,
            read_mode=mode,
            max_message_bytes=120,
            max_inflight_messages=4,
            snapshot_chunk_bytes=self.options.snapshot_chunk_bytes,
            snapshot_window_chunks=2,
        )

    def _create(self, node_id: NodeId, disk: Disk) -> None:
        if self.options.bug == "forget-vote" and not isinstance(disk, _ForgetfulDisk):
            disk = _ForgetfulDisk(**vars(disk))
        raft_class = _CommitsOldTerms if self.options.bug == "commit-old-term" else RaftNode
        rng = random.Random(self.rng.getrandbits(64))
        node = SimNode(
            self._raft_config(node_id), disk, rng, self.options.snapshot_chunk_bytes, raft_class
        )
        self.nodes[node_id] = node
        self.incarnation[node_id] = self.incarnation.get(node_id, 0) + 1
        self.checker.node_started(node)
        incarnation = self.incarnation[node_id]
        self._schedule(self.rng.randrange(1, TICK + 1), lambda: self._tick(node_id, incarnation))

    def crash(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        node.alive = False
        self.incarnation[node_id] += 1  # in-flight fsyncs and ticks of the old process die

    def restart(self, node_id: NodeId) -> None:
        if node_id in self.removed or self.nodes[node_id].alive:
            return
        disk = self.nodes[node_id].disk
        disk.incoming = bytearray(disk.incoming)
        self._create(node_id, disk)

    def _alive(self, node_id: NodeId, incarnation: int) -> SimNode | None:
        node = self.nodes.get(node_id)
        if node is None or not node.alive or self.incarnation[node_id] != incarnation:
            return None
        return node

    # --- events ----------------------------------------------------------------------------

    def _schedule(self, delay: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(self.now + delay, self._seq, action))

    def _tick(self, node_id: NodeId, incarnation: int) -> None:
        node = self._alive(node_id, incarnation)
        if node is None:
            return
        node.raft.tick()
        self._schedule(TICK, lambda: self._tick(node_id, incarnation))

    def _send(self, m: Message) -> None:
        if (m.sender, m.to) in self.blocked or self.rng.random() < self.drop_rate:
            return
        copies = 2 if self.rng.random() < self.duplicate_rate else 1
        for _ in range(copies):
            self._schedule(
                self.rng.randrange(1, self.options.max_delay + 1), lambda: self._deliver(m)
            )

    def _deliver(self, m: Message) -> None:
        node = self.nodes.get(m.to)
        if node is None or not node.alive or (m.sender, m.to) in self.blocked:
            return
        node.raft.step(m)

    def _drain(self) -> None:
        """Start a Ready on every node that has one (each persists with its own latency)."""
        for node_id, node in self.nodes.items():
            rd = node.take_ready()
            if rd is None:
                continue
            for m in rd.messages:
                self._send(m)
            incarnation = self.incarnation[node_id]
            self._schedule(
                self.rng.randrange(1, 5), functools.partial(self._persisted, node_id, incarnation)
            )

    def _persisted(self, node_id: NodeId, incarnation: int) -> None:
        node = self._alive(node_id, incarnation)
        if node is None:
            return
        rd = node.finish_persist()
        self.checker.persisted(node, rd)
        for m in rd.messages_after_persist:
            self._send(m)
        if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
            self.checker.leader_elected(node, rd.soft_state.term, self.nodes.values())
        if rd.committed_entries:
            self.checker.applied(node, rd.committed_entries)
            self._retire_removed(rd.committed_entries)
        for rs in rd.read_states:
            pending = self.reads.get(rs.context)
            if pending is None or pending.node != node_id:
                continue
            if rs.rejected:
                self.history.fail(pending.op_id)
                del self.reads[rs.context]
                self._next_op(self._client_of[pending.op_id])
            else:
                pending.read_index = rs.index
        node.raft.advance(rd)
        node.persisting = None
        self._complete_ops(node)
        node.maybe_snapshot(self.options.snapshot_threshold, self.options.snapshot_tail)

    # --- clients ---------------------------------------------------------------------------

    def _client(self, client: int) -> None:
        if not self.clients_on:
            return
        rng = self.rng
        key = f"k{rng.randrange(self.options.keys)}"
        live = [n for n in self.nodes.values() if n.alive]
        if not live:
            self._schedule(TICK, lambda: self._client(client))
            return
        leaders = [n for n in live if n.raft.role is Role.LEADER]
        node = rng.choice(leaders) if leaders and rng.random() < 0.7 else rng.choice(live)
        kind = rng.choice(["get", "get", "set", "incr"])
        if kind == "get":
            self._start_read(client, node, key)
        else:
            self._start_write(client, node, key, kind)

    def _start_write(self, client: int, node: SimNode, key: str, kind: str) -> None:
        value = self.rng.randrange(1, 1_000_000) if kind == "set" else 0
        op_id = self.history.invoke(
            client, key, Kind.SET if kind == "set" else Kind.INCR, value if kind == "set" else None
        )
        command = Command(kind, key, value, op_id)
        try:
            index = node.raft.propose(command.encode())
        except (NotLeader, RaftError):
            self.history.fail(op_id)  # never entered a log: definitely not applied
            self._next_op(client)
            return
        self.writes[op_id] = _PendingWrite(
            op_id, node.id, self.incarnation[node.id], node.raft.term, index, self.now + 60 * TICK
        )
        self._client_of[op_id] = client

    def _start_read(self, client: int, node: SimNode, key: str) -> None:
        op_id = self.history.invoke(client, key, Kind.GET)
        self._client_of[op_id] = client
        if self.options.bug == "stale-read":  # bug: no ReadIndex, just the local state
            self.history.ok(op_id, node.data.get(key))
            self._next_op(client)
            return
        context = op_id.to_bytes(8, "big")
        self.reads[context] = _PendingRead(
            op_id, key, node.id, self.incarnation[node.id], self.now + 30 * TICK
        )
        node.raft.read_index(context)

    _client_of: dict[int, int]

    def _next_op(self, client: int) -> None:
        self._schedule(self.rng.randrange(1, 2 * TICK), lambda: self._client(client))

    def _complete_ops(self, node: SimNode) -> None:
        for op_id, w in list(self.writes.items()):
            if w.node != node.id or node.applied < w.index:
                continue
            del self.writes[op_id]
            if op_id in node.results:
                self.history.ok(op_id, node.results[op_id])
            elif node.applied_terms.get(w.index, w.term) != w.term:
                # Another entry was applied at our index: ours was overwritten, never committed.
                self.history.fail(op_id)
            else:
                # Skipped by a snapshot install, or the proposer restarted: we cannot tell.
                self.history.info(op_id)
            self._next_op(self._client_of[op_id])
        for context, r in list(self.reads.items()):
            if r.node != node.id or r.read_index is None or node.applied < r.read_index:
                continue
            del self.reads[context]
            self.history.ok(r.op_id, node.data.get(r.key))
            self._next_op(self._client_of[r.op_id])

    def _expire_ops(self) -> None:
        """Time out operations whose node died or that took too long."""
        for op_id, w in list(self.writes.items()):
            if self.now >= w.deadline or self._alive(w.node, w.incarnation) is None:
                del self.writes[op_id]
                self.history.info(op_id)  # may or may not have been applied
                self._next_op(self._client_of[op_id])
        for context, r in list(self.reads.items()):
            if self.now >= r.deadline or self._alive(r.node, r.incarnation) is None:
                del self.reads[context]
                self.history.fail(r.op_id)  # a read that never returned has no effect
                self._next_op(self._client_of[r.op_id])
        self._schedule(TICK, self._expire_ops)

    # --- nemesis ---------------------------------------------------------------------------

    def _nemesis(self) -> None:
        if not self.faults_on:
            return
        opts = self.options
        actions: list[Callable[[], None]] = []
        if opts.crashes:
            actions.append(self._crash_some)
        if opts.partitions:
            actions += [self._partition, self._one_way_partition, self._heal]
        if opts.membership:
            actions.append(self._change_membership)
        if opts.transfers:
            actions.append(self._transfer)
        if actions:
            self.rng.choice(actions)()
        self._schedule(opts.nemesis_every_ticks * TICK, self._nemesis)

    def _member_ids(self) -> list[NodeId]:
        return sorted(i for i in self.nodes if i not in self.removed)

    def _crash_some(self) -> None:
        victim = self.rng.choice(self._member_ids())
        if not self.nodes[victim].alive:
            self.restart(victim)
            return
        self.crash(victim)
        self._schedule(self.rng.randrange(3, 30) * TICK, lambda: self.restart(victim))

    def _partition(self) -> None:
        ids = self._member_ids()
        if len(ids) < 2:
            return
        self.rng.shuffle(ids)
        cut = self.rng.randrange(1, len(ids))
        side_a, side_b = ids[:cut], ids[cut:]
        self.blocked = {(a, b) for a in side_a for b in side_b} | {
            (b, a) for a in side_a for b in side_b
        }

    def _one_way_partition(self) -> None:
        ids = self._member_ids()
        if len(ids) < 2:
            return
        a, b = self.rng.sample(ids, 2)
        self.blocked.add((a, b))

    def _heal(self) -> None:
        self.blocked = set()

    def _leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.alive and n.raft.role is Role.LEADER]
        return max(leaders, key=lambda n: n.raft.term) if leaders else None

    def _change_membership(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        conf = leader.raft.conf
        voters, learners = sorted(conf.voters), sorted(conf.learners)
        rng = self.rng
        choice = rng.random()
        change: ConfChange
        if learners and choice < 0.5:
            change = ConfChange(ConfChangeType.PROMOTE, rng.choice(learners))
        elif len(voters) > 3 and choice < 0.75:
            change = ConfChange(ConfChangeType.REMOVE, rng.choice(voters))
        elif len(self.nodes) < 9:
            new_id = NodeId(self.next_id)
            change = ConfChange(ConfChangeType.ADD_LEARNER, new_id, f"node{new_id}".encode())
        else:
            return
        try:
            leader.raft.propose_conf_change(change)
        except RaftError:
            return
        if change.type is ConfChangeType.ADD_LEARNER:
            self.next_id += 1
            self._create(change.node_id, Disk.from_state(joiner_state()))

    def _retire_removed(self, entries: list[Entry]) -> None:
        """A node whose removal has committed is shut down, as a real host does."""
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                change = ConfChange.decode(entry.data)
                if change.type is ConfChangeType.REMOVE and change.node_id not in self.removed:
                    self.removed.add(change.node_id)
                    self.crash(change.node_id)

    def _transfer(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        voters = [v for v in leader.raft.conf.voters if v != leader.id]
        if voters:
            with contextlib.suppress(RaftError):
                leader.raft.transfer_leader(self.rng.choice(voters))

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        """Fault phase, then the liveness phase; raises SimViolation on any broken rule."""
        opts = self.options
        self._client_of = {}
        for client in range(opts.clients):
            self._schedule(self.rng.randrange(1, 5 * TICK), functools.partial(self._client, client))
        self._schedule(opts.nemesis_every_ticks * TICK, self._nemesis)
        self._schedule(TICK, self._expire_ops)
        end_faults = opts.fault_ticks * TICK
        self._run_until(lambda: self.now >= end_faults)
        self._heal_everything()
        deadline = self.now + opts.heal_ticks * TICK
        self._run_until(lambda: self._settled() or self.now >= deadline)
        if not self._settled():
            raise SimViolation(
                f"liveness: no leader committed and caught everyone up within "
                f"{opts.heal_ticks} ticks after healing ({self._describe()})"
            )
        self.checker.converged([n for n in self.nodes.values() if n.alive])
        result = check(self.history.operations(), budget_steps=2_000_000)
        if result.ok is False:
            raise SimViolation(f"history is not linearizable: {result.explanation}")

    def _run_until(self, done: Callable[[], bool]) -> None:
        while self._queue and not done():
            event = heapq.heappop(self._queue)
            self.now = event.time
            event.action()
            self._drain()
            self.events += 1
            self.checker.step(self.nodes.values(), self.events)

    def _heal_everything(self) -> None:
        self.faults_on = False
        self.clients_on = False
        self.blocked = set()
        self.drop_rate = self.duplicate_rate = 0.0
        for node_id in self._member_ids():
            self.restart(node_id)

    def _settled(self) -> bool:
        leader = self._leader()
        if leader is None or leader.raft.log.term(leader.raft.log.committed) != leader.raft.term:
            return False
        target = leader.raft.log.last_index
        if leader.raft.log.committed != target or self.writes:
            return False
        return all(
            self.nodes[m.id].applied == target
            for m in leader.raft.conf.members
            if m.id in self.nodes
        )

    def _describe(self) -> str:
        parts = []
        for node_id, n in sorted(self.nodes.items()):
            state = "up" if n.alive else ("removed" if node_id in self.removed else "down")
            parts.append(
                f"n{node_id}:{state},{n.raft.role.value},t{n.raft.term},"
                f"commit{n.raft.log.committed},applied{n.applied},last{n.raft.log.last_index}"
            )
        return "; ".join(parts)
