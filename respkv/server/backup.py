"""Backups of a running node: ``BGSAVE`` and ``RESPKV BACKUP``.

Both take the same consistent backup (``respkv.storage.backup``): first a read barrier (the
ReadIndex round linearizable reads use), so every write the cluster acknowledged before the
command is in the backup, even on a follower; then, on the event loop, a point-in-time view of
the keyspace at the applied index (``NodeRuntime.begin_export``, the exporter that feeds
followers); then, in a thread, the snapshot file, its checksum and the manifest. Writes and
reads go on meanwhile; one backup runs at a time.

``BGSAVE [SCHEDULE]``    Redis's reply at once ("Background saving started"); the backup goes to
                         a new directory under ``Config.backup_dir``; LASTSAVE moves when it is
                         done. Without a leader it backs up this node's applied state (logged).
``RESPKV BACKUP <dir> [LOCAL]``
                         the backup into ``<dir>`` (absolute, absent or empty, on this node's
                         host); the reply, once it is written, is the manifest (JSON). Without
                         a leader it fails (CLUSTERDOWN) unless LOCAL: back up this node's
                         applied state as it is (a cluster that lost its majority).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from respkv import __version__
from respkv.resp.replies import ErrorReply, SimpleString
from respkv.storage.backup import write_backup

from .commands import Deferred, command, syntax_error, unknown_subcommand
from .errors import error_reply
from .runtime import ClusterDown, parse_member_context

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection

log = logging.getLogger(__name__)

_STARTED = SimpleString(b"Background saving started")
_SCHEDULED = SimpleString(b"Background saving scheduled")
_IN_PROGRESS = ErrorReply("ERR Background save already in progress")


class Backups:
    """The node's backup in progress (at most one) and the outcome of the last one."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.task: asyncio.Task[None] | None = None
        self.scheduled = False  # BGSAVE SCHEDULE during a backup: another one after it
        self.last_status = "ok"
        self.last_dir = ""
        self.last_duration_s = -1
        self.bytes_written = 0
        self.estimated_bytes = 0
        self.started_at = 0.0

    @property
    def in_progress(self) -> bool:
        return self.task is not None

    def default_directory(self) -> Path:
        config = self.server.config
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        base = config.backup_dir / f"backup-node{config.cluster.node_id}-{stamp}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    def start(
        self, directory: Path, *, strict: bool, done: Callable[[Any], None] | None = None
    ) -> None:
        """Start a backup into ``directory``; ``done`` gets the manifest (JSON) or an error."""
        assert self.task is None
        self.task = asyncio.get_running_loop().create_task(self._run(directory, strict, done))

    async def wait(self) -> None:
        """Wait for the backup in progress (shutdown: its thread reads the store)."""
        self.scheduled = False
        task = self.task
        if task is not None:
            log.info("waiting for the backup in progress to finish")
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, directory: Path, strict: bool, done: Callable[[Any], None] | None) -> None:
        server = self.server
        self.started_at = time.monotonic()
        self.bytes_written = 0
        self.last_dir = str(directory)
        reply: Any
        try:
            await self._barrier(strict)
            runtime, store = server.runtime, server.store
            if runtime is None or store is None:
                raise ClusterDown("the node is not running")
            export = runtime.begin_export()  # the keyspace view and its meta, now
            membership = []
            for m in export.meta.conf_state.members:
                peer, client, status = parse_member_context(m.context)
                membership.append(
                    {
                        "id": m.id,
                        "learner": m.learner,
                        "peer_address": peer,
                        "client_address": client,
                        "status": status,
                    }
                )
            self.estimated_bytes = store.keyspace_bytes_estimate()

            def progress(written: int, _records: int) -> None:
                self.bytes_written = written

            manifest = await asyncio.to_thread(
                write_backup,
                export,
                directory,
                cluster_id=store.cluster_id,
                node_id=store.node_id,
                membership=membership,
                respkv_version=__version__,
                estimated_bytes=self.estimated_bytes,
                progress=progress,
            )
        except Exception as e:
            self.last_status = "err"
            log.error("backup to %s failed: %s", directory, e)
            reply = (
                error_reply(e)
                if isinstance(e, ClusterDown)
                else ErrorReply(f"ERR backup failed: {e}")
            )
        else:
            self.last_status = "ok"
            self.bytes_written = manifest["snapshot"]["bytes"]
            server.lastsave = int(time.time())
            reply = json.dumps(manifest, indent=2).encode()
        finally:
            self.last_duration_s = int(time.monotonic() - self.started_at)
            self.task = None
        if done is not None:
            done(reply)
        if self.scheduled and not server.stop_requested.is_set():
            self.scheduled = False
            self.start(self.default_directory(), strict=False)

    async def _barrier(self, strict: bool) -> None:
        """Wait until every write acknowledged before now is applied here (a read barrier)."""
        runtime = self.server.runtime
        if runtime is None:
            raise ClusterDown("the node is not running")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def release(result: Any) -> None:
            if not answer.done():
                answer.set_result(result)

        try:
            if runtime.read_barrier(release):
                return
            result = await answer
        except ClusterDown as e:
            result = e
        if isinstance(result, BaseException):
            if strict:
                raise ClusterDown(
                    f"{result}; the backup needs the leader to confirm that it holds every "
                    "acknowledged write (RESPKV BACKUP <dir> LOCAL backs up this node's state "
                    "as it is)"
                )
            log.warning(
                "backup: the cluster could not confirm the latest writes (%s): backing up "
                "this node's applied state as it is",
                result,
            )

    def info_lines(self) -> list[str]:
        running = self.in_progress
        percent = (
            min(99, self.bytes_written * 100 // self.estimated_bytes)
            if running and self.estimated_bytes
            else (100 if not running and self.last_status == "ok" and self.last_dir else 0)
        )
        return [
            f"rdb_bgsave_in_progress:{int(running)}",
            f"rdb_last_bgsave_status:{self.last_status}",
            f"rdb_last_bgsave_time_sec:{self.last_duration_s}",
            f"rdb_current_bgsave_time_sec:"
            f"{int(time.monotonic() - self.started_at) if running else -1}",
            f"respkv_backup_bytes_written:{self.bytes_written}",
            f"respkv_backup_percent:{percent}",
            f"respkv_last_backup_dir:{self.last_dir}",
        ]


@command("bgsave")
def bgsave(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        return syntax_error()
    backups = server.backups
    if backups.in_progress:
        if len(argv) == 2:
            backups.scheduled = True
            return _SCHEDULED
        return _IN_PROGRESS
    backups.start(backups.default_directory(), strict=False)
    return _STARTED


@command("respkv")
def respkv_command(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    if sub == b"help" and len(argv) == 2:
        return [
            b"RESPKV <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"BACKUP <dir> [LOCAL]",
            b"    Write a consistent backup of this node's data into <dir> (an absolute path",
            b"    on this node's host, absent or empty); reply with its manifest (JSON) when",
            b"    done. LOCAL: do not wait for the leader to confirm the latest writes.",
            b"HELP",
            b"    Print this help.",
        ]
    if sub != b"backup":
        return unknown_subcommand(argv)
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3].lower() != b"local"):
        return syntax_error()
    try:
        directory = Path(argv[2].decode())
    except UnicodeDecodeError:
        return ErrorReply("ERR the backup directory must be a UTF-8 path")
    if not directory.is_absolute():
        return ErrorReply("ERR the backup directory must be an absolute path (on this node's host)")
    backups = server.backups
    if backups.in_progress:
        return _IN_PROGRESS
    strict = len(argv) == 3

    def start(done: Callable[[Any], None]) -> None:
        if backups.in_progress:  # another one started since
            done(_IN_PROGRESS)
            return
        backups.start(directory, strict=strict, done=done)

    return Deferred(start)
