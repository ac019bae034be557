"""Scenario scripts: drive a few Raft cores step by step and print a readable trace.

A scenario file is a sequence of blocks::

    # a comment
    campaign 1
    ----
    <the expected trace>

The command runs; its trace must equal the text under ``----`` up to the next blank line.
Commands (node ids are integers):

    nodes 3 [learners=4,5]     bootstrap a static cluster (learners join with an empty log)
    campaign N                 N starts an election now
    tick N [count]             N's clock advances (tick-all [count]: every live node)
    propose N text             client write on N
    read-index N ctx           ask N for a read index
    transfer N target          leadership transfer
    add-learner N id | promote N id | remove N id     membership change proposed on N
    compact N index            N's application compacts its log up to index
    partition 1 2 | 3          messages between the two sides are dropped
    heal                       undo every partition
    crash N | restart N        a crash loses N's unsynced Ready and unsent messages
    stabilize                  deliver messages and process Readies until nothing moves
    deliver [N [count]]        deliver the messages queued now (to N only; the first count)
    status [N]                 role, term, leader, log and commit of N (or every node)

Messages, persisted entries, applied entries, read states and role changes are printed as they
happen, so behaviour changes show up as a readable diff (rewrite with --rewrite-scenarios).
"""

from __future__ import annotations

import random

from respkv.raft.node import RaftConfig, RaftNode, bootstrap_state, joiner_state
from respkv.raft.types import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    NodeId,
    RaftError,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Role,
    TimeoutNow,
)

from .checks import Checker
from .node import Disk, SimNode, members


def format_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        return f"{e.term}/{e.index} {cc.type.name.lower()} {cc.node_id}"
    return f"{e.term}/{e.index} {e.data.decode()!r}" if e.data else f"{e.term}/{e.index} no-op"


def format_message(m: Message) -> str:
    head = f"{m.sender}->{m.to} "
    match m:
        case AppendEntries():
            entries = ", ".join(format_entry(e) for e in m.entries)
            return head + (
                f"App term={m.term} prev={m.prev_term}/{m.prev_index} commit={m.commit} [{entries}]"
            )
        case AppendEntriesResponse():
            if m.reject:
                return head + (
                    f"AppResp term={m.term} reject={m.index} hint={m.hint_term}/{m.hint_index}"
                )
            return head + f"AppResp term={m.term} index={m.index}"
        case Heartbeat():
            ctx = f" ctx={m.context.hex()}" if m.context else ""
            return head + f"Heartbeat term={m.term} commit={m.commit}{ctx}"
        case HeartbeatResponse():
            ctx = f" ctx={m.context.hex()}" if m.context else ""
            return head + f"HeartbeatResp term={m.term}{ctx}"
        case RequestVote():
            kind = "PreVote" if m.pre_vote else "Vote"
            extra = " transfer" if m.leadership_transfer else ""
            return head + f"{kind} term={m.term} last={m.last_term}/{m.last_index}{extra}"
        case RequestVoteResponse():
            kind = "PreVoteResp" if m.pre_vote else "VoteResp"
            return head + f"{kind} term={m.term} {'granted' if m.granted else 'rejected'}"
        case InstallSnapshot():
            return head + (
                f"Snapshot term={m.term} at={m.meta.term}/{m.meta.index} offset={m.offset} "
                f"len={len(m.data)}{' done' if m.done else ''}"
            )
        case InstallSnapshotResponse():
            flags = (" reject" if m.reject else "") + (" done" if m.done else "")
            return (
                head + f"SnapshotResp term={m.term} at={m.snapshot_index} offset={m.offset}{flags}"
            )
        case TimeoutNow():
            return head + f"TimeoutNow term={m.term}"
        case ReadIndexRequest():
            return head + f"ReadIndex term={m.term} ctx={m.context.decode()}"
        case ReadIndexResponse():
            verdict = " rejected" if m.reject else ""
            return (
                head
                + f"ReadIndexResp term={m.term} ctx={m.context.decode()} index={m.index}{verdict}"
            )
    raise AssertionError(f"unknown message {m!r}")


