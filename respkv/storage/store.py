"""One RocksDB per node: opening it, its identity, and the objects built on it.

Layout (see ``keys.py``; encodings in ``codec.py``)::

    raft_log       index (u64 BE) -> term, type, data
    raft_meta      identity, hard_state, snapshot, applied_index, keyspace_active
    keyspace       the state machine's ordered byte map (when active)
    keyspace_alt   the other keyspace family: an incoming snapshot is written here, then
                   ``keyspace_active`` flips to it in one synced write

Everything is stored in rocksdict raw mode: keys and values are bytes, never pickled.

The first open records the identity (format version, node id, cluster id). A later open with a
different node or cluster id, a directory that is not a respkv store, a corrupt store, or one
locked by another process all raise ``StorageError`` with a message that names the directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path

from rocksdict import (
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from respkv.raft.types import NodeId

from . import codec
from .errors import StorageError
from .keys import (
    ALL_CFS,
    CF_KEYSPACE,
    CF_KEYSPACE_ALT,
    CF_RAFT_LOG,
    CF_RAFT_META,
    FORMAT_VERSION,
    KEYSPACE_CFS,
    META_IDENTITY,
    META_KEYSPACE_ACTIVE,
    META_REMOVED,
    META_REMOVED_IDS,
)
from .keyspace import KeyspaceBackend
from .raftlog import RaftLogStore

log = logging.getLogger(__name__)

DEFAULT_BLOCK_CACHE_BYTES = 64 << 20


class Store:
    """An open node store. Build it with ``Store.open``; ``close`` it when done."""

    def __init__(self, path: Path, db: Rdict, block_cache_bytes: int) -> None:
        """Private: use ``Store.open``."""
        self.path = path
        self._db = db
        self._block_cache_bytes = block_cache_bytes
        self._cfs: dict[str, Rdict] = {name: db.get_column_family(name) for name in ALL_CFS}
        self._handles: dict[str, ColumnFamily] = {
            name: db.get_column_family_handle(name) for name in ALL_CFS
        }
        self._nosync = WriteOptions()
        self._nosync.sync = False
        self._closed = False
        self.node_id = NodeId(0)
        self.cluster_id = ""
        meta = self._cfs[CF_RAFT_META]
        self.log = RaftLogStore(
            self._cfs[CF_RAFT_LOG], self._handles[CF_RAFT_LOG], meta, self._handles[CF_RAFT_META]
        )
        active = (meta.get(META_KEYSPACE_ACTIVE) or CF_KEYSPACE.encode()).decode()
        if active not in KEYSPACE_CFS:
            raise StorageError(f"data dir {path}: unknown active keyspace family {active!r}")
        self.keyspace = KeyspaceBackend(
            db,
            active,
            self._cfs[active],
            self._handles[active],
            self._handles[CF_RAFT_META],
            self.log.applied_index(),
        )

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        node_id: int,
        cluster_id: str | None = None,
        *,
        block_cache_bytes: int = DEFAULT_BLOCK_CACHE_BYTES,
    ) -> Store:
        """Open (or create) the store of node ``node_id`` in ``path``.

        ``cluster_id``: recorded on first open (generated when None); checked on later opens
        when given.
        """
        if node_id < 1:
            raise ValueError(f"node ids start at 1, got {node_id}")
        where = Path(path)
        families = _check_directory(where)
        db = _open_rocksdb(where, block_cache_bytes)
        store: Store | None = None
        try:
            store = cls(where, db, block_cache_bytes)
            if families is not None and store.keyspace.cf_name not in families:
                raise StorageError(
                    f"data dir {where} is damaged: the active keyspace column family "
                    f"{store.keyspace.cf_name!r} is missing"
                )
            store._check_identity(NodeId(node_id), cluster_id)
            store._empty_inactive_keyspace()
        except BaseException:
            if store is not None:
                store.close()
            else:
                db.close()
            raise
        log.info(
            "opened store %s (node %d, cluster %s, applied %d, log %d..%d)",
            where,
            store.node_id,
            store.cluster_id,
            store.keyspace.applied_index,
            store.log.snapshot_index + 1,
            store.log.last_index,
        )
        return store

    def _check_identity(self, node_id: NodeId, cluster_id: str | None) -> None:
        meta = self._cfs[CF_RAFT_META]
        raw = meta.get(META_IDENTITY)
        if raw is None:
            if not self._is_empty():
                raise StorageError(
                    f"data dir {self.path} holds data but no respkv identity record: "
                    "it is not a respkv store (or its first start was interrupted)"
                )
            cluster_id = cluster_id or uuid.uuid4().hex
            batch = self.batch()
            batch.put(
                META_IDENTITY,
                codec.encode_identity(FORMAT_VERSION, node_id, cluster_id),
                self._handles[CF_RAFT_META],
            )
            self.write(batch, sync=True)
            log.info(
                "initialised store %s for node %d of cluster %s", self.path, node_id, cluster_id
            )
        else:
            version, stored_node, stored_cluster = codec.decode_identity(raw)
            if version > FORMAT_VERSION:
                raise StorageError(
                    f"data dir {self.path} has format version {version}; this respkv reads "
                    f"up to {FORMAT_VERSION}"
                )
            if stored_node != node_id:
                raise StorageError(
                    f"data dir {self.path} belongs to node {stored_node}, not node {node_id}"
                )
            if cluster_id is not None and cluster_id != stored_cluster:
                raise StorageError(
                    f"data dir {self.path} belongs to cluster {stored_cluster!r}, "
                    f"not {cluster_id!r}"
                )
            cluster_id = stored_cluster
        self.node_id = node_id
        self.cluster_id = cluster_id

    def _is_empty(self) -> bool:
        for cf in self._cfs.values():
            it = cf.iter()
            it.seek_to_first()
            if it.valid():
                return False
        return True

    def _empty_inactive_keyspace(self) -> None:
        """An interrupted snapshot install leaves data in the inactive family: drop it."""
        inactive = self._inactive_keyspace_name()
        it = self._cfs[inactive].iter()
        it.seek_to_first()
        if it.valid():
            del it
            log.info("dropping the leftovers of an interrupted snapshot install in %s", inactive)
            self._recreate_cf(inactive)

    def _inactive_keyspace_name(self) -> str:
        return CF_KEYSPACE_ALT if self.keyspace.cf_name == CF_KEYSPACE else CF_KEYSPACE

    def _recreate_cf(self, name: str) -> None:
        """Empty a column family by dropping and re-creating it (O(1), no tombstones)."""
        self._cfs.pop(name).close()
        del self._handles[name]
        self._db.drop_column_family(name)
        self._cfs[name] = self._db.create_column_family(
            name, _cf_options(name, self._block_cache_bytes)
        )
        self._handles[name] = self._db.get_column_family_handle(name)

    def keyspace_bytes_estimate(self) -> int:
        """RocksDB's estimate of the active keyspace's size (progress percentages)."""
        cf = self._cfs[self.keyspace.cf_name]
        total = 0
        for name in ("rocksdb.estimate-live-data-size", "rocksdb.size-all-mem-tables"):
            with contextlib.suppress(Exception):  # an estimate: never worth failing for
                total += cf.property_int_value(name) or 0
        return total

    # --- writing -----------------------------------------------------------------------------

    @staticmethod
    def batch() -> WriteBatch:
        """A new empty batch for ``log`` operations and ``write`` / ``StorageWriter.submit``."""
        return WriteBatch(raw_mode=True)

    def mark_removed(self, reason: str) -> None:
        """Record (durably) that this node was removed from its cluster."""
        batch = self.batch()
        batch.put(META_REMOVED, reason.encode(), self._handles[CF_RAFT_META])
        self.write(batch, sync=True)

    def removed_ids(self) -> set[int]:
        """Ids of the members this node saw removed (written as the removals apply)."""
        raw = self._cfs[CF_RAFT_META].get(META_REMOVED_IDS)
        return {int(x) for x in raw.split(b",") if x} if raw else set()

    def add_removed_id(self, node_id: int) -> None:
        ids = self.removed_ids() | {node_id}
        batch = self.batch()
        batch.put(
            META_REMOVED_IDS, b",".join(b"%d" % i for i in sorted(ids)), self._handles[CF_RAFT_META]
        )
        self.write(batch, sync=False)  # before the apply batch that covers the removal: WAL order

    @property
    def removed(self) -> str | None:
        """Why this node was removed from its cluster, or None."""
        raw = self._cfs[CF_RAFT_META].get(META_REMOVED)
        return None if raw is None else raw.decode(errors="replace")

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        """Write ``batch`` atomically, now, on the calling thread (startup, tests, tools).

        On the event loop use ``StorageWriter`` instead: a synced write waits for the disk.
        """
        self._write_unsynced(batch)
        if sync:
            self._sync_wal()

    def _write_unsynced(self, batch: WriteBatch) -> None:
        # rocksdict holds the GIL for the whole of Rdict.write: keep it to an unsynced write
        # (memtable insert + write(2) to the WAL) and make it durable with _sync_wal.
        try:
            self._db.write(batch, self._nosync)
        except Exception as e:
            raise StorageError(f"write to {self.path} failed: {e}") from e

    def _sync_wal(self) -> None:
        # fdatasync of the WAL; rocksdict releases the GIL here.
        try:
            self._db.flush_wal(True)
        except Exception as e:
            raise StorageError(f"fsync of {self.path} failed: {e}") from e

    # --- closing -----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Flush and close. Stop the ``StorageWriter`` first. Idempotent.

        RocksDB stays open (and locked) while any of its objects is alive: the log store and
        backend handed out are detached here; unfinished ``iterate`` generators must be
        dropped by their owners.
        """
        if self._closed:
            return
        self._closed = True
        self.keyspace._detach()
        self.log._detach()
        self._handles.clear()
        errors = []
        for cf in self._cfs.values():
            try:
                cf.close()
            except Exception as e:
                errors.append(e)
        self._cfs.clear()
        try:
            self._db.close()
        except Exception as e:
            errors.append(e)
        del self._db
        log.info("closed store %s", self.path)
        if errors:
            raise StorageError(f"closing {self.path} failed: {errors[0]}") from errors[0]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- helpers -------------------------------------------------------------------------------

