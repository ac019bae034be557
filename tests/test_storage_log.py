"""The Raft log store: append / overwrite / truncate / compact / load, across reopens."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from respkv.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Index,
    Member,
    NodeId,
    SnapshotMeta,
    Term,
)
from respkv.storage import StorageError, Store, codec


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [
        Entry(Term(term), Index(i), EntryType.NORMAL, f"t{term}-{i}".encode())
        for i in range(first, last + 1)
    ]


def conf(*voters: int) -> ConfState:
    return ConfState(tuple(Member(NodeId(v), False, f"host{v}:7000".encode()) for v in voters))


def append(store: Store, new: list[Entry], hard_state: HardState | None = None) -> None:
    batch = store.batch()
    store.log.append(batch, new)
    if hard_state is not None:
        store.log.set_hard_state(batch, hard_state)
    store.write(batch, sync=True)


def reopen(store: Store) -> Store:
    store.close()
    return Store.open(store.path, store.node_id)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "db", 1)


def test_append_and_load_round_trip(store: Store) -> None:
    hs = HardState(Term(2), NodeId(1), Index(3))
    appended = entries(1, 5)
    appended[2] = Entry(Term(1), Index(3), EntryType.CONF_CHANGE, b"\x01cc")
    append(store, appended, hs)
    store = reopen(store)
    loaded = store.log.load()
    assert loaded.hard_state == hs
    assert loaded.snapshot is None
    assert loaded.entries == appended
    assert loaded.applied == 0
    assert store.log.last_index == 5
    store.close()


def test_overwrite_truncates_the_conflicting_suffix(store: Store) -> None:
    append(store, entries(1, 10, term=1))
    append(store, entries(6, 7, term=2))  # a new leader's entries conflict from 6 on
    assert store.log.last_index == 7
    store = reopen(store)
    assert store.log.load().entries == entries(1, 5, term=1) + entries(6, 7, term=2)
    assert store.log.last_index == 7
    append(store, entries(8, 8, term=2))
    assert store.log.load().entries[-1].index == 8
    store.close()


def test_overwrite_and_truncate_in_one_batch(store: Store) -> None:
    batch = store.batch()
    store.log.append(batch, entries(1, 10, term=1))
    store.log.append(batch, entries(4, 5, term=2))
    store.log.append(batch, entries(6, 6, term=3))
    store.write(batch, sync=True)
    expected = entries(1, 3, 1) + entries(4, 5, 2) + entries(6, 6, 3)
    assert reopen(store).log.load().entries == expected


def test_append_rejects_gaps_and_compacted_indexes(store: Store) -> None:
    append(store, entries(1, 3))
    store.keyspace.write({}, 3)
    with pytest.raises(ValueError, match="the log ends at 3"):
        store.log.append(store.batch(), entries(5, 6))
    with pytest.raises(ValueError, match="not contiguous"):
        store.log.append(store.batch(), [*entries(4, 4), *entries(6, 6)])
    batch = store.batch()
    store.log.compact(batch, SnapshotMeta(Index(2), Term(1), conf(1)))
    store.write(batch, sync=True)
    with pytest.raises(ValueError, match="compacted"):
        store.log.append(store.batch(), entries(2, 4))
    store.close()


def test_compact_drops_prefix_and_records_meta(store: Store) -> None:
    append(store, entries(1, 10))
    store.keyspace.write({}, 10)  # compaction follows the applied index
    meta = SnapshotMeta(Index(6), Term(1), conf(1, 2, 3))
    batch = store.batch()
    store.log.compact(batch, meta)
    store.write(batch, sync=True)
    store = reopen(store)
    loaded = store.log.load()
    assert loaded.snapshot == meta
    assert loaded.entries == entries(7, 10)
    assert store.log.entries(Index(7), Index(9)) == entries(7, 8)
    assert store.log.snapshot_index == 6
    assert store.log.last_index == 10
    with pytest.raises(ValueError, match="already at 6"):
        store.log.compact(store.batch(), SnapshotMeta(Index(5), Term(1), conf(1)))
    with pytest.raises(ValueError, match="the log ends at 10"):
        store.log.compact(store.batch(), SnapshotMeta(Index(11), Term(1), conf(1)))
    # Compacting everything leaves an empty log that continues after the snapshot.
    batch = store.batch()
    store.log.compact(batch, SnapshotMeta(Index(10), Term(1), conf(1)))
    store.write(batch, sync=True)
    store = reopen(store)
    assert store.log.load().entries == []
    assert store.log.last_index == 10
    append(store, entries(11, 12))
    assert [e.index for e in reopen(store).log.load().entries] == [11, 12]


def test_hard_state_survives_reopen_and_last_write_wins(store: Store) -> None:
    for term in range(1, 6):
        batch = store.batch()
        store.log.set_hard_state(batch, HardState(Term(term), NodeId(term % 3), Index(term)))
        store.write(batch, sync=True)
    store = reopen(store)
    assert store.log.load().hard_state == HardState(Term(5), NodeId(2), Index(5))
    store.close()


def test_applied_below_snapshot_is_reported(store: Store) -> None:
    append(store, entries(1, 5))
    batch = store.batch()
    store.log.compact(batch, SnapshotMeta(Index(4), Term(1), conf(1)))
    store.write(batch, sync=True)
    with pytest.raises(StorageError, match="applied index 0 is below the snapshot index 4"):
        store.log.load()
    store.close()


def test_gap_in_stored_log_is_reported(store: Store) -> None:
    append(store, entries(1, 5))
    # Simulate damage: remove entry 3 behind the store's back.
    store._cfs["raft_log"].delete(codec.encode_index(3))
    with pytest.raises(StorageError, match="expected entry 3, found 4"):
        store.log.load()
    store.close()


# --- codec -----------------------------------------------------------------------------------

members = st.builds(
    Member, st.integers(1, 2**64 - 1).map(NodeId), st.booleans(), st.binary(max_size=40)
)
conf_states = st.lists(members, max_size=7, unique_by=lambda m: m.id).map(
    lambda ms: ConfState(tuple(sorted(ms, key=lambda m: m.id)))
)
u64 = st.integers(0, 2**64 - 1)


@given(conf_states, u64, u64)
def test_snapshot_meta_codec_round_trip(cs: ConfState, index: int, term: int) -> None:
    meta = SnapshotMeta(Index(index), Term(term), cs)
    assert codec.decode_snapshot_meta(codec.encode_snapshot_meta(meta)) == meta
    assert codec.decode_conf_state(codec.encode_conf_state(cs)) == cs


@given(u64, u64, st.sampled_from(EntryType), st.binary(max_size=100))
def test_entry_codec_round_trip(index: int, term: int, kind: EntryType, data: bytes) -> None:
    entry = Entry(Term(term), Index(index), kind, data)
    assert codec.decode_entry(codec.encode_index(index), codec.encode_entry_value(entry)) == entry


def test_truncated_records_raise_storage_error() -> None:
    meta = codec.encode_snapshot_meta(SnapshotMeta(Index(1), Term(1), conf(1, 2)))
    with pytest.raises(StorageError, match="snapshot meta"):
        codec.decode_snapshot_meta(meta[:-3])
    with pytest.raises(StorageError, match="hard state"):
        codec.decode_hard_state(b"\x00" * 5)
    with pytest.raises(StorageError, match="raft log record"):
        codec.decode_entry(codec.encode_index(1), b"\x00\x01")
