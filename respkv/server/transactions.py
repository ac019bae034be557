"""MULTI/EXEC/DISCARD/WATCH/UNWATCH, and submitting log entries that are not client writes.

Theory of operation
-------------------
MULTI puts the connection in queueing mode (``conn.multi``, seen first by ``multi_intercept``):
a command is checked as Redis checks it when queueing (unknown command, arity, auth; a
failure answers its error and makes EXEC answer ``-EXECABORT``), then queued with ``+QUEUED``.
EXEC turns the queue into ONE log entry (``StateMachine.prepare_transaction``), applied
atomically by every node: writes and reads alike run at apply time, so a read sees the
transaction's earlier writes, and a runtime error stays in its place of the reply array.
Commands the server runs itself (PING, ECHO, SELECT, SUBSCRIBE...) are not in the entry: they
run on the client's node once the entry is applied, and their replies take their places in
the array (a SELECT inside the transaction already counts for the data commands after it).

WATCH (after the connection's read barrier, i.e. on what the client could have read) keeps
for each key a fingerprint of its record in the applied state (``StateMachine.fingerprint``:
absent, or a hash of value, type and expiry). EXEC's entry carries (db, key, fingerprint) and
``apply`` answers nil without running anything when any record differs at the entry's stamp,
on every replica alike: so a watched key that expires before EXEC aborts it, as in Redis 7.
One difference from Redis: a string set back to exactly the same bytes and expiry between
WATCH and EXEC does not abort (Redis counts any write as a change).

On a follower, EXEC and PUBLISH are forwarded to the leader like writes (``submit``), as an
internal argv (``#exec`` / ``#publish``) that only the peer channel carries: clients cannot
send names starting with '#'. The leader answers a forwarded EXEC with the encoded reply of
each command (an array of bulk strings), so the follower can place its own commands' replies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import hiredis

from respkv.kv.commands import CommandSpec, lookup
from respkv.kv.errors import unknown_command
from respkv.resp.encoder import encode
from respkv.resp.replies import NULL_ARRAY, OK, QUEUED, ErrorReply, Raw

from .commands import NO_AUTH, Deferred, command, parse_int
from .connection import EXCLUSIVE, READ, WRITE
from .errors import error_reply
from .runtime import ClusterDown

if TYPE_CHECKING:
    from respkv.kv.statemachine import StateMachine

    from .app import Server
    from .connection import ClientConnection

Done = Callable[[Any], None]

EXECABORT = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
_RUN_IN_MULTI = frozenset((b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"))
_NOAUTH = ErrorReply("NOAUTH Authentication required.")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- queueing --------------------------------------------------------------------------------


def multi_intercept(conn: ClientConnection, argv: list[bytes]) -> bool:
    """Queue ``argv`` (True), or let it run now (False: EXEC, DISCARD, MULTI, WATCH...)."""
    assert conn.multi is not None
    spec = lookup(argv[0])
    if spec is None:
        conn.multi_error = True
        conn.reply_now(unknown_command(argv))
        return True
    name = spec.name_bytes
    conn.cmd_argv, conn.cmd_spec = argv, spec  # CLIENT LIST's cmd=, as Redis's c->cmd
    if not spec.arity_ok(len(argv)):
        if name == b"exec":
            _leave_multi(conn)
            conn.reply_now(
                ErrorReply(
                    "EXECABORT Transaction discarded because of: wrong number of arguments "
                    "for 'exec' command"
                )
            )
        else:
            conn.multi_error = True
            conn.reply_now(spec.arity_error)
        return True
    if not conn.authenticated and name not in NO_AUTH:
        conn.multi_error = True
        conn.reply_now(_NOAUTH)
        return True
    restricted = conn.restricted
    if restricted is not None and name not in NO_AUTH:
        refused = restricted.check(spec, argv)
        if refused is not None:
            conn.multi_error = True
            conn.reply_now(conn.server.acl.refuse(conn, refused))
            return True
    if name in _RUN_IN_MULTI:
        return False
    conn.multi.append((argv, spec))
    conn.reply_now(QUEUED)
    return True


def _leave_multi(conn: ClientConnection) -> None:
    conn.multi = None
    conn.multi_error = False
    conn.watches = None
    conn.update_intercept()


@command("multi")
def multi(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if conn.multi is not None:
        return ErrorReply("ERR MULTI calls can not be nested")
    conn.multi = []
    conn.multi_error = False
    conn.update_intercept()
    return OK


@command("discard")
def discard(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if conn.multi is None:
        return ErrorReply("ERR DISCARD without MULTI")
    _leave_multi(conn)
    return OK


@command("unwatch")
def unwatch(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    conn.watches = None
    return OK


@command("watch")
def watch(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if conn.multi is not None:
        return ErrorReply("ERR WATCH inside MULTI is not allowed")
    sm, runtime = server.state_machine, server.runtime
    assert sm is not None
    db, keys = conn.db, argv[1:]

    def take() -> Any:
        now = _now_ms()
        watches = conn.watches if conn.watches is not None else {}
        for key in keys:
            if (db, key) not in watches:  # the first WATCH of a key counts, as in Redis
                watches[(db, key)] = sm.fingerprint(db, key, now)
        conn.watches = watches
        return OK

    if conn.readonly or runtime is None:
        return take()

    def start(done: Done) -> None:
        def ready(error: Any) -> None:
            done(error_reply(error) if isinstance(error, BaseException) else take())

        if runtime.read_barrier(ready):
            done(take())

    return Deferred(start, READ)


# --- EXEC ------------------------------------------------------------------------------------


@command("exec")
def exec_(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if conn.multi is None:
        return ErrorReply("ERR EXEC without MULTI")
    queued, watches, failed = conn.multi, conn.watches, conn.multi_error
    _leave_multi(conn)
    if failed:
        return EXECABORT
    sm = server.state_machine
    assert sm is not None
    # Each step: an index into the entry's replies, or a server command run afterwards here.
    steps: list[int | tuple[list[bytes], CommandSpec]] = []
    commands: list[tuple[list[bytes], int]] = []
    db = conn.db
    for argv_, spec in queued:
        if spec.server_side and spec.name_bytes != b"publish":
            steps.append((argv_, spec))
            if spec.name_bytes == b"select":
                number = parse_int(argv_[1])
                if number is not None and 0 <= number < sm.databases:
                    db = number
        else:
            steps.append(len(commands))
            commands.append((argv_, db))
    watched = [(d, key, fp) for (d, key), fp in (watches or {}).items()]

    def finish(result: Any) -> Any:
        result = from_envelope(result)
        if not isinstance(result, list):  # nil (a watched key changed) or an error
            return result
        return [
            result[step] if isinstance(step, int) else _run_server_command(server, conn, *step)
            for step in steps
        ]

    if not commands and not watched:
        return finish([])
    forward = encode_exec(commands, watched, conn.protocol)

    def start(done: Done) -> None:
        submit(
            server,
            lambda now_ms: sm.prepare_transaction(commands, now_ms, watched),
            forward,
            lambda result: done(finish(result)),
        )

    exclusive = len(commands) != len(steps)  # later data commands wait for its SELECTs
    return Deferred(start, EXCLUSIVE if exclusive else WRITE)


def _run_server_command(
    server: Server, conn: ClientConnection, argv: list[bytes], spec: CommandSpec
) -> Any:
    handler = server.dispatcher.handlers.get(spec.name_bytes)
    if handler is None:
        return ErrorReply(f"ERR command '{spec.name}' is not supported by respkv")
    result = handler(server, conn, argv)
    if isinstance(result, Deferred):
        return ErrorReply(f"ERR '{spec.name}' cannot run inside MULTI in respkv")
    return result


# --- the log path shared by EXEC and PUBLISH -------------------------------------------------


def submit(server: Server, build: Callable[[int], bytes], forward: list[bytes], done: Done) -> None:
    """Propose ``build(now_ms)`` here if this node leads, else send ``forward`` (an internal
    argv, see ``internal_payload``) to the leader. ``done`` gets the state machine's reply
    here, or the leader's encoded reply (``Raw``), or an error reply."""
    runtime, cluster = server.runtime, server.cluster
    assert runtime is not None
    if cluster is not None and not runtime.is_leader and runtime.leader:
        cluster.forward_write(forward, 0, 2, done)
        return

    def applied(value: Any) -> None:
        done(error_reply(value) if isinstance(value, BaseException) else value)

    try:
        runtime.propose(build(_now_ms()), applied)
    except ClusterDown as e:
        if cluster is None:
            done(error_reply(e))
        else:  # leadership may be moving: wait for the new leader (or fail fast)
            cluster.write_or_wait(forward, 0, 2, done, e)


