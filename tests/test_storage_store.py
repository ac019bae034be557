"""Opening the node store: identity, refusing foreign/locked/corrupt directories, reopening."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from respkv.storage import StorageError, Store
from respkv.storage.keys import ALL_CFS


def test_first_open_records_identity(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db", 1, "cluster-a") as store:
        assert store.node_id == 1
        assert store.cluster_id == "cluster-a"
        assert store.log.load().is_new
    assert set(Rdict.list_cf(str(tmp_path / "db"))) >= set(ALL_CFS)
    with Store.open(tmp_path / "db", 1) as store:
        assert store.cluster_id == "cluster-a"


def test_generated_cluster_id_is_kept(tmp_path: Path) -> None:
    with Store.open(tmp_path, 4) as store:
        generated = store.cluster_id
    assert len(generated) == 32
    with Store.open(tmp_path, 4) as store:
        assert store.cluster_id == generated


def test_wrong_node_id_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path, 3).close()
    with pytest.raises(StorageError, match=r"belongs to node 3, not node 1"):
        Store.open(tmp_path, 1)
    Store.open(tmp_path, 3).close()  # the refused open left the directory usable


def test_wrong_cluster_id_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path, 1, "blue").close()
    with pytest.raises(StorageError, match=r"belongs to cluster 'blue', not 'green'"):
        Store.open(tmp_path, 1, "green")


def test_node_id_zero_is_a_caller_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store.open(tmp_path, 0)


def test_directory_with_other_files_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StorageError, match="not a respkv store: it holds files"):
        Store.open(tmp_path, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_foreign_rocksdb_is_refused(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path), Options(raw_mode=True))
    db[b"k"] = b"v"
    db.close()
    with pytest.raises(StorageError, match="RocksDB database but not a respkv store"):
        Store.open(tmp_path, 1)


def test_file_instead_of_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="is not a directory"):
        Store.open(tmp_path / "f", 1)


def test_corrupt_store_is_refused_cleanly(tmp_path: Path) -> None:
    Store.open(tmp_path, 1).close()
    for manifest in tmp_path.glob("MANIFEST-*"):
        manifest.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(StorageError, match=str(tmp_path)):
        Store.open(tmp_path, 1)


def test_second_open_in_same_process_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path, 1), pytest.raises(StorageError, match="LOCK is held"):
        Store.open(tmp_path, 1)


def test_store_locked_by_another_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from respkv.storage import Store
                store = Store.open({str(tmp_path)!r}, 1)
                print("ready", flush=True)
                sys.stdin.read()
                store.close()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match=r"in use: its RocksDB LOCK is held"):
            Store.open(tmp_path, 1)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    Store.open(tmp_path, 1).close()  # free again once the holder exited


def test_close_releases_the_lock_even_with_objects_alive(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    backend, log = store.keyspace, store.log  # the caller keeps references
    backend.write({b"k": b"v"}, 1)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        backend.get(b"k")
    with Store.open(tmp_path, 1) as again:
        assert again.keyspace.get(b"k") == b"v"
    del log


def test_data_without_identity_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    store.keyspace.write({b"k": b"v"}, 1)
    store.close()
    families = {name: Options(raw_mode=True) for name in ALL_CFS}
    db = Rdict(str(tmp_path), Options(raw_mode=True), column_families=families)
    meta = db.get_column_family("raft_meta")
    del meta[b"identity"]
    meta.close()
    db.close()
    with pytest.raises(StorageError, match="no respkv identity record"):
        Store.open(tmp_path, 1)


def _drop_family(store: Store, name: str) -> None:
    store._cfs.pop(name).close()
    del store._handles[name]
    store._db.drop_column_family(name)


def test_inactive_keyspace_dropped_by_a_crash_is_recreated(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    store.keyspace.write({b"k": b"v"}, 1)
    inactive = store._inactive_keyspace_name()
    _drop_family(store, inactive)  # a crash between drop and re-create
    store.close()
    with Store.open(tmp_path, 1) as store:
        assert store.keyspace.get(b"k") == b"v"
        assert inactive in Rdict.list_cf(str(tmp_path))


def test_leftovers_in_the_inactive_keyspace_are_dropped_on_open(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    store.keyspace.write({b"k": b"v"}, 1)
    inactive = store._inactive_keyspace_name()
    store._cfs[inactive][b"partial"] = b"snapshot"  # an install interrupted before its flip
    store.close()
    with Store.open(tmp_path, 1) as store:
        assert list(store._cfs[inactive].keys()) == []
        assert list(store.keyspace.iterate(b"")) == [(b"k", b"v")]


def test_missing_active_keyspace_is_reported(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    _drop_family(store, store.keyspace.cf_name)
    store.close()
    with pytest.raises(StorageError, match="active keyspace column family 'keyspace' is missing"):
        Store.open(tmp_path, 1)
