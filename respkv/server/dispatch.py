"""Command dispatch: from a parsed argv to an immediate reply, a proposal or a read.

The order of checks is Redis's: unknown command, arity, authentication, then the command. A
write is validated by the state machine before it is proposed, so an invalid command never
enters the Raft log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from respkv.kv import commands as kv_commands
from respkv.kv.errors import unknown_command
from respkv.kv.glob import stringmatch
from respkv.resp.replies import ErrorReply

from . import acl as _acl  # noqa: F401  (registers its commands)
from . import backup as _backup  # noqa: F401  (registers its commands)
from . import commands as server_commands
from . import pubsub as _pubsub  # noqa: F401  (registers its commands)
from . import transactions as _transactions  # noqa: F401  (registers its commands)
from .cluster_commands import cluster_command
from .connection import EXCLUSIVE, READ, WRITE, ClientConnection
from .errors import error_reply
from .runtime import ClusterDown
from .slots import key_slot

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger(__name__)

_NOAUTH = ErrorReply("NOAUTH Authentication required.")
# Server commands that keep their place among a connection's reads and writes (barriers).
_SERVER_KINDS = {b"exec": WRITE, b"publish": WRITE, b"watch": READ}


class Dispatcher:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.handlers = dict(server_commands.HANDLERS)
        self.handlers[b"command"] = command_command
        self.handlers[b"cluster"] = cluster_command
        # Redis Cluster replica behaviour: a follower redirects keyed reads of connections
        # that did not send READONLY to the leader.
        self.moved_reads = server.config.cluster.follower_reads == "moved"
        self._to_flush: list[ClientConnection] = []  # see flush_soon

    def flush_soon(self, conn: ClientConnection) -> None:
        """Flush ``conn`` once the current callback is done. One loop callback flushes every
        connection that an apply batch answered (not one each)."""
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._to_flush.append(conn)

    def _flush_all(self) -> None:
        to_flush, self._to_flush = self._to_flush, []
        for conn in to_flush:
            try:
                conn._flush()
            except Exception:  # one broken connection must not keep the others' replies
                log.exception("flushing the replies of client %s failed", conn.addr)

    def new_connection(self) -> ClientConnection:
        return ClientConnection(self)

    def classify(
        self, conn: ClientConnection, argv: list[bytes]
    ) -> tuple[int, kv_commands.CommandSpec | None]:
        """(WRITE, READ (a linearizable read) or 0 (answered at once), the command's spec)."""
        spec = kv_commands.lookup(argv[0])
        if spec is None:
            return 0, spec
        if spec.server_side:
            if conn.authenticated and spec.arity_ok(len(argv)):
                return _SERVER_KINDS.get(spec.name_bytes, 0), spec
            return 0, spec
        if not spec.arity_ok(len(argv)) or not conn.authenticated:
            return 0, spec
        if spec.is_write:
            return (EXCLUSIVE if spec.blocking else WRITE), spec
        return (0 if conn.readonly else READ), spec

    def dispatch(
        self,
        conn: ClientConnection,
        argv: list[bytes],
        kind: int,
        spec: kv_commands.CommandSpec | None,
    ) -> None:
        """Run one command. ``server.observer`` gets the time it held the loop (SLOWLOG) and
        its time until the reply (at once, or from ``conn.complete`` for a later reply)."""
        started = perf_counter_ns()
        conn.cmd_started_ns = started
        if spec is None:
            self.server.stats.commands_processed += 1
            conn.reply_now(unknown_command(argv))
            return
        conn.cmd_argv = argv
        conn.cmd_spec = spec
        conn.deferred = False
        self._dispatch(conn, argv, kind, spec)
        self.server.observer.command_done(conn, argv, spec, started, conn.deferred)

    def _dispatch(
        self,
        conn: ClientConnection,
        argv: list[bytes],
        kind: int,
        spec: kv_commands.CommandSpec,
    ) -> None:
        server = self.server
        server.stats.commands_processed += 1
        conn.last_command = spec.name_bytes
        if not kind:  # else ``classify`` found the arity right and the client authenticated
            if not spec.arity_ok(len(argv)):
                conn.reply_now(spec.arity_error)
                return
            if not conn.authenticated and spec.name_bytes not in server_commands.NO_AUTH:
                conn.reply_now(_NOAUTH)
                return
        restricted = conn.restricted
        if restricted is not None and spec.name_bytes not in server_commands.NO_AUTH:
            refused = restricted.check(spec, argv)
            if refused is not None:
                conn.reply_now(server.acl.refuse(conn, refused))
                return
        if spec.server_side:
            handler = self.handlers.get(spec.name_bytes)
            if handler is None:
                conn.reply_now(ErrorReply(f"ERR command '{spec.name}' is not supported by respkv"))
                return
            result = handler(server, conn, argv)
            if isinstance(result, server_commands.Deferred):
                slot = conn.reply_later(result.kind)
                result.start(lambda reply: conn.complete(slot, reply))
            elif result is not server_commands.NO_REPLY:
                conn.reply_now(result)
            return
        state_machine = server.state_machine
        runtime = server.runtime
        assert state_machine is not None and runtime is not None
        db = conn.db
        if kind == EXCLUSIVE:
            self._blocking(conn, spec, argv, db)
            return
        if kind == WRITE:
            now_ms = time.time_ns() // 1_000_000
            payload = state_machine.prepare_write(argv, db, now_ms, spec=spec)
            if isinstance(payload, ErrorReply):
                conn.reply_now(payload)
                return
            if not runtime.is_leader and runtime.leader and server.cluster is not None:
                self._write_on_follower(conn, spec, argv, db)
                return
            slot = conn.reply_later(WRITE)
            try:
                runtime.propose(payload, lambda reply: conn.complete(slot, _reply(reply)))
            except ClusterDown as e:
                if server.cluster is None:
                    conn.complete(slot, error_reply(e))
                else:  # leadership may be moving: wait for the new leader (or fail fast)
                    server.cluster.write_or_wait(
                        argv, db, conn.protocol, lambda reply: conn.complete(slot, reply), e
                    )
            return
        if kind == 0:  # READONLY: the local state, no round trip
            conn.reply_now(state_machine.read(argv, db, time.time_ns() // 1_000_000))
            return
        if self.moved_reads and not runtime.is_leader and runtime.leader:
            keys = spec.key_indexes(argv)
            if keys and server.cluster is not None:  # keyless commands are never redirected
                conn.reply_now(server.cluster.moved(key_slot(argv[keys[0]])))
                return
        if runtime.may_read_now():  # the common case on a leader: no callback to build
            conn.reply_now(state_machine.read_spec(spec, argv, db, time.time_ns() // 1_000_000))
            return
        slots: list[Any] = []

        def run_read(result: Any) -> None:
            if isinstance(result, BaseException):
                conn.complete(slots[0], error_reply(result))
            else:
                now_ms = time.time_ns() // 1_000_000
                conn.complete(slots[0], state_machine.read(argv, db, now_ms))

        if runtime.read_barrier(run_read):
            conn.reply_now(state_machine.read(argv, db, time.time_ns() // 1_000_000))
        else:
            slots.append(conn.reply_later(READ))

    def _blocking(
        self, conn: ClientConnection, spec: kv_commands.CommandSpec, argv: list[bytes], db: int
    ) -> None:
        """A blocking pop: validated, then parked on this node (``respkv.server.blocking``)."""
        server = self.server
        state_machine, runtime = server.state_machine, server.runtime
        assert state_machine is not None and runtime is not None
        payload = state_machine.prepare_write(argv, db, time.time_ns() // 1_000_000)
        if isinstance(payload, ErrorReply):
            conn.reply_now(payload)
            return
        cluster = server.cluster
        if (
            not runtime.is_leader
            and runtime.leader
            and cluster is not None
            and server.config.cluster.follower_writes == "moved"
        ):
            conn.reply_now(cluster.moved(key_slot(argv[1])))
            return
        slot = conn.reply_later(EXCLUSIVE)
        canonical = [spec.name_bytes, *argv[1:]]
        server.blocked.block(conn, canonical, db, lambda reply: conn.complete(slot, _reply(reply)))

    def _write_on_follower(
        self, conn: ClientConnection, spec: kv_commands.CommandSpec, argv: list[bytes], db: int
    ) -> None:
        cluster = self.server.cluster
        assert cluster is not None
        self.server.stats.forwarded_writes += 1
        if self.server.config.cluster.follower_writes == "moved":
            keys = spec.key_indexes(argv)
            if keys:  # keyless commands are never redirected
                conn.reply_now(cluster.moved(key_slot(argv[keys[0]])))
                return
        slot = conn.reply_later(WRITE)
        cluster.forward_write(argv, db, conn.protocol, lambda reply: conn.complete(slot, reply))


def _reply(value: Any) -> Any:
    return error_reply(value) if isinstance(value, BaseException) else value


def command_command(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    specs = list(kv_commands.all_commands())
    if len(argv) == 1:
        return [spec.info() for spec in specs]
    sub = argv[1].lower()
    if sub == b"count" and len(argv) == 2:
        return len(specs)
    if sub == b"list":
        return _command_list(specs, argv)
    if sub == b"info":
        found = [kv_commands.lookup(name) for name in argv[2:]] if len(argv) > 2 else specs
        return [spec.info() if spec is not None else None for spec in found]
    if sub == b"docs":
        wanted = [kv_commands.lookup(name) for name in argv[2:]] if len(argv) > 2 else specs
        docs: dict[bytes, Any] = {}
        for spec in wanted:
            if spec is not None:
                docs[spec.name_bytes] = {
                    b"summary": f"The {spec.name.upper()} command.".encode(),
                    b"since": b"1.0.0",
                    b"group": _group(spec).encode(),
                }
        return docs
    if sub == b"getkeys" and len(argv) >= 4:  # Redis: COMMAND GETKEYS has arity -4
        spec = kv_commands.lookup(argv[2])
        if spec is None:
            return ErrorReply("ERR Invalid command specified")
        # Redis's order: no key specs at all, then arity, then no keys in these arguments.
        if not spec.key_specs:
            return ErrorReply("ERR The command has no key arguments")
        if not spec.arity_ok(len(argv) - 2):
            return ErrorReply("ERR Invalid number of arguments specified for command")
        positions = spec.key_indexes(argv[2:])
        if not positions and "no_mandatory_keys" not in spec.flags:
            return ErrorReply("ERR Invalid arguments specified for command")
        return [argv[2 + p] for p in positions]
    if sub == b"help" and len(argv) == 2:
        return [b"COMMAND [<subcommand>]: COUNT, DOCS, GETKEYS, INFO, LIST."]
    if sub in (b"count", b"getkeys", b"help"):
        return server_commands.subcommand_arity(argv)
    return server_commands.unknown_subcommand(argv)


def _command_list(specs: list[kv_commands.CommandSpec], argv: list[bytes]) -> Any:
    """COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]; with subcommands."""
    every = [s for spec in specs for s in (spec, *spec.subcommands)]
    if len(argv) == 2:
        return [spec.name_bytes for spec in every]
    if len(argv) != 5 or argv[2].lower() != b"filterby":
        return server_commands.syntax_error()
    kind, value = argv[3].lower(), argv[4]
    if kind == b"module":
        return []
    if kind == b"aclcat":
        wanted = "@" + value.decode(errors="replace").lower()
        return [spec.name_bytes for spec in every if wanted in spec.acl_categories]
    if kind == b"pattern":
        return [
            spec.name_bytes for spec in every if stringmatch(value, spec.name_bytes, nocase=True)
        ]
    return server_commands.syntax_error()


def _group(spec: kv_commands.CommandSpec) -> str:
    for category in spec.acl_categories:
        name = category.lstrip("@")
        if name in (
            "string",
            "keyspace",
            "connection",
            "server",
            "hash",
            "list",
            "set",
            "sortedset",
            "pubsub",
            "transaction",
        ):
            return {"sortedset": "sorted-set", "keyspace": "generic"}.get(name, name)
    return "server"
