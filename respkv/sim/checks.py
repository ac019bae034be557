"""Safety checkers for simulated clusters, separate from the simulator that drives them.

Each rule is the Raft paper's (figure 3) or the durability contract:
  election safety       at most one leader per term;
  log matching          two logs with an entry of the same index and term agree on every
                        entry up to it;
  leader completeness   a new leader holds every committed entry;
  state machine safety  every node applies the same entry at each index, and no client
                        operation is applied at two indices (no double INCR);
  durable hard state    a node's durable term never goes backwards and its vote in a term
                        never changes, across restarts included.
"""

from __future__ import annotations

from collections.abc import Iterable

from respkv.raft.types import Entry, EntryType, Index, NodeId, Ready, Term

from .node import Command, SimNode


class SimViolation(AssertionError):
    """A safety or liveness rule was broken."""


class Checker:
    def __init__(self, log_matching_every: int = 64) -> None:
        self.leaders: dict[Term, NodeId] = {}
        self.committed: dict[Index, tuple[Term, bytes]] = {}  # applied anywhere => committed
        self.op_index: dict[int, Index] = {}  # client op -> the index that applied it
        self.durable: dict[NodeId, tuple[Term, NodeId]] = {}  # last durable (term, vote)
        self.log_matching_every = log_matching_every

    def node_started(self, node: SimNode) -> None:
        seen = self.durable.get(node.id)
        if seen is not None:
            term, vote = seen
            if node.raft.term < term:
                raise SimViolation(f"n{node.id} restarted at term {node.raft.term} < {term}")
            if node.raft.term == term and vote and node.raft.vote != vote:
                raise SimViolation(
                    f"n{node.id} restarted in term {term} with vote {node.raft.vote}, "
                    f"but had durably voted for {vote}"
                )

    def persisted(self, node: SimNode, rd: Ready) -> None:
        hs = rd.hard_state
        if hs is None:
            return
        seen = self.durable.get(node.id)
        if seen is not None:
            term, vote = seen
            if hs.term < term:
                raise SimViolation(f"n{node.id} persisted term {hs.term} after {term}")
            if hs.term == term and vote and hs.vote != vote:
                raise SimViolation(
                    f"n{node.id} voted twice in term {term}: for {vote}, then for {hs.vote}"
                )
        self.durable[node.id] = (hs.term, hs.vote)

    def leader_elected(self, node: SimNode, term: Term, nodes: Iterable[SimNode]) -> None:
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            raise SimViolation(f"two leaders in term {term}: n{other} and n{node.id}")
        log = node.raft.log
        for index, (entry_term, _) in self.committed.items():
            if index <= log.snapshot_index:
                continue
            if log.term(index) != entry_term:
                raise SimViolation(
                    f"leader n{node.id} (term {term}) lacks committed entry {index} "
                    f"(term {entry_term}); it has term {log.term(index)}"
                )

    def applied(self, node: SimNode, entries: list[Entry]) -> None:
        committed = self.committed
        for entry in entries:
            known = committed.get(entry.index)
            if known is None:
                committed[entry.index] = (entry.term, entry.data)
                if entry.type is EntryType.NORMAL and entry.data.startswith(b"["):
                    op = Command.decode(entry.data).client_op
                    other = self.op_index.setdefault(op, entry.index)
                    if other != entry.index:
                        raise SimViolation(f"client op {op} applied at {other} and {entry.index}")
            elif known != (entry.term, entry.data):
                raise SimViolation(
                    f"n{node.id} applied entry {entry.index} of term {entry.term}, but term "
                    f"{known[0]} was applied there elsewhere"
                )

    def step(self, nodes: Iterable[SimNode], events: int) -> None:
        if events % self.log_matching_every == 0:
            self.log_matching([n for n in nodes if n.alive])

    def log_matching(self, nodes: list[SimNode]) -> None:
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                _check_pair(a, b)

    def converged(self, nodes: list[SimNode]) -> None:
        self.log_matching(nodes)
        by_applied: dict[Index, tuple[NodeId, dict[str, int]]] = {}
        for node in nodes:
            seen = by_applied.setdefault(node.applied, (node.id, node.data))
            if seen[1] != node.data:
                raise SimViolation(
                    f"n{node.id} and n{seen[0]} applied up to {node.applied} but hold "
                    f"different data: {node.data} vs {seen[1]}"
                )


def _check_pair(a: SimNode, b: SimNode) -> None:
    la, lb = a.raft.log, b.raft.log
    lo = max(la.first_index, lb.first_index)
    hi = min(la.last_index, lb.last_index)
    matched = False
    for index in range(hi, lo - 1, -1):
        ea = la.entries[index - la.snapshot_index - 1]
        eb = lb.entries[index - lb.snapshot_index - 1]
        if matched:
            if ea != eb:
                raise SimViolation(f"log matching: n{a.id} and n{b.id} differ at {index}")
        elif ea.term == eb.term:
            matched = True
            if ea != eb:
                raise SimViolation(f"log matching: n{a.id} and n{b.id} differ at {index}")
