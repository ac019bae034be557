"""Storage: everything that touches rocksdict. One RocksDB per node.

- ``Store.open(path, node_id, cluster_id)``: the node's RocksDB, its identity, and
  ``store.log`` (``RaftLogStore``) and ``store.keyspace`` (``KeyspaceBackend``).
- ``StorageWriter``: the one thread that makes batches durable, with group commit.
- ``snapshot``: export / install / chunked transfer of keyspace snapshots.
"""

from .errors import StorageError
from .keyspace import KeyspaceBackend
from .raftlog import LoadedState, RaftLogStore
from .snapshot import (
    SnapshotExport,
    begin_export,
    export_snapshot,
    install_snapshot,
    iter_snapshot,
    read_chunk,
    read_snapshot_meta,
    write_chunk,
)
from .store import Store
from .writer import DoneCallback, StorageWriter, WriterStats

__all__ = [
    "DoneCallback",
    "KeyspaceBackend",
    "LoadedState",
    "RaftLogStore",
    "SnapshotExport",
    "StorageError",
    "StorageWriter",
    "Store",
    "WriterStats",
    "begin_export",
    "export_snapshot",
    "install_snapshot",
    "iter_snapshot",
    "read_chunk",
    "read_snapshot_meta",
    "write_chunk",
]