class Scenario:
    """Deterministic driver: persistence is immediate, delivery is FIFO and explicit."""

    def __init__(
        self,
        raft_class: type[RaftNode] = RaftNode,
        max_message_bytes: int = 1 << 20,
        checker: Checker | None = None,
        pre_vote: bool = True,
        check_quorum: bool = True,
    ) -> None:
        self.raft_class = raft_class
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        self.max_message_bytes = max_message_bytes
        self.checker = checker
        self.nodes: dict[NodeId, SimNode] = {}
        self.queue: list[Message] = []
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.out: list[str] = []

    # --- plumbing ----------------------------------------------------------------------------

    def _node(self, token: str) -> SimNode:
        return self.nodes[NodeId(int(token))]

    def _create(self, node_id: NodeId, disk: Disk) -> None:
        config = RaftConfig(
            node_id,
            election_timeout_ticks=10,
            max_message_bytes=self.max_message_bytes,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            snapshot_chunk_bytes=16,
            snapshot_window_chunks=1,
        )
        self.nodes[node_id] = SimNode(config, disk, random.Random(node_id), 16, self.raft_class)

    def _process(self) -> bool:
        """Handle one Ready on every node that has one; True if anything happened."""
        moved = False
        for node_id, node in sorted(self.nodes.items()):
            rd = node.take_ready()
            if rd is None:
                continue
            moved = True
            if rd.soft_state is not None:
                s = rd.soft_state
                self.out.append(f"{node_id} is {s.role.value} in term {s.term}, leader {s.leader}")
            self.queue += rd.messages
            node.finish_persist()
            if rd.entries:
                listed = ", ".join(format_entry(e) for e in rd.entries)
                self.out.append(f"{node_id} persisted [{listed}]")
            if rd.snapshot is not None:
                self.out.append(
                    f"{node_id} installed snapshot {rd.snapshot.term}/{rd.snapshot.index}"
                )
            if rd.committed_entries:
                listed = ", ".join(format_entry(e) for e in rd.committed_entries)
                self.out.append(f"{node_id} applied [{listed}]")
            if self.checker is not None:
                self.checker.persisted(node, rd)
                if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
                    self.checker.leader_elected(node, rd.soft_state.term, self.nodes.values())
                self.checker.applied(node, rd.committed_entries)
            for rs in rd.read_states:
                verdict = "rejected" if rs.rejected else f"index={rs.index}"
                self.out.append(f"{node_id} read {rs.context.decode()} {verdict}")
            self.queue += rd.messages_after_persist
            node.raft.advance(rd)
            node.persisting = None
        return moved

    def _deliver(self, only: NodeId | None = None, count: int | None = None) -> bool:
        batch = [m for m in self.queue if only is None or m.to == only][:count]
        self.queue = [m for m in self.queue if not any(m is b for b in batch)]
        for m in batch:
            node = self.nodes.get(m.to)
            if node is None or not node.alive or (m.sender, m.to) in self.blocked:
                self.out.append(f"dropped {format_message(m)}")
                continue
            self.out.append(format_message(m))
            node.raft.step(m)
        return bool(batch)

    # --- commands ----------------------------------------------------------------------------

    def run(self, line: str) -> str:
        self.out = []
        words = line.split()
        command, args = words[0], words[1:]
        try:
            getattr(self, "cmd_" + command.replace("-", "_"))(*args)
        except RaftError as e:
            self.out.append(f"error: {e}")
        self._process()
        return "\n".join(self.out)

    def cmd_nodes(self, count: str, learners: str = "") -> None:
        ids = list(range(1, int(count) + 1))
        state = bootstrap_state(members(ids))
        for i in ids:
            self._create(NodeId(i), Disk.from_state(state))
        extra = [int(x) for x in learners.removeprefix("learners=").split(",") if x]
        for i in extra:
            self._create(NodeId(i), Disk.from_state(joiner_state()))

    def cmd_campaign(self, node: str) -> None:
        self._node(node).raft.campaign()

    def cmd_tick(self, node: str, count: str = "1") -> None:
        for _ in range(int(count)):
            self._node(node).raft.tick()

    def cmd_tick_all(self, count: str = "1") -> None:
        for _ in range(int(count)):
            for n in self.nodes.values():
                if n.alive:
                    n.raft.tick()

    def cmd_propose(self, node: str, text: str) -> None:
        index = self._node(node).raft.propose(text.encode())
        self.out.append(f"proposed at {index}")

    def cmd_read_index(self, node: str, context: str) -> None:
        self._node(node).raft.read_index(context.encode())

    def cmd_transfer(self, node: str, target: str) -> None:
        self._node(node).raft.transfer_leader(NodeId(int(target)))

    def _conf(self, node: str, kind: ConfChangeType, target: str) -> None:
        change = ConfChange(kind, NodeId(int(target)), f"node{target}".encode())
        index = self._node(node).raft.propose_conf_change(change)
        self.out.append(f"proposed at {index}")
        if kind is ConfChangeType.ADD_LEARNER and NodeId(int(target)) not in self.nodes:
            self._create(NodeId(int(target)), Disk.from_state(joiner_state()))

    def cmd_add_learner(self, node: str, target: str) -> None:
        self._conf(node, ConfChangeType.ADD_LEARNER, target)

    def cmd_promote(self, node: str, target: str) -> None:
        self._conf(node, ConfChangeType.PROMOTE, target)

    def cmd_remove(self, node: str, target: str) -> None:
        self._conf(node, ConfChangeType.REMOVE, target)

    def cmd_compact(self, node: str, index: str) -> None:
        n = self._node(node)
        n.maybe_snapshot(threshold=0, tail=n.applied - int(index))
        self.out.append(f"{node} log starts after {n.raft.log.snapshot_index}")

    def cmd_partition(self, *spec: str) -> None:
        text = " ".join(spec)
        left, right = ([NodeId(int(x)) for x in side.split()] for side in text.split("|", 1))
        for a in left:
            for b in right:
                self.blocked |= {(a, b), (b, a)}

    def cmd_heal(self) -> None:
        self.blocked = set()

    def cmd_crash(self, node: str) -> None:
        n = self._node(node)
        n.alive = False
        n.persisting = None
        self.queue = [m for m in self.queue if m.sender != n.id]  # died in its send buffers

    def cmd_restart(self, node: str) -> None:
        n = self._node(node)
        self._create(n.id, n.disk)

    def cmd_stabilize(self) -> None:
        for _ in range(1000):
            processed = self._process()
            delivered = self._deliver()
            if not processed and not delivered:
                return
        raise AssertionError("stabilize did not converge")

    def cmd_deliver(self, node: str | None = None, count: str | None = None) -> None:
        self._deliver(NodeId(int(node)) if node else None, int(count) if count else None)

    def cmd_status(self, node: str | None = None) -> None:
        targets = [self._node(node)] if node else [self.nodes[k] for k in sorted(self.nodes)]
        for n in targets:
            r = n.raft
            state = "up" if n.alive else "down"
            conf = ",".join(f"{m.id}{'L' if m.learner else ''}" for m in r.conf.members)
            self.out.append(
                f"{n.id} {state} {r.role.value} term={r.term} leader={r.leader} "
                f"log={r.log.first_index}..{r.log.last_index} commit={r.log.committed} "
                f"applied={n.applied} conf={conf}"
            )


def run_script(text: str, scenario: Scenario | None = None) -> str:
    """Run every command of a scenario file; return the file with traces regenerated."""
    scenario = scenario or Scenario()
    out_lines: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#"):
            out_lines.append(line)
            continue
        out_lines.append(line)
        # Skip the old expectation.
        if i < len(lines) and lines[i] == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                i += 1
        out_lines.append("----")
        trace = scenario.run(line)
        if trace:
            out_lines.append(trace)
        out_lines.append("")
        while i < len(lines) and not lines[i].strip():
            i += 1
    return "\n".join(out_lines).rstrip("\n") + "\n"
