"""The Raft log as the core sees it: a compacted prefix plus the entries after it.

The whole uncompacted tail lives in memory (the host compacts it after every snapshot
threshold), so the leader never reads the disk to feed a follower. Entries are *unstable* from
``unstable_from`` on: they still have to be handed to the host to persist.

Invariants: snapshot_index <= applied <= committed <= last_index;
entries[i].index == snapshot_index + 1 + i.
"""

from __future__ import annotations

from .types import Entry, Index, Term


class LogError(AssertionError):
    """A broken invariant: a bug in the core or in the host, never bad input."""


class RaftLog:
    def __init__(
        self, snapshot_index: Index, snapshot_term: Term, entries: list[Entry], applied: Index
    ) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries = entries
        for offset, entry in enumerate(entries):
            if entry.index != snapshot_index + 1 + offset:
                raise LogError(
                    f"log is not contiguous: entry {entry.index} where "
                    f"{snapshot_index + 1 + offset} belongs (log starts after {snapshot_index})"
                )
        # Entries before this index were durable when the node started or have been handed to
        # the host in a Ready.
        self.unstable_from = Index(self.last_index + 1)
        # The last index the host has confirmed durable (advance()).
        self.stable_index = self.last_index
        self.committed = max(applied, snapshot_index)
        self.applied = max(applied, snapshot_index)
        if self.applied > self.last_index:
            raise LogError(f"applied {applied} is beyond the last log index {self.last_index}")

    # --- queries ---------------------------------------------------------------------------

    @property
    def first_index(self) -> Index:
        return Index(self.snapshot_index + 1)

    @property
    def last_index(self) -> Index:
        return Index(self.snapshot_index + len(self.entries))

    @property
    def last_term(self) -> Term:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term(self, index: Index) -> Term | None:
        """The term of the entry at ``index``; None if compacted away or not there yet."""
        if index == self.snapshot_index:
            return self.snapshot_term
        offset = index - self.snapshot_index - 1
        if offset < 0 or offset >= len(self.entries):
            return None
        return self.entries[offset].term

    def match_term(self, index: Index, term: Term) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: Index, last_term: Term) -> bool:
        """Whether a candidate's log is at least as up to date as ours (Raft 5.4.1)."""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def slice(self, lo: Index, hi: Index, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one if any, capped at ``max_bytes`` in total."""
        start = lo - self.snapshot_index - 1
        stop = hi - self.snapshot_index - 1
        if start < 0:
            raise LogError(f"entries from {lo} are compacted (first index {self.first_index})")
        out = self.entries[start:stop]
        size = 0
        for i, entry in enumerate(out):
            size += entry.size_bytes()
            if size > max_bytes and i > 0:
                return out[:i]
        return out

    def find_conflict_by_term(self, index: Index, term: Term) -> tuple[Index, Term]:
        """The largest index <= ``index`` whose term is <= ``term`` (fast backtracking)."""
        index = min(index, self.last_index)
        while index > self.snapshot_index:
            entry_term = self.entries[index - self.snapshot_index - 1].term
            if entry_term <= term:
                return index, entry_term
            index = Index(index - 1)
        return self.snapshot_index, self.snapshot_term

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.unstable_from - self.snapshot_index - 1 :]

    def entries_to_apply(self, max_bytes: int) -> list[Entry]:
        if self.committed <= self.applied:
            return []
        return self.slice(Index(self.applied + 1), Index(self.committed + 1), max_bytes)

    # --- changes ---------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append entries that directly follow the last one (the leader's own proposals)."""
        self.entries.extend(entries)

    def maybe_append(
        self, prev_index: Index, prev_term: Term, entries: tuple[Entry, ...]
    ) -> Index | None:
        """A follower's AppendEntries: None if prev does not match, else the last new index.

        Entries that already match are skipped; the first conflicting one truncates the log
        from there (never below commit: that would be a safety violation).
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = Index(prev_index + len(entries))
        for pos, entry in enumerate(entries):
            existing = self.term(entry.index)
            if existing == entry.term:
                continue
            if entry.index <= self.snapshot_index:
                continue  # already compacted, hence committed and matching
            if existing is not None:
                if entry.index <= self.committed:
                    raise LogError(
                        f"conflict at committed index {entry.index} (commit {self.committed})"
                    )
                self.truncate_from(entry.index)
            self.entries.extend(entries[pos:])
            break
        return last_new

    def truncate_from(self, index: Index) -> None:
        del self.entries[index - self.snapshot_index - 1 :]
        self.unstable_from = min(self.unstable_from, index)
        self.stable_index = min(self.stable_index, Index(index - 1))

    def commit_to(self, index: Index) -> bool:
        if index > self.committed:
            if index > self.last_index:
                raise LogError(f"commit {index} beyond last index {self.last_index}")
            self.committed = index
            return True
        return False

    def compact(self, index: Index) -> None:
        """Drop entries up to ``index`` (which the application has captured in its state)."""
        if index <= self.snapshot_index:
            return
        if index > self.applied:
            raise LogError(f"cannot compact to {index}: applied is only {self.applied}")
        term = self.term(index)
        assert term is not None
        del self.entries[: index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term

    def restore(self, index: Index, term: Term) -> None:
        """Replace everything with a snapshot at (index, term)."""
        self.entries = []
        self.snapshot_index, self.snapshot_term = index, term
        self.committed = self.applied = index
        self.unstable_from = Index(index + 1)
        self.stable_index = index
