"""Snapshots: export from a consistent view, chunked transfer, install (atomic flip), and
recovery from a crash at any moment of an install."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from respkv.raft.types import ConfState, Entry, EntryType, Index, Member, NodeId, SnapshotMeta, Term
from respkv.storage import (
    StorageError,
    Store,
    begin_export,
    export_snapshot,
    install_snapshot,
    iter_snapshot,
    read_chunk,
    read_snapshot_meta,
    write_chunk,
)
from respkv.storage.keys import KEYSPACE_CFS

CONF = ConfState((Member(NodeId(1), False, b"a:1"), Member(NodeId(2), True, b"b:2")))
ROOT = Path(__file__).resolve().parent.parent


def fill(store: Store, n: int, applied: int, prefix: bytes = b"key") -> dict[bytes, bytes]:
    data = {b"%s:%06d" % (prefix, i): os.urandom(i % 50) for i in range(n)}
    data[b""] = b"empty key"
    store.keyspace.write(data, applied)
    return data


def contents(store: Store) -> dict[bytes, bytes]:
    return dict(store.keyspace.iterate(b""))


def append(store: Store, first: int, last: int) -> None:
    batch = store.batch()
    store.log.append(
        batch, [Entry(Term(1), Index(i), EntryType.NORMAL, b"e") for i in range(first, last + 1)]
    )
    store.write(batch, sync=True)


def test_export_install_round_trip(tmp_path: Path) -> None:
    leader = Store.open(tmp_path / "leader", 1)
    data = fill(leader, 2000, applied=42)
    meta = SnapshotMeta(Index(42), Term(3), CONF)
    path = export_snapshot(leader, meta)
    assert path.parent == tmp_path / "leader" / "snapshots"
    assert read_snapshot_meta(path) == meta
    assert dict(iter_snapshot(path)) == data
    leader.close()

    follower = Store.open(tmp_path / "follower", 2)
    fill(follower, 100, applied=5, prefix=b"stale")
    append(follower, 1, 8)
    install_snapshot(follower, path, meta)
    assert follower.keyspace.applied_index == 42
    assert contents(follower) == data
    assert follower.keyspace.get(b"key:000007") == data[b"key:000007"]
    assert follower.keyspace.get(b"stale:000001") is None
    loaded = follower.log.load()
    assert (loaded.snapshot, loaded.entries, loaded.applied) == (meta, [], 42)
    assert follower.log.last_index == 42
    append(follower, 43, 45)  # the log continues after the snapshot
    follower.keyspace.write({b"after": b"1"}, 43)
    follower.close()

    follower = Store.open(tmp_path / "follower", 2)
    assert follower.keyspace.applied_index == 43
    assert contents(follower) == {**data, b"after": b"1"}
    assert [e.index for e in follower.log.load().entries] == [43, 44, 45]
    # The family that held the old keyspace was emptied.
    inactive = follower._inactive_keyspace_name()
    assert list(follower._cfs[inactive].keys()) == []
    # A second install flips back to the first family.
    meta2 = SnapshotMeta(Index(50), Term(4), CONF)
    follower.keyspace.write({}, 50)
    path2 = export_snapshot(follower, meta2, tmp_path / "out")
    before = follower.keyspace.cf_name
    install_snapshot(follower, path2, meta2)
    assert follower.keyspace.cf_name != before
    assert contents(follower) == {**data, b"after": b"1"}
    follower.close()


def test_export_is_a_consistent_view(tmp_path: Path) -> None:
    store = Store.open(tmp_path, 1)
    data = fill(store, 500, applied=10)
    export = begin_export(store, SnapshotMeta(Index(10), Term(1), CONF))
    store.keyspace.write({b"key:000001": None, b"new": b"x", b"key:000002": b"changed"}, 11)
    path = export.write(tmp_path / "snap")
    assert dict(iter_snapshot(path)) == data
    with pytest.raises(StorageError, match="already written"):
        export.write(tmp_path / "again")
    with pytest.raises(ValueError, match="meta is at index 10 but the keyspace at 11"):
        begin_export(store, SnapshotMeta(Index(10), Term(1), CONF))
    store.close()


def test_chunked_transfer_then_install(tmp_path: Path) -> None:
    leader = Store.open(tmp_path / "leader", 1)
    data = fill(leader, 3000, applied=7)
    meta = SnapshotMeta(Index(7), Term(2), CONF)
    source = export_snapshot(leader, meta)
    received = tmp_path / "incoming.rkvsnap"
    offset, done = 0, False
    chunks = 0
    while not done:
        chunk, done = read_chunk(source, offset, 4096)
        if chunks == 3:  # a resent chunk overwrites in place
            write_chunk(received, offset - 4096, read_chunk(source, offset - 4096, 4096)[0])
        offset = write_chunk(received, offset, chunk)
        chunks += 1
    assert received.read_bytes() == source.read_bytes()
    assert chunks > 10
    with Store.open(tmp_path / "follower", 2) as follower:
        install_snapshot(follower, received, meta)
        assert contents(follower) == data
    assert read_chunk(source, offset, 4096) == (b"", True)
    with pytest.raises(ValueError, match="gap"):
        write_chunk(received, offset + 10, b"x")
    write_chunk(received, 0, b"restart")  # offset 0 starts over
    assert received.read_bytes() == b"restart"
    leader.close()


def test_install_refuses_a_damaged_file_and_keeps_the_old_state(tmp_path: Path) -> None:
    leader = Store.open(tmp_path / "leader", 1)
    fill(leader, 1000, applied=9)
    meta = SnapshotMeta(Index(9), Term(1), CONF)
    good = export_snapshot(leader, meta).read_bytes()
    leader.close()

    follower = Store.open(tmp_path / "follower", 2)
    old = fill(follower, 50, applied=3, prefix=b"old")
    append(follower, 1, 4)
    bad = tmp_path / "bad"
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0x40
    cases = {
        "fails its checksum": bytes(damaged),
        "truncated": good[: len(good) - 100],
        "not a respkv snapshot": b"NOTASNAP" + good[8:],
    }
    for message, content in cases.items():
        bad.write_bytes(content)
        with pytest.raises(StorageError, match=message):
            install_snapshot(follower, bad, meta)
        assert contents(follower) == old
        assert follower.keyspace.applied_index == 3
        assert len(follower.log.load().entries) == 4
    bad.write_bytes(good)
    with pytest.raises(StorageError, match="expected index 10 term 1"):
        install_snapshot(follower, bad, SnapshotMeta(Index(10), Term(1), CONF))
    with pytest.raises(StorageError, match="different membership"):
        install_snapshot(follower, bad, SnapshotMeta(Index(9), Term(1), ConfState(())))
    follower.close()
    follower = Store.open(tmp_path / "follower", 2)
    assert contents(follower) == old
    for name in KEYSPACE_CFS:
        if name != follower.keyspace.cf_name:
            assert list(follower._cfs[name].keys()) == []
    follower.close()


INSTALLER = textwrap.dedent(
    """
    import sys
    from respkv.raft.types import ConfState, Index, SnapshotMeta, Term
    from respkv.storage import Store, install_snapshot

    store = Store.open(sys.argv[1], 2)
    print("installing", flush=True)
    install_snapshot(store, sys.argv[2], SnapshotMeta(Index(1000), Term(5), ConfState(())))
    print("installed", flush=True)
    store.close()
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_during_install_leaves_old_or_new_state(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    leader = Store.open(tmp_path / "leader", 1)
    new = {b"n%07d" % i: b"v" * 100 for i in range(150_000)}
    leader.keyspace.write(new, 1000)
    path = export_snapshot(leader, SnapshotMeta(Index(1000), Term(5), ConfState(())))
    leader.close()
    follower = Store.open(tmp_path / "follower", 2)
    old = fill(follower, 300, applied=17, prefix=b"old")
    append(follower, 1, 20)
    follower.close()

    script = tmp_path / "installer.py"
    script.write_text(INSTALLER)
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "follower"), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "installing"
    time.sleep(rng.uniform(0, 1.5))
    os.kill(child.pid, signal.SIGKILL)
    finished = "installed" in child.stdout.read()
    child.wait()

    follower = Store.open(tmp_path / "follower", 2)
    applied = follower.keyspace.applied_index
    loaded = follower.log.load()
    if applied == 1000:
        assert contents(follower) == new
        assert loaded.entries == [] and loaded.snapshot is not None
    else:
        assert not finished
        assert applied == 17
        assert contents(follower) == old
        assert [e.index for e in loaded.entries] == list(range(1, 21))
    for name in KEYSPACE_CFS:  # leftovers of an interrupted install are gone
        if name != follower.keyspace.cf_name:
            assert list(follower._cfs[name].keys()) == []
    follower.close()
