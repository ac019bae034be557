"""The Raft log store: entries in ``raft_log``, hard state and snapshot meta in ``raft_meta``.

Writes are operations added to a caller's ``WriteBatch`` so that "entries + hard state" become
one synced write (through ``StorageWriter``). The store tracks the log's bounds *as of the
operations issued so far*: batches must be written in the order they were filled, which the
single writer thread guarantees. If a write fails the tracked bounds no longer match the disk;
the node must stop (a failed log write is fatal anyway).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from rocksdict import ColumnFamily, Rdict, WriteBatch

from respkv.raft.types import Entry, HardState, Index, SnapshotMeta

from . import codec
from .errors import StorageError
from .keys import META_APPLIED, META_HARD_STATE, META_SNAPSHOT


@dataclass(frozen=True, slots=True)
class LoadedState:
    """Everything the Raft core needs at start."""

    hard_state: HardState | None  # None: never saved (a brand-new node)
    snapshot: SnapshotMeta | None  # None: nothing compacted or installed yet
    entries: list[Entry]  # every entry after the snapshot, contiguous, in order
    applied: Index  # the keyspace reflects every entry up to here

    @property
    def is_new(self) -> bool:
        return self.hard_state is None and self.snapshot is None and not self.entries


class RaftLogStore:
    def __init__(
        self, log: Rdict, log_handle: ColumnFamily, meta: Rdict, meta_handle: ColumnFamily
    ) -> None:
        self._log = log
        self._log_handle = log_handle
        self._meta = meta
        self._meta_handle = meta_handle
        snapshot = self.snapshot_meta()
        # Entries <= snapshot_index are compacted; invariant: snapshot_index <= last_index.
        self._snapshot_index = Index(snapshot.index if snapshot else 0)
        self._last_index = max(self._stored_last_index(), self._snapshot_index)

    # --- reads ---------------------------------------------------------------------------

    @property
    def snapshot_index(self) -> Index:
        return self._snapshot_index

    @property
    def last_index(self) -> Index:
        """The last index once every batch filled so far is written."""
        return self._last_index

    def hard_state(self) -> HardState | None:
        raw = self._meta.get(META_HARD_STATE)
        return None if raw is None else codec.decode_hard_state(raw)

    def snapshot_meta(self) -> SnapshotMeta | None:
        raw = self._meta.get(META_SNAPSHOT)
        return None if raw is None else codec.decode_snapshot_meta(raw)

    def applied_index(self) -> Index:
        raw = self._meta.get(META_APPLIED)
        return Index(0) if raw is None else codec.decode_index(raw)

    def entries(self, lo: Index, hi: Index | None = None) -> list[Entry]:
        """Stored entries with lo <= index < hi, checked to be contiguous."""
        out: list[Entry] = []
        expected = lo
        stop = None if hi is None else codec.encode_index(hi)
        items = cast(
            Iterator[tuple[bytes, bytes]], self._log.items(from_key=codec.encode_index(lo))
        )
        for key, value in items:
            if stop is not None and key >= stop:
                break
            entry = codec.decode_entry(key, value)
            if entry.index != expected:
                raise StorageError(
                    f"raft log has a gap: expected entry {expected}, found {entry.index}"
                )
            out.append(entry)
            expected = Index(expected + 1)
        return out

    def load(self) -> LoadedState:
        snapshot = self.snapshot_meta()
        first = Index((snapshot.index if snapshot else 0) + 1)
        entries = self.entries(first)
        applied = self.applied_index()
        if snapshot is not None and applied < snapshot.index:
            raise StorageError(
                f"applied index {applied} is below the snapshot index {snapshot.index}"
            )
        return LoadedState(self.hard_state(), snapshot, entries, applied)

    # --- operations added to a batch ---------------------------------------------------------

    def append(self, batch: WriteBatch, entries: Sequence[Entry]) -> None:
        """Overwrite the log from ``entries[0].index`` on: stored entries after the last new
        one are deleted (a follower truncating a conflicting suffix)."""
        if not entries:
            return
        first = entries[0].index
        if first <= self._snapshot_index:
            raise ValueError(
                f"cannot append at {first}: entries up to {self._snapshot_index} are compacted"
            )
        if first > self._last_index + 1:
            raise ValueError(f"cannot append at {first}: the log ends at {self._last_index}")
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise ValueError(f"entries are not contiguous at {entry.index}")
        handle = self._log_handle
        put = batch.put
        encode_index = codec.encode_index
        encode_value = codec.encode_entry_value
        for entry in entries:
            put(encode_index(entry.index), encode_value(entry), handle)
        last = entries[-1].index
        if last < self._last_index:
            batch.delete_range(encode_index(last + 1), encode_index(self._last_index + 1), handle)
        self._last_index = last

    def set_hard_state(self, batch: WriteBatch, hard_state: HardState) -> None:
        batch.put(META_HARD_STATE, codec.encode_hard_state(hard_state), self._meta_handle)

    def compact(self, batch: WriteBatch, meta: SnapshotMeta) -> None:
        """Drop every entry <= ``meta.index`` and record ``meta`` (the term of that entry and
        the membership in force there) as the compacted prefix."""
        if meta.index < self._snapshot_index:
            raise ValueError(f"cannot compact to {meta.index}: already at {self._snapshot_index}")
        if meta.index > self._last_index:
            raise ValueError(f"cannot compact to {meta.index}: the log ends at {self._last_index}")
        batch.delete_range(
            codec.encode_index(0), codec.encode_index(meta.index + 1), self._log_handle
        )
        batch.put(META_SNAPSHOT, codec.encode_snapshot_meta(meta), self._meta_handle)
        self._snapshot_index = meta.index

    def _reset(self, batch: WriteBatch, meta: SnapshotMeta) -> None:
        """A snapshot was installed: the log is empty and starts after ``meta.index``."""
        batch.delete_range(codec.encode_index(0), codec.LOG_END_KEY, self._log_handle)
        batch.put(META_SNAPSHOT, codec.encode_snapshot_meta(meta), self._meta_handle)
        self._snapshot_index = meta.index
        self._last_index = meta.index

    def _stored_last_index(self) -> Index:
        it = self._log.iter()
        it.seek_to_last()
        return codec.decode_index(it.key()) if it.valid() else Index(0)

    def _detach(self) -> None:
        del self._log, self._log_handle, self._meta, self._meta_handle