_shared_caches: dict[int, Cache] = {}


def _block_cache(size_bytes: int) -> Cache:
    cache = _shared_caches.get(size_bytes)
    if cache is None:
        cache = _shared_caches[size_bytes] = Cache(size_bytes)
    return cache


def _db_options() -> Options:
    opt = Options(raw_mode=True)
    opt.create_if_missing(True)
    opt.create_missing_column_families(True)
    opt.set_max_background_jobs(2)
    opt.set_keep_log_file_num(4)
    return opt


def _cf_options(name: str, block_cache_bytes: int) -> Options:
    opt = Options(raw_mode=True)
    if name in KEYSPACE_CFS:
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)  # GET of a missing key skips the data blocks
        table.set_block_cache(_block_cache(block_cache_bytes))
        opt.set_block_based_table_factory(table)
    return opt


def _check_directory(path: Path) -> list[str] | None:
    """Refuse, before RocksDB touches it, a directory that is not (yet) a respkv store.

    Returns the column families of an existing store, None for a new one.
    """
    if path.exists() and not path.is_dir():
        raise StorageError(f"data dir {path} is not a directory")
    if not path.exists() or not any(path.iterdir()):
        return None
    if not (path / "CURRENT").is_file():
        raise StorageError(
            f"data dir {path} is not a respkv store: it holds files but no RocksDB database"
        )
    try:
        families = Rdict.list_cf(str(path))
    except Exception as e:
        raise StorageError(f"data dir {path} is not a readable RocksDB database: {e}") from e
    # The keyspace families may be missing: an inactive one is dropped and re-created to
    # empty it, and a crash can fall in between (checked again once the active one is known).
    missing = [name for name in (CF_RAFT_LOG, CF_RAFT_META) if name not in families]
    if missing:
        raise StorageError(
            f"data dir {path} is a RocksDB database but not a respkv store "
            f"(column families {sorted(families)}, missing {missing})"
        )
    return families


def _open_rocksdb(path: Path, block_cache_bytes: int) -> Rdict:
    families = {name: _cf_options(name, block_cache_bytes) for name in ALL_CFS}
    try:
        return Rdict(str(path), _db_options(), column_families=families)
    except Exception as e:
        message = str(e)
        if "corrupt" in message.lower():
            raise StorageError(f"data dir {path} is corrupt: {message}") from e
        if "/LOCK" in message or "lock hold" in message:
            raise StorageError(
                f"data dir {path} is in use: its RocksDB LOCK is held by another process "
                f"(or by another open store in this one): {message}"
            ) from e
        raise StorageError(f"cannot open data dir {path}: {message}") from e
