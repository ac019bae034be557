"""KeyspaceBackend against the Backend contract: the same behavioural test runs on
MemoryBackend (the reference) and on RocksDB."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.kv.backend import Backend, MemoryBackend
from respkv.storage import KeyspaceBackend, Store


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    store = Store.open(tmp_path / "db", 1)
    yield store.keyspace
    store.close()


def test_typed_as_backend(tmp_path: Path) -> None:
    with Store.open(tmp_path, 1) as store:
        backend: Backend = store.keyspace  # mypy checks the protocol here
        assert isinstance(backend, KeyspaceBackend)


def test_new_backend_is_empty(backend: Backend) -> None:
    assert backend.applied_index == 0
    assert backend.get(b"a") is None
    assert list(backend.iterate(b"")) == []
    assert list(backend.iterate(b"", reverse=True)) == []


def test_get_write_delete(backend: Backend) -> None:
    backend.write({b"a": b"1", b"b": b"2", b"": b"empty key", b"z": b""}, 5)
    assert backend.get(b"a") == b"1"
    assert backend.get(b"") == b"empty key"
    assert backend.get(b"z") == b""  # an empty value is not a missing one
    assert backend.get(b"c") is None
    assert backend.applied_index == 5
    backend.write({b"a": None, b"b": b"22", b"missing": None}, 6)
    assert backend.get(b"a") is None
    assert backend.get(b"b") == b"22"
    assert backend.applied_index == 6
    backend.write({}, 7)  # an apply batch with no changes still records its index
    assert backend.applied_index == 7


KEYS = [b"", b"a", b"a\x00", b"ab", b"b", b"ba", b"c", b"\xff", b"\xff\xff"]


def test_iterate_ranges_both_ways(backend: Backend) -> None:
    backend.write({k: b"v" + k for k in KEYS}, 1)

    def keys(start: bytes, stop: bytes | None, reverse: bool = False) -> list[bytes]:
        return [k for k, _ in backend.iterate(start, stop, reverse=reverse)]

    assert keys(b"", None) == KEYS
    assert keys(b"", None, True) == KEYS[::-1]
    assert keys(b"a", b"b") == [b"a", b"a\x00", b"ab"]
    assert keys(b"a", b"b", True) == [b"ab", b"a\x00", b"a"]
    assert keys(b"a\x00", b"ba") == [b"a\x00", b"ab", b"b"]
    assert keys(b"a\x00", b"ba", True) == [b"b", b"ab", b"a\x00"]
    assert keys(b"aa", b"az") == [b"ab"]
    assert keys(b"aa", b"az", True) == [b"ab"]
    assert keys(b"d", None) == [b"\xff", b"\xff\xff"]
    assert keys(b"d", None, True) == [b"\xff\xff", b"\xff"]
    assert keys(b"c", b"c") == []
    assert keys(b"c", b"c", True) == []
    assert keys(b"x", b"b") == []
    assert keys(b"x", b"b", True) == []
    assert keys(b"", b"a") == [b""]
    assert keys(b"", b"a", True) == [b""]
    assert keys(b"zzz", None) == [b"\xff", b"\xff\xff"]
    assert list(backend.iterate(b"b", b"c")) == [(b"b", b"vb"), (b"ba", b"vba")]


def test_iterate_reads_a_point_in_time_view(tmp_path: Path) -> None:
    # RocksDB only: MemoryBackend copies the key list but reads values live (and raises
    # KeyError for a key deleted mid-iteration), so the contract leaves this unspecified.
    with Store.open(tmp_path, 1) as store:
        backend = store.keyspace
        backend.write({b"a": b"1", b"b": b"2", b"c": b"3"}, 1)
        it = backend.iterate(b"")
        assert next(it) == (b"a", b"1")
        backend.write({b"b": None, b"bb": b"new", b"c": b"33"}, 2)
        assert list(it) == [(b"b", b"2"), (b"c", b"3")]


writes = st.lists(
    st.dictionaries(st.binary(max_size=3), st.one_of(st.none(), st.binary(max_size=4)), max_size=8),
    max_size=6,
)
ranges = st.lists(
    st.tuples(st.binary(max_size=3), st.one_of(st.none(), st.binary(max_size=3)), st.booleans()),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(writes, ranges)
def test_matches_memory_backend(
    batches: list[dict[bytes, bytes | None]], queries: list[tuple[bytes, bytes | None, bool]]
) -> None:
    model = MemoryBackend()
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "db", 1) as store:
        real = store.keyspace
        for index, changes in enumerate(batches, start=1):
            model.write(changes, index)
            real.write(changes, index)
            for key in changes:
                assert real.get(key) == model.get(key)
        assert real.applied_index == model.applied_index
        for start, stop, reverse in queries:
            assert list(real.iterate(start, stop, reverse=reverse)) == list(
                model.iterate(start, stop, reverse=reverse)
            )


def test_applied_index_and_data_are_atomic_across_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    for index in range(1, 201):
        store.keyspace.write({b"counter": str(index).encode(), b"k%d" % index: b"x"}, index)
    store.close()
    store = Store.open(tmp_path, 1)
    applied = store.keyspace.applied_index
    assert applied == 200
    assert store.log.load().applied == 200
    assert store.keyspace.get(b"counter") == str(applied).encode()
    assert len(list(store.keyspace.iterate(b"k"))) == 200
    store.close()