def internal_payload(sm: StateMachine, argv: list[bytes], now_ms: int) -> bytes | ErrorReply:
    """The log payload for an internal argv forwarded by a follower (``#exec``, ``#publish``)."""
    if argv[0] == b"#publish" and len(argv) == 3:
        return sm.prepare_publish(argv[1], argv[2], now_ms)
    if argv[0] in (b"#aclsetuser", b"#acldeluser"):
        return sm.prepare_acl(argv, now_ms)
    if argv[0] == b"#exec":
        try:
            commands, watches, _ = decode_exec(argv)
        except (ValueError, IndexError):
            return ErrorReply("ERR malformed forwarded transaction")
        return sm.prepare_transaction(commands, now_ms, watches)
    return ErrorReply("ERR unknown internal command")


def encode_exec(
    commands: Sequence[tuple[list[bytes], int]],
    watches: Sequence[tuple[int, bytes, bytes]],
    protocol: int,
) -> list[bytes]:
    """``#exec protocol nwatches (db key fingerprint)* (db argc arg*)*`` as one argv."""
    out = [b"#exec", b"%d" % protocol, b"%d" % len(watches)]
    for db, key, fingerprint in watches:
        out += [b"%d" % db, key, fingerprint]
    for argv, db in commands:
        out += [b"%d" % db, b"%d" % len(argv), *argv]
    return out


