"""Keyspace snapshots: export to a file, stream it in chunks, install it.

File format (integers big-endian)::

    header   magic b"RKVSNAP1", index u64, term u64, conf_len u32, conf state (codec)
    records  key_len u32, value_len u32, key, value        (in key order; key_len < 2**32-1)
    trailer  0xFFFFFFFF u32, 0 u32, record_count u64, crc32 u32
             (the crc32 is zlib.crc32 of every byte before it)

Export reads a consistent view: a RocksDB iterator is a point-in-time snapshot, taken while
the applied index is checked to equal ``meta.index`` on both sides of its creation (every apply
batch writes data and applied index atomically, and the index only grows).

Install never exposes a half-written keyspace and needs no redo on restart: records go to the
*inactive* keyspace family (in bounded batches, without WAL), that family is flushed to SST
files, then one synced write flips ``keyspace_active`` to it together with the applied index,
the snapshot meta and the deletion of the whole Raft log. A crash before the flip leaves the
old state intact (the partial family is emptied on the next open); a crash after it leaves the
new one. The old family is emptied after the flip (or on the next open).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from rocksdict import WriteBatch, WriteOptions

from respkv.raft.types import Index, SnapshotMeta, Term

from . import codec
from .errors import StorageError
from .keys import CF_RAFT_META, META_APPLIED, META_KEYSPACE_ACTIVE
from .progress import ProgressLog
from .store import Store

log = logging.getLogger(__name__)

MAGIC = b"RKVSNAP1"
_HEADER = struct.Struct(">8sQQI")
_RECORD = struct.Struct(">II")
_END_MARK = 0xFFFFFFFF
_TRAILER = struct.Struct(">IIQ")  # end mark, 0, record count; then the crc32 (u32)
_CRC = struct.Struct(">I")
_FILE_BUFFER_BYTES = 1 << 20
#: Install writes at most this much per WriteBatch, so a big snapshot never builds a big batch.
INSTALL_BATCH_BYTES = 4 << 20


def snapshot_file_name(meta: SnapshotMeta) -> str:
    return f"snapshot-{meta.index:020d}-{meta.term}.rkvsnap"


def encode_header(meta: SnapshotMeta) -> bytes:
    conf = codec.encode_conf_state(meta.conf_state)
    return _HEADER.pack(MAGIC, meta.index, meta.term, len(conf)) + conf


# --- export --------------------------------------------------------------------------------


class SnapshotExport:
    """A consistent view of the keyspace at ``meta.index``, to be written to a file.

    Take it with ``begin_export`` on the thread that applies entries (it is quick); ``write``
    may then run in another thread while applies continue. The view pins RocksDB files until
    written or closed.
    """

    def __init__(self, meta: SnapshotMeta, items: Iterator[tuple[bytes, bytes]]) -> None:
        self.meta = meta
        self._items: Iterator[tuple[bytes, bytes]] | None = items

    def write(
        self,
        path: str | os.PathLike[str],
        progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Write the snapshot file at ``path`` (atomically: temp file, fsync, rename).

        ``progress(bytes_written, records)`` is called after every buffer written (about
        every MB), from the writing thread.
        """
        items = self._items
        if items is None:
            raise StorageError("snapshot export already written or closed")
        self._items = None
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        header = encode_header(self.meta)
        crc = zlib.crc32(header)
        count = 0
        written = len(header)
        pack = _RECORD.pack
        with open(tmp, "wb") as f:
            f.write(header)
            buf = bytearray()
            for key, value in items:
                buf += pack(len(key), len(value))
                buf += key
                buf += value
                count += 1
                if len(buf) >= _FILE_BUFFER_BYTES:
                    crc = zlib.crc32(buf, crc)
                    f.write(buf)
                    written += len(buf)
                    buf.clear()
                    if progress is not None:
                        progress(written, count)
            buf += _TRAILER.pack(_END_MARK, 0, count)
            crc = zlib.crc32(buf, crc)
            f.write(buf)
            f.write(_CRC.pack(crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        log.info(
            "exported snapshot %d/%d: %d keys to %s", self.meta.index, self.meta.term, count, target
        )
        return target

    def close(self) -> None:
        self._items = None


def begin_export(store: Store, meta: SnapshotMeta) -> SnapshotExport:
    """Capture the keyspace now; ``meta`` must describe it (``meta.index`` == applied)."""
    keyspace = store.keyspace
    meta_cf = store._cfs[CF_RAFT_META]
    for _ in range(1000):
        before = meta_cf.get(META_APPLIED)
        items = keyspace._cf.items()  # the iterator (and its point-in-time view) starts here
        if meta_cf.get(META_APPLIED) == before:
            break
    else:
        raise StorageError("could not capture a consistent keyspace view (applies too busy)")
    applied = 0 if before is None else codec.decode_index(before)
    if applied != meta.index:
        raise ValueError(f"snapshot meta is at index {meta.index} but the keyspace at {applied}")
    return SnapshotExport(meta, cast(Iterator[tuple[bytes, bytes]], items))


def export_snapshot(
    store: Store, meta: SnapshotMeta, directory: str | os.PathLike[str] | None = None
) -> Path:
    """Export the keyspace at ``meta`` to ``directory`` (default: ``<data dir>/snapshots``)."""
    where = Path(directory) if directory is not None else store.path / "snapshots"
    where.mkdir(parents=True, exist_ok=True)
    return begin_export(store, meta).write(where / snapshot_file_name(meta))


# --- chunked transfer ----------------------------------------------------------------------


def read_chunk(path: str | os.PathLike[str], offset: int, max_bytes: int) -> tuple[bytes, bool]:
    """Up to ``max_bytes`` from ``offset``, and whether they reach the end of the file."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if offset > size:
            raise ValueError(f"offset {offset} is beyond the snapshot size {size}")
        f.seek(offset)
        data = f.read(max_bytes)
    return data, offset + len(data) >= size


def write_chunk(path: str | os.PathLike[str], offset: int, data: bytes) -> int:
    """Receive a chunk durably (fsynced): offset 0 starts the file over; any other offset
    must not be beyond what is already there (a resent chunk overwrites). Returns the size."""
    target = Path(path)
    if offset == 0:
        mode = "wb"
    else:
        size = target.stat().st_size if target.exists() else 0
        if offset > size:
            raise ValueError(f"chunk at {offset} leaves a gap: {target} holds {size} bytes")
        mode = "r+b"
    with open(target, mode) as f:
        f.seek(offset)
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
        end = f.tell()
    if offset == 0:
        _fsync_dir(target.parent)
    return end


# --- reading a file ------------------------------------------------------------------------


class _Reader:
    """Sequential reader that checksums everything it returns."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self._f = f
        self._path = path
        self.crc = 0

    def read(self, n: int) -> bytes:
        data = self._f.read(n)
        if len(data) != n:
            raise StorageError(f"snapshot file {self._path} is truncated")
        self.crc = zlib.crc32(data, self.crc)
        return data


def _read_header(reader: _Reader, path: Path) -> SnapshotMeta:
    magic, index, term, conf_len = _HEADER.unpack(reader.read(_HEADER.size))
    if magic != MAGIC:
        raise StorageError(f"{path} is not a respkv snapshot file")
    conf = codec.decode_conf_state(reader.read(conf_len))
    return SnapshotMeta(Index(index), Term(term), conf)


def read_snapshot_meta(path: str | os.PathLike[str]) -> SnapshotMeta:
    where = Path(path)
    with open(where, "rb") as f:
        return _read_header(_Reader(f, where), where)


def iter_snapshot(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, bytes]]:
    """Every record of a snapshot file; raises StorageError at the end if the checksum or the
    record count is wrong (so consume it fully before trusting what it yielded)."""
    where = Path(path)
    with open(where, "rb", buffering=_FILE_BUFFER_BYTES) as f:
        reader = _Reader(f, where)
        _read_header(reader, where)
        count = 0
        unpack = _RECORD.unpack
        read = reader.read
        while True:
            key_len, value_len = unpack(read(_RECORD.size))
            if key_len == _END_MARK:
                (expected_count,) = struct.unpack(">Q", read(8))
                computed = reader.crc
                tail = f.read(_CRC.size)
                if len(tail) != _CRC.size or value_len != 0:
                    raise StorageError(f"snapshot file {where} has a damaged trailer")
                (stored_crc,) = _CRC.unpack(tail)
                if stored_crc != computed:
                    raise StorageError(f"snapshot file {where} fails its checksum")
                if expected_count != count:
                    raise StorageError(
                        f"snapshot file {where} holds {count} records, trailer says "
                        f"{expected_count}"
                    )
                if f.read(1):
                    raise StorageError(f"snapshot file {where} has data after its trailer")
                return
            yield read(key_len), read(value_len)
            count += 1


# --- install -------------------------------------------------------------------------------


def install_snapshot(
    store: Store,
    path: str | os.PathLike[str],
    meta: SnapshotMeta,
    *,
    new_membership: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Make the keyspace the snapshot in ``path``, at ``meta``; drop the whole Raft log.

    Blocking and long for a big snapshot: run it in a thread, with no apply (``write``) and no
    log write in flight until it returns. Readers see the old keyspace until the flip.

    ``new_membership``: ``meta.conf_state`` replaces the membership the file records (a
    restore starts a new cluster from a backup); otherwise they must be equal.
    ``progress(records)`` is called after every batch written.
    """
    where = Path(path)
    found = read_snapshot_meta(where)
    if (found.index, found.term) != (meta.index, meta.term):
        raise StorageError(
            f"snapshot file {where} holds index {found.index} term {found.term}, "
            f"expected index {meta.index} term {meta.term}"
        )
    if found.conf_state != meta.conf_state and not new_membership:
        raise StorageError(f"snapshot file {where} holds a different membership than expected")
    keyspace = store.keyspace
    old = keyspace.cf_name
    target = store._inactive_keyspace_name()
    store._recreate_cf(target)  # normally empty already; make sure
    handle = store._handles[target]
    no_wal = WriteOptions()
    # Made durable by the flush below, before the flip. (A property in rocksdict 0.3.29,
    # although its stub declares a method.)
    setattr(no_wal, "disable_wal", True)  # noqa: B010
    batch = WriteBatch(raw_mode=True)
    batch.set_default_column_family(handle)
    pending = 0
    count = 0
    install_log = ProgressLog(log, f"installing snapshot {meta.index}", where.stat().st_size)
    read = 0
    try:
        for key, value in iter_snapshot(where):
            batch.put(key, value)
            size = len(key) + len(value) + 16
            pending += size
            read += size
            count += 1
            if pending >= INSTALL_BATCH_BYTES:
                install_log.update(read)
                store._db.write(batch, no_wal)
                batch = WriteBatch(raw_mode=True)
                batch.set_default_column_family(handle)
                pending = 0
                if progress is not None:
                    progress(count)
        if pending:
            store._db.write(batch, no_wal)
        store._cfs[target].flush(True)
        install_log.finish(read)
    except BaseException:
        store._recreate_cf(target)
        raise
    flip = store.batch()
    flip.put(META_KEYSPACE_ACTIVE, target.encode(), store._handles[CF_RAFT_META])
    flip.put(META_APPLIED, codec.encode_index(meta.index), store._handles[CF_RAFT_META])
    store.log._reset(flip, meta)
    store.write(flip, sync=True)
    keyspace._attach(target, store._cfs[target], handle)
    keyspace._set_applied(meta.index)
    log.info(
        "installed snapshot %d/%d: %d keys from %s (keyspace now in %s)",
        meta.index,
        meta.term,
        count,
        where,
        target,
    )
    store._recreate_cf(old)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
