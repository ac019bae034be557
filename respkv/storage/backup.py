"""Backups: a keyspace snapshot file plus a JSON manifest; and restoring one as a new cluster.

A backup is a directory::

    snapshot.rkvsnap   the keyspace at one applied index, written by ``SnapshotExport`` (the
                       same exporter and file format that feed a follower; crc32 inside)
    manifest.json      written last: what the snapshot is (below). A directory without it is
                       an interrupted backup and is never restored.

Manifest (``format_version`` 1)::

    format, format_version, respkv_version, created_at (UTC, ISO 8601), created_at_unix_ms,
    cluster_id, node_id, applied_index, applied_term,
    membership   [{id, learner, context}] as the log records it at applied_index
    key_count    keys of every database (as DBSIZE counts them), keys_per_db {"0": n, ...}
    snapshot     {file, bytes, records, sha256}: the data checksum, over the whole file

``write_backup`` runs in a thread (it is long) on an export taken on the event loop.
``verify_backup`` and ``restore_backup`` are offline tools (the ``respkv restore`` command).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from respkv.kv.layout import META_COUNT, META_DBMAP, META_DEAD, U32, U64
from respkv.raft.types import ConfState, HardState, Index, Member, NodeId, SnapshotMeta

from .errors import StorageError
from .snapshot import SnapshotExport, install_snapshot, iter_snapshot, read_snapshot_meta
from .store import Store

log = logging.getLogger(__name__)

BACKUP_FORMAT = "respkv-backup"
BACKUP_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SNAPSHOT_NAME = "snapshot.rkvsnap"
_HASH_CHUNK_BYTES = 1 << 20
PROGRESS_INTERVAL_S = 2.0


class BackupError(StorageError):
    """A backup cannot be written, read or restored; the message says why in plain words."""


@dataclass(frozen=True, slots=True)
class KeyCounts:
    total: int
    per_db: dict[int, int]  # logical db -> keys, databases with keys only


def keyspace_counts(records: Iterator[tuple[bytes, bytes]]) -> KeyCounts:
    """Key counts from the keyspace's own bookkeeping records, which sort first (``\\x00``):
    reads only the head of ``records``."""
    counts: dict[int, int] = {}
    dead: set[int] = set()
    dbmap: list[int] | None = None
    for key, value in records:
        if not key.startswith(b"\x00"):
            break
        if key.startswith(META_COUNT):
            counts[U32.unpack(key[len(META_COUNT) :])[0]] = U64.unpack(value)[0]
        elif key.startswith(META_DEAD):
            dead.add(U32.unpack(key[len(META_DEAD) :])[0])
        elif key == META_DBMAP:
            dbmap = [U32.unpack_from(value, i)[0] for i in range(4, len(value), 4)]
    live = {phys: n for phys, n in counts.items() if phys not in dead}
    if dbmap is None:  # db i is physical keyspace i until the first SWAPDB or FLUSH
        per_db = {phys: n for phys, n in live.items() if n}
    else:
        per_db = {db: live.get(phys, 0) for db, phys in enumerate(dbmap) if live.get(phys, 0)}
    return KeyCounts(sum(per_db.values()), per_db)


class _Progress:
    """Logs a long operation's progress at most every PROGRESS_INTERVAL_S."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = self.last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S:
            return False
        self.last = now
        return True

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_backup(
    export: SnapshotExport,
    directory: str | os.PathLike[str],
    *,
    cluster_id: str,
    node_id: int,
    membership: list[dict[str, Any]],
    respkv_version: str,
    estimated_bytes: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the backup of ``export`` into ``directory`` (created; must be absent or empty);
    returns the manifest. Blocking and long: run it in a thread."""
    where = Path(directory)
    if where.exists() and (not where.is_dir() or any(where.iterdir())):
        export.close()
        raise BackupError(f"backup directory {where} already exists and is not empty")
    where.mkdir(parents=True, exist_ok=True)
    meta = export.meta
    created = datetime.now(UTC)
    watch = _Progress("backup")
    log.info("backup of index %d (term %d) to %s started", meta.index, meta.term, where)

    def on_progress(written: int, records: int) -> None:
        if progress is not None:
            progress(written, records)
        if watch.due():
            percent = min(99, written * 100 // estimated_bytes) if estimated_bytes else 0
            log.info(
                "backup to %s: %.1f MB written (~%d%%), %d records, %.1f MB/s",
                where,
                written / 1e6,
                percent,
                records,
                written / 1e6 / watch.elapsed,
            )

    snapshot = export.write(where / SNAPSHOT_NAME, on_progress)
    size = snapshot.stat().st_size
    counts = keyspace_counts(iter_snapshot(snapshot))
    records = _record_count(snapshot)
    manifest: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "format_version": BACKUP_FORMAT_VERSION,
        "respkv_version": respkv_version,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "created_at_unix_ms": int(created.timestamp() * 1000),
        "cluster_id": cluster_id,
        "node_id": node_id,
        "applied_index": meta.index,
        "applied_term": meta.term,
        "membership": membership,
        "key_count": counts.total,
        "keys_per_db": {str(db): n for db, n in sorted(counts.per_db.items())},
        "snapshot": {
            "file": SNAPSHOT_NAME,
            "bytes": size,
            "records": records,
            "sha256": file_sha256(snapshot),
        },
    }
    _write_json_atomically(where / MANIFEST_NAME, manifest)
    log.info(
        "backup to %s done: index %d, %d keys, %.1f MB in %.2fs (%.1f MB/s)",
        where,
        meta.index,
        counts.total,
        size / 1e6,
        watch.elapsed,
        size / 1e6 / watch.elapsed,
    )
    return manifest


def _record_count(path: Path) -> int:
    """The record count from a snapshot file's trailer (end mark, 0, count u64, crc u32)."""
    with open(path, "rb") as f:
        f.seek(-12, os.SEEK_END)
        return int(U64.unpack(f.read(8))[0])


def _write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading and verifying -----------------------------------------------------------------


def read_manifest(backup: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the backup directory ``backup``, checked for format and fields."""
    where = Path(backup)
    if not where.is_dir():
        raise BackupError(f"{where} is not a directory (a backup is a directory)")
    path = where / MANIFEST_NAME
    if not path.exists():
        raise BackupError(
            f"{where} has no {MANIFEST_NAME}: it is not a respkv backup, or the backup "
            "was interrupted before it finished"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackupError(f"the manifest {path} is damaged (not readable JSON): {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{path} is not a respkv backup manifest")
    version = manifest.get("format_version")
    if version != BACKUP_FORMAT_VERSION:
        raise BackupError(
            f"the backup {where} has format version {version!r}; this respkv reads version "
            f"{BACKUP_FORMAT_VERSION} only (restore it with the respkv that wrote it, "
            f"{manifest.get('respkv_version', 'unknown')})"
        )
    try:
        snapshot = manifest["snapshot"]
        for name, kind in (("applied_index", int), ("applied_term", int), ("key_count", int)):
            if not isinstance(manifest[name], kind):
                raise TypeError(name)
        if not isinstance(snapshot["file"], str) or "/" in snapshot["file"]:
            raise TypeError("snapshot.file")
        int(snapshot["bytes"]), str(snapshot["sha256"]), int(snapshot["records"])
    except (KeyError, TypeError, ValueError) as e:
        raise BackupError(f"the manifest {path} lacks or garbles the field {e}") from e
    return manifest


def verify_backup(backup: str | os.PathLike[str]) -> dict[str, Any]:
    """Check the manifest and the snapshot file's size and sha256; the manifest."""
    where = Path(backup)
    manifest = read_manifest(where)
    snapshot = manifest["snapshot"]
    path = where / snapshot["file"]
    if not path.exists():
        raise BackupError(f"the backup {where} is damaged: {snapshot['file']} is missing")
    size = path.stat().st_size
    if size != snapshot["bytes"]:
        raise BackupError(
            f"the backup {where} is damaged: {snapshot['file']} holds {size} bytes, the "
            f"manifest says {snapshot['bytes']}"
        )
    digest = file_sha256(path)
    if digest != snapshot["sha256"]:
        raise BackupError(
            f"the backup {where} is damaged: the checksum (sha256) of {snapshot['file']} does "
            "not match its manifest"
        )
    meta = read_snapshot_meta(path)
    if (meta.index, meta.term) != (manifest["applied_index"], manifest["applied_term"]):
        raise BackupError(
            f"the backup {where} is inconsistent: the snapshot is at index {meta.index} term "
            f"{meta.term}, the manifest says {manifest['applied_index']}/"
            f"{manifest['applied_term']}"
        )
    return manifest


# --- restore -------------------------------------------------------------------------------


def restore_backup(
    backup: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    node_id: int,
    member_context: bytes,
    cluster_id: str,
) -> dict[str, Any]:
    """Create in ``data_dir`` (absent or empty) a new single-node cluster ``cluster_id`` whose
    only voter is ``node_id`` and whose state is the backup's keyspace; the manifest.

    The new store starts at the backup's index and term (its log empty, its snapshot meta
    that index with the new membership). On any failure ``data_dir`` is removed again.
    """
    where = Path(backup)
    target = Path(data_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"data dir {target} is not empty: restore only creates a new node; stop the node "
            "and move its data dir away first (or pick another one)"
        )
    manifest = verify_backup(where)
    snapshot = where / manifest["snapshot"]["file"]
    total = int(manifest["snapshot"]["records"])
    meta = SnapshotMeta(
        Index(manifest["applied_index"]),
        read_snapshot_meta(snapshot).term,
        ConfState((Member(NodeId(node_id), False, member_context),)),
    )
    created = not target.exists()
    watch = _Progress("restore")
    log.info(
        "restoring backup %s (index %d, %d keys, %d records) into %s as node %d of new cluster %s",
        where,
        meta.index,
        manifest["key_count"],
        total,
        target,
        node_id,
        cluster_id,
    )

    def on_progress(records: int) -> None:
        if watch.due():
            log.info(
                "restore: %d of %d records (%d%%), %.0f records/s",
                records,
                total,
                records * 100 // max(total, 1),
                records / watch.elapsed,
            )

    try:
        with Store.open(target, node_id, cluster_id) as store:
            install_snapshot(store, snapshot, meta, new_membership=True, progress=on_progress)
            batch = store.batch()
            store.log.set_hard_state(batch, HardState(meta.term, NodeId(0), meta.index))
            store.write(batch, sync=True)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    log.info(
        "restore done: %d keys at index %d in %.2fs; node %d is the only voter of cluster %s",
        manifest["key_count"],
        meta.index,
        watch.elapsed,
        node_id,
        cluster_id,
    )
    return manifest