def decode_exec(
    argv: list[bytes],
) -> tuple[list[tuple[list[bytes], int]], list[tuple[int, bytes, bytes]], int]:
    protocol = int(argv[1])
    count = int(argv[2])
    watches = []
    pos = 3
    for _ in range(count):
        watches.append((int(argv[pos]), argv[pos + 1], argv[pos + 2]))
        pos += 3
    commands = []
    while pos < len(argv):
        db, argc = int(argv[pos]), int(argv[pos + 1])
        if argc < 1 or pos + 2 + argc > len(argv):
            raise ValueError("truncated command")
        commands.append((argv[pos + 2 : pos + 2 + argc], db))
        pos += 2 + argc
    return commands, watches, protocol


def envelope(argv: list[bytes], value: Any) -> Any:
    """The leader's answer to a forwarded internal command: for ``#exec``, each reply encoded
    in the client's protocol, as bulk strings (``from_envelope`` undoes it)."""
    if argv[0] == b"#exec" and isinstance(value, list):
        protocol = int(argv[1])
        return [encode(item, protocol) for item in value]
    return value


def from_envelope(value: Any) -> Any:
    """A reply of ``envelope`` as it came back from the leader (``Raw``) -> reply values."""
    if not isinstance(value, Raw) or value.data[:1] == b"-":
        return value
    reader = hiredis.Reader()
    reader.feed(value.data)
    items = reader.gets()
    if items is None:
        return NULL_ARRAY
    if not isinstance(items, list):
        return ErrorReply("ERR unexpected reply to a forwarded transaction")
    return [Raw(item) for item in items]
