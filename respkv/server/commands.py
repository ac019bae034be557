"""Commands the server answers itself: connection state, introspection, configuration.

Each handler takes (server, connection, argv) and returns a reply value. Data commands live in
``respkv.kv``; these never touch the keyspace except through the state machine's reads.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from respkv import REDIS_COMPAT_VERSION, __version__
from respkv.resp.replies import OK, PONG, ErrorReply, SimpleString, Verbatim

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection

Handler = Callable[["Server", "ClientConnection", list[bytes]], Any]


class Deferred:
    """A server command's reply that arrives later: ``start(done)`` calls ``done(reply)``."""

    __slots__ = ("kind", "start")

    def __init__(self, start: Callable[[Callable[[Any], None]], None], kind: int = 2) -> None:
        self.start = start
        self.kind = kind  # the connection's barrier kind while it waits (WRITE by default)


HANDLERS: dict[bytes, Handler] = {}
# Commands a client may send before AUTH, as in Redis.
NO_AUTH = {b"auth", b"hello", b"quit", b"reset"}


#: What a handler returns when the client gets no reply at all (SHUTDOWN closes it).
NO_REPLY: Final = object()


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name.encode()] = handler
        return handler

    return register


def syntax_error() -> ErrorReply:
    return ErrorReply("ERR syntax error")


def parse_int(value: bytes) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    if value != str(number).encode() or not -(2**63) <= number < 2**63:
        return None
    return number


def unknown_subcommand(argv: list[bytes]) -> ErrorReply:
    return ErrorReply(
        f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try "
        f"{argv[0].decode(errors='replace').upper()} HELP."
    )


def subcommand_arity(argv: list[bytes]) -> ErrorReply:
    name = f"{argv[0].decode(errors='replace')}|{argv[1].decode(errors='replace')}".lower()
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


# --- connection ------------------------------------------------------------------------------


@command("ping")
def ping(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) > 2:
        return ErrorReply("ERR wrong number of arguments for 'ping' command")
    return argv[1] if len(argv) == 2 else PONG


@command("echo")
def echo(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return argv[1]


@command("quit")
def quit_(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    conn.close_after_flush()
    return OK


@command("select")
def select(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    db = parse_int(argv[1])
    if db is None:
        return ErrorReply("ERR value is not an integer or out of range")
    if not 0 <= db < server.config.server.databases:
        return ErrorReply("ERR DB index is out of range")
    conn.db = db
    return OK


@command("auth")
def auth(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        return syntax_error()
    user, password = (argv[1], argv[2]) if len(argv) == 3 else (b"default", argv[1])
    if len(argv) == 2 and server.acl.users["default"].nopass:
        return ErrorReply(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    found = server.acl.authenticate(user, password, conn)
    if found is None:
        return ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
    server.acl.login(conn, found)
    return OK


@command("hello")
def hello(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    protocol = conn.protocol
    position = 1
    if len(argv) > 1:
        version = parse_int(argv[1])
        if version is None:
            return ErrorReply("ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            return ErrorReply("NOPROTO unsupported protocol version")
        protocol = version
        position = 2
    name: bytes | None = None
    while position < len(argv):
        option = argv[position].lower()
        remaining = len(argv) - position - 1
        if option == b"auth" and remaining >= 2:
            user, password = argv[position + 1], argv[position + 2]
            found = server.acl.authenticate(user, password, conn)
            if found is None:
                return ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
            server.acl.login(conn, found)
            position += 3
        elif option == b"setname" and remaining >= 1:
            name = argv[position + 1]
            if b" " in name or b"\n" in name:
                return ErrorReply(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                )
            position += 2
        else:
            return ErrorReply(
                f"ERR Syntax error in HELLO option '{argv[position].decode(errors='replace')}'"
            )
    if not conn.authenticated:
        return ErrorReply(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
    conn.protocol = protocol
    conn.update_intercept()
    if name is not None:
        conn.name = name
    runtime = server.runtime
    role = "master" if runtime is None or runtime.is_leader else "replica"
    return {
        b"server": b"redis",
        b"version": REDIS_COMPAT_VERSION.encode(),
        b"proto": protocol,
        b"id": conn.id,
        b"mode": b"standalone",
        b"role": role.encode(),
        b"modules": [],
    }


@command("reset")
def reset(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    conn.multi = None
    conn.watches = None
    server.pubsub.remove(conn)
    conn.db = 0
    conn.protocol = 2
    conn.name = b""
    conn.readonly = False
    server.acl.start(conn)
    conn.update_intercept()
    return SimpleString(b"RESET")


@command("readonly")
def readonly(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    conn.readonly = True
    return OK


@command("readwrite")
def readwrite(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    conn.readonly = False
    return OK


@command("asking")
def asking(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """A no-op: ASKING only matters for a slot being migrated, and no slot ever is here (a
    client only sends it after an -ASK redirect, which respkv never sends)."""
    return OK


# --- CLIENT ----------------------------------------------------------------------------------


def client_info_line(server: Server, c: ClientConnection) -> bytes:
    """One CLIENT LIST / CLIENT INFO line, with Redis 7.0's fields in Redis's order."""
    now = time.time()
    qbuf = c.parser.buffered_bytes if hasattr(c.parser, "buffered_bytes") else 0
    pending = len(c._out)
    transport = c.transport
    buffered = transport.get_write_buffer_size() if transport is not None else 0
    argv_mem = sum(len(a) for a in c.cmd_argv) if c.cmd_argv else 0
    multi_mem = sum(len(a) for argv, _ in c.multi for a in argv) if c.multi else 0
    omem = pending + buffered
    fields = [
        f"id={c.id}",
        f"addr={c.addr}",
        f"laddr={c.laddr}",
        f"fd={c.fd}",
        f"name={c.name.decode(errors='replace')}",
        f"age={int(now - c.created_at)}",
        f"idle={(time.perf_counter_ns() - c.cmd_started_ns) // 1_000_000_000}",
        "flags=" + _client_flags(c),
        f"db={c.db}",
        f"sub={len(c.channels)}",
        f"psub={len(c.patterns)}",
        "ssub=0",
        f"multi={-1 if c.multi is None else len(c.multi)}",
        f"qbuf={qbuf}",
        f"qbuf-free={max(0, 65536 - qbuf)}",
        f"argv-mem={argv_mem}",
        f"multi-mem={multi_mem}",
        "rbs=65536",
        f"rbp={qbuf}",
        f"obl={pending}",
        f"oll={len(c._slots)}",
        f"omem={omem}",
        f"tot-mem={65536 + qbuf + argv_mem + multi_mem + omem}",
        "events=r" + ("w" if pending or buffered else ""),
        f"cmd={_command_name(c)}",
        f"user={c.user}",
        "redir=-1",
        f"resp={c.protocol}",
        f"lib-name={c.lib_name.decode(errors='replace')}",
        f"lib-ver={c.lib_version.decode(errors='replace')}",
    ]
    return " ".join(fields).encode()


def _command_name(c: ClientConnection) -> str:
    """The last command as Redis names it: ``client|list`` for a subcommand, ``NULL`` before
    the first."""
    spec = c.cmd_spec
    if spec is None:
        return "NULL"
    if spec.subcommands and len(c.cmd_argv) > 1:
        sub = c.cmd_argv[1].decode(errors="replace").lower()
        for s in spec.subcommands:
            if s.name == f"{spec.name}|{sub}":
                return s.name
    return spec.name


def _client_flags(c: ClientConnection) -> str:
    flags = ("r" if c.readonly else "") + ("x" if c.multi is not None else "")
    flags += "P" if c.channels or c.patterns else ""
    return flags or "N"


@command("client")
def client(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) < 2:
        return ErrorReply("ERR wrong number of arguments for 'client' command")
    sub = argv[1].lower()
    if sub == b"id" and len(argv) == 2:
        return conn.id
    if sub == b"getname" and len(argv) == 2:
        return conn.name or None
    if sub == b"setname" and len(argv) == 3:
        name = argv[2]
        if any(ch <= 32 or ch > 126 for ch in name):
            return ErrorReply(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        conn.name = name
        return OK
    if sub == b"setinfo" and len(argv) == 4:
        attr, value = argv[2].lower(), argv[3]
        if attr == b"lib-name":
            conn.lib_name = value
        elif attr == b"lib-ver":
            conn.lib_version = value
        else:
            return ErrorReply(f"ERR Unrecognized option '{argv[2].decode(errors='replace')}'")
        return OK
    if sub == b"info" and len(argv) == 2:
        return Verbatim(b"txt", client_info_line(server, conn) + b"\n")
    if sub == b"list":
        return _client_list(server, argv)
    if sub == b"kill" and len(argv) >= 3:
        return _client_kill(server, conn, argv)
    if sub in (b"no-evict", b"no-touch", b"reply") and len(argv) == 3:
        allowed = (b"on", b"off", b"skip") if sub == b"reply" else (b"on", b"off")
        return OK if argv[2].lower() in allowed else syntax_error()
    if sub == b"help":
        return [
            b"CLIENT <subcommand> [<arg> ...]. Subcommands are: ID, GETNAME, SETNAME, "
            b"SETINFO, INFO, LIST, KILL."
        ]
    if sub in (b"id", b"getname", b"setname", b"setinfo", b"info", b"kill"):
        return subcommand_arity(argv)
    return unknown_subcommand(argv)


# Client types of CLIENT LIST/KILL TYPE: respkv has no replication clients, so a client is
# "pubsub" while it holds a subscription (Redis's P flag, RESP2 or RESP3), else "normal".
_CLIENT_TYPES = (b"normal", b"master", b"slave", b"replica", b"pubsub")


def _client_type(c: ClientConnection) -> bytes:
    return b"pubsub" if c.channels or c.patterns else b"normal"


def _unknown_client_type(name: bytes) -> ErrorReply:
    return ErrorReply(f"ERR Unknown client type '{name.decode(errors='replace')}'")


def _client_list(server: Server, argv: list[bytes]) -> Any:
    clients = list(server.clients.values())
    if len(argv) == 4 and argv[2].lower() == b"type":
        if argv[3].lower() not in _CLIENT_TYPES:
            return _unknown_client_type(argv[3])
        wanted_type = argv[3].lower()
        clients = [c for c in clients if _client_type(c) == wanted_type]
    elif len(argv) > 3 and argv[2].lower() == b"id":
        clients = []
        for raw in argv[3:]:
            wanted = parse_int(raw)
            if wanted is None:
                return ErrorReply("ERR Invalid client ID")
            found = server.clients.get(wanted)
            if found is not None:
                clients.append(found)
    elif len(argv) != 2:
        return syntax_error()
    return Verbatim(b"txt", b"".join(client_info_line(server, c) + b"\n" for c in clients))


def _client_kill(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        target = argv[2].decode(errors="replace")
        for c in list(server.clients.values()):
            if c.addr == target:
                c.close_after_flush() if c is conn else c.kill()
                return OK
        return ErrorReply("ERR No such client")
    # New form: filters (all must match), SKIPME yes by default, as in Redis 7.0.
    wanted: dict[bytes, bytes] = {}
    client_type: bytes | None = None
    skipme = True
    position = 2
    while position < len(argv):
        key = argv[position].lower()
        if position + 1 >= len(argv):
            return syntax_error()
        value = argv[position + 1]
        if key == b"id":
            number = parse_int(value)
            if number is None or number < 1:
                return ErrorReply("ERR client-id should be greater than 0")
        elif key == b"type":
            if value.lower() not in _CLIENT_TYPES:
                return _unknown_client_type(value)
            client_type = value.lower()
        elif key == b"user":
            if value.decode(errors="replace") not in server.acl.users:
                return ErrorReply(f"ERR No such user '{value.decode(errors='replace')}'")
        elif key == b"skipme":
            if value.lower() not in (b"yes", b"no"):
                return syntax_error()
            skipme = value.lower() == b"yes"
        elif key not in (b"addr", b"laddr"):
            return syntax_error()
        wanted[key] = value
        position += 2
    killed = 0
    for c in list(server.clients.values()):
        fields = {
            b"id": str(c.id).encode(),
            b"addr": c.addr.encode(),
            b"laddr": c.laddr.encode(),
            b"user": c.user.encode(),
        }
        if (client_type is not None and _client_type(c) != client_type) or (skipme and c is conn):
            continue
        if any(fields[key] != value for key, value in wanted.items() if key in fields):
            continue
        killed += 1
        c.close_after_flush() if c is conn else c.kill()
    return killed


# --- server ----------------------------------------------------------------------------------


# --- SLOWLOG and LATENCY ---------------------------------------------------------------------


@command("slowlog")
def slowlog(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """SLOWLOG GET [count] | LEN | RESET | HELP. Durations are the time a command held the
    event loop (as Redis's execution time): not the wait for replication and the fsync."""
    observer = server.observer
    if len(argv) < 2:
        return ErrorReply("ERR wrong number of arguments for 'slowlog' command")
    sub = argv[1].lower()
    if sub == b"get" and len(argv) <= 3:
        count = 10
        if len(argv) == 3:
            number = parse_int(argv[2])
            if number is None:
                return ErrorReply("ERR value is not an integer or out of range")
            if number < -1:
                return ErrorReply("ERR count should be greater than or equal to -1")
            count = len(observer.slowlog) if number == -1 else number
        return [list(entry) for entry in list(observer.slowlog)[:count]]
    if sub == b"len" and len(argv) == 2:
        return len(observer.slowlog)
    if sub == b"reset" and len(argv) == 2:
        observer.slowlog.clear()
        return OK
    if sub == b"help" and len(argv) == 2:
        return [
            b"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"GET [<count>]",
            b"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            b"    Entries are made of:",
            b"    id, timestamp, time in microseconds, arguments array, client IP and port,",
            b"    client name",
            b"LEN",
            b"    Return the length of the slowlog.",
            b"RESET",
            b"    Reset the slowlog.",
            b"HELP",
            b"    Prints this help.",
        ]
    if sub in (b"get", b"len", b"reset"):
        return subcommand_arity(argv)
    return unknown_subcommand(argv)


@command("latency")
def latency(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | HELP, with the events
    respkv samples: ``command`` and ``fast-command`` (over ``latency-monitor-threshold``) and
    ``aof-fsync-always`` (Raft log fsyncs over it)."""
    observer = server.observer
    if len(argv) < 2:
        return ErrorReply("ERR wrong number of arguments for 'latency' command")
    sub = argv[1].lower()
    events = observer.latency_events
    if sub == b"latest" and len(argv) == 2:
        return [
            [name.encode(), e.samples[-1][0], e.samples[-1][1], e.max_ms]
            for name, e in events.items()
            if e.samples
        ]
    if sub == b"history" and len(argv) == 3:
        found = events.get(argv[2].decode(errors="replace"))
        return [] if found is None else [[ts, ms] for ts, ms in found.samples]
    if sub == b"reset":
        names = [a.decode(errors="replace") for a in argv[2:]] or list(events)
        reset = 0
        for name in names:
            if events.pop(name, None) is not None:
                reset += 1
        return reset
    if sub == b"doctor" and len(argv) == 2:
        return Verbatim(b"txt", _latency_doctor(server).encode())
    if sub == b"help" and len(argv) == 2:
        return [
            b"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"DOCTOR",
            b"    Return a human readable latency analysis report.",
            b"HISTORY <event>",
            b"    Return time-latency samples for the <event> class.",
            b"LATEST",
            b"    Return the latest latency samples for all events.",
            b"RESET [<event> ...]",
            b"    Reset latency data of one or more <event> classes.",
            b"    (default: reset all data for all event classes)",
            b"HELP",
            b"    Prints this help.",
        ]
    if sub in (b"latest", b"history", b"doctor"):
        return subcommand_arity(argv)
    return unknown_subcommand(argv)


def _latency_doctor(server: Server) -> str:
    observer = server.observer
    if not observer.latency_threshold_ms:
        return (
            "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this respkv "
            'instance. You may use "CONFIG SET latency-monitor-threshold <milliseconds>." in '
            "order to enable it.\n"
        )
    if not observer.latency_events:
        return "Dave, no latency spike was observed during the lifetime of this respkv instance.\n"
    lines = ["Dave, I have observed latency spikes in this respkv instance:\n"]
    for number, (name, event) in enumerate(observer.latency_events.items(), 1):
        values = [ms for _, ms in event.samples]
        average = sum(values) // len(values)
        lines.append(
            f"{number}. {name}: {len(values)} latency spikes (average {average}ms, "
            f"worst {event.max_ms}ms). Writes include replication and the fsync: see the "
            "respkv_fsync_duration_seconds metric and SLOWLOG."
        )
    return "\n".join(lines) + "\n"


@command("time")
def time_(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    now = time.time_ns() // 1000
    return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]


@command("shutdown")
def shutdown(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    """SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] | SHUTDOWN ABORT: stop as SIGTERM does (a leader
    hands over first). Every write is already durable, so SAVE and NOSAVE mean the same; like
    Redis, the client gets no reply, just the closed connection."""
    options = [arg.lower() for arg in argv[1:]]
    if options == [b"abort"]:
        return ErrorReply("ERR No shutdown in progress.")
    allowed = {b"nosave", b"save", b"now", b"force"}
    if any(o not in allowed for o in options) or {b"nosave", b"save"} <= set(options):
        return syntax_error()
    logging.getLogger("respkv.server").warning("SHUTDOWN from client %s: stopping", conn.addr)
    server.stop_requested.set()
    conn.close_after_flush()
    return NO_REPLY


@command("lastsave")
def lastsave(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return server.lastsave


# Parameters respkv honours: name -> (getter, setter or None for read-only).
def _parameters(
    server: Server,
) -> dict[str, tuple[Callable[[], str], Callable[[str], str | None] | None]]:
    c = server.config

    def set_password(value: str) -> str | None:
        server.requirepass = value
        server.acl.refresh()  # the default user's password, unless ACL SETUSER default ran
        return None

    def set_maxclients(value: str) -> str | None:
        number = parse_int(value.encode())
        if number is None:
            return "argument couldn't be parsed into an integer"
        if not 1 <= number <= 4294967295:
            return "argument must be between 1 and 4294967295 inclusive"
        server.maxclients = number
        return None

    def set_level(value: str) -> str | None:
        import logging

        if value.lower() not in ("debug", "verbose", "notice", "warning"):
            return "argument(s) must be one of the following: debug, verbose, notice, warning"
        logging.getLogger("respkv").setLevel(
            {"debug": "DEBUG", "verbose": "INFO", "notice": "INFO", "warning": "WARNING"}[
                value.lower()
            ]
        )
        server.ignored_parameters["loglevel"] = value.lower()
        return None

    def get_output_limits() -> str:
        hard, soft, seconds = server.pubsub_output_limit
        return f"normal 0 0 0 slave 268435456 67108864 60 pubsub {hard} {soft} {seconds}"

    def set_output_limits(value: str) -> str | None:
        words = value.split()
        if len(words) % 4:
            return "Wrong number of arguments in buffer limit configuration."
        for i in range(0, len(words), 4):
            kind = words[i].lower()
            if kind not in ("normal", "slave", "replica", "pubsub"):
                return "Invalid client class specified in buffer limit configuration."
            numbers = [_memory(w) for w in words[i + 1 : i + 3]] + [
                parse_int(words[i + 3].encode())
            ]
            if any(n is None or n < 0 for n in numbers):
                return "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            if kind == "pubsub":  # the only class respkv enforces
                server.pubsub_output_limit = tuple(numbers)  # type: ignore[assignment]
        return None

    observer = server.observer

    def integer_setter(
        apply: Callable[[int], None], low: int, high: int
    ) -> Callable[[str], str | None]:
        def setter(value: str) -> str | None:
            number = parse_int(value.encode())
            if number is None:
                return "argument couldn't be parsed into an integer"
            if not low <= number <= high:
                return f"argument must be between {low} and {high} inclusive"
            apply(number)
            return None

        return setter

    return {
        "slowlog-log-slower-than": (
            lambda: str(observer.slowlog_threshold_us),
            integer_setter(observer.set_slowlog_threshold, -1, 2**63 - 1),
        ),
        "slowlog-max-len": (
            lambda: str(observer.slowlog_max_len),
            integer_setter(observer.set_slowlog_max_len, 0, 2**63 - 1),
        ),
        "latency-monitor-threshold": (
            lambda: str(observer.latency_threshold_ms),
            integer_setter(observer.set_latency_threshold, 0, 2**63 - 1),
        ),
        "acllog-max-len": (
            lambda: str(server.acl.log.max_len),
            integer_setter(server.acl.log.set_max_len, 0, 2**63 - 1),
        ),
        "requirepass": (lambda: server.requirepass, set_password),
        "client-output-buffer-limit": (get_output_limits, set_output_limits),
        "maxclients": (lambda: str(server.maxclients), set_maxclients),
        "databases": (lambda: str(c.server.databases), None),
        "port": (lambda: str(server.port), None),
        "tls-port": (lambda: str(max(server.tls_port, 0)), None),
        "bind": (lambda: c.server.bind, None),
        "dir": (lambda: str(c.data_dir.resolve()), None),
        "proto-max-bulk-len": (lambda: str(c.server.proto_max_bulk_len), None),
        "client-query-buffer-limit": (lambda: str(c.server.client_query_buffer_limit), None),
        "loglevel": (lambda: server.ignored_parameters.get("loglevel", "notice"), set_level),
        "appendfsync": (lambda: "always" if c.raft.fsync else "no", None),
    }


# Redis parameters with no meaning here: accepted and echoed, so tools that tune them work.
IGNORED_DEFAULTS = {
    "save": "",
    "appendonly": "no",
    "maxmemory": "0",
    "maxmemory-policy": "noeviction",
    "timeout": "0",
    "tcp-keepalive": "300",
    "hash-max-listpack-entries": "512",
    "hash-max-listpack-value": "64",
    "hash-max-ziplist-entries": "512",
    "hash-max-ziplist-value": "64",
    "list-max-listpack-size": "-2",
    "list-max-ziplist-size": "-2",
    "list-compress-depth": "0",
    "set-max-intset-entries": "512",
    "set-max-listpack-entries": "128",
    "set-max-listpack-value": "64",
    "zset-max-listpack-entries": "128",
    "zset-max-listpack-value": "64",
    "zset-max-ziplist-entries": "128",
    "zset-max-ziplist-value": "64",
    "activerehashing": "yes",
    "lazyfree-lazy-eviction": "no",
    "lazyfree-lazy-expire": "no",
    "lazyfree-lazy-server-del": "no",
    "lazyfree-lazy-user-del": "no",
    "lazyfree-lazy-user-flush": "no",
    "notify-keyspace-events": "",
    "lua-time-limit": "5000",
    "busy-reply-threshold": "5000",
    "hz": "10",
    "dynamic-hz": "yes",
    "protected-mode": "yes",
    "stop-writes-on-bgsave-error": "yes",
    "rdbcompression": "yes",
    "appendfilename": "appendonly.aof",
    "maxmemory-samples": "5",
    "active-expire-effort": "1",
    "close-on-oom": "no",
    "enable-debug-command": "no",
}


_UNITS = {"": 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 1024**2, "g": 10**9, "gb": 1024**3}


def _memory(text: str) -> int | None:
    """Redis's memtoull: a number with an optional unit (1kb = 1024, 1k = 1000)."""
    digits = text.rstrip("kmgbKMGB")
    unit = _UNITS.get(text[len(digits) :].lower())
    number = parse_int(digits.encode())
    return None if unit is None or number is None else number * unit


def _glob_match(pattern: str, name: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


@command("config")
def config(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    if len(argv) < 2:
        return ErrorReply("ERR wrong number of arguments for 'config' command")
    sub = argv[1].lower()
    honoured = _parameters(server)
    if sub == b"get":
        if len(argv) < 3:
            return subcommand_arity(argv)
        result: dict[bytes, bytes] = {}
        for raw in argv[2:]:
            pattern = raw.decode(errors="replace").lower()
            for name, (getter, _) in honoured.items():
                if _glob_match(pattern, name):
                    result[name.encode()] = getter().encode()
            for name, default in IGNORED_DEFAULTS.items():
                if _glob_match(pattern, name):
                    result[name.encode()] = server.ignored_parameters.get(name, default).encode()
        return result
    if sub == b"set":
        if len(argv) < 4 or len(argv) % 2:
            return subcommand_arity(argv)
        pairs = [
            (argv[i].decode(errors="replace").lower(), argv[i + 1].decode(errors="replace"))
            for i in range(2, len(argv), 2)
        ]
        for name, _value in pairs:
            if name not in honoured and name not in IGNORED_DEFAULTS:
                return ErrorReply(
                    f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                )
            if name in honoured and honoured[name][1] is None:
                return ErrorReply(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set "
                    "immutable config"
                )
        for name, value in pairs:
            if name in honoured:
                setter = honoured[name][1]
                assert setter is not None
                problem = setter(value)
                if problem:
                    return ErrorReply(
                        f"ERR CONFIG SET failed (possibly related to argument '{name}') - {problem}"
                    )
            else:
                server.ignored_parameters[name] = value
        return OK
    if sub == b"resetstat" and len(argv) == 2:
        stats = server.stats
        stats.commands_processed = stats.connections_received = stats.rejected_connections = 0
        stats.bytes_in = stats.bytes_out = 0
        return OK
    if sub == b"rewrite" and len(argv) == 2:
        return ErrorReply("ERR The server is running without a config file")
    if sub in (b"resetstat", b"rewrite"):
        return subcommand_arity(argv)
    return unknown_subcommand(argv)


# --- INFO ------------------------------------------------------------------------------------


def _section_server(server: Server) -> list[str]:
    uptime = int(time.time() - server.started_at)
    return [
        f"redis_version:{REDIS_COMPAT_VERSION}",
        f"respkv_version:{__version__}",
        "redis_git_sha1:00000000",
        "redis_mode:standalone",
        f"os:{platform.system()} {platform.release()} {platform.machine()}",
        f"arch_bits:{64 if sys.maxsize > 2**32 else 32}",
        "multiplexing_api:epoll",
        f"python_version:{platform.python_version()}",
        f"process_id:{os.getpid()}",
        f"run_id:{server.run_id[:40]}",
        f"tcp_port:{server.port}",
        f"server_time_usec:{time.time_ns() // 1000}",
        f"uptime_in_seconds:{uptime}",
        f"uptime_in_days:{uptime // 86400}",
        f"executable:{sys.argv[0]}",
        f"config_file:{'' if server.config.source == '<defaults>' else os.path.abspath(server.config.source)}",
    ]


def _section_clients(server: Server) -> list[str]:
    return [
        f"connected_clients:{len(server.clients)}",
        f"maxclients:{server.maxclients}",
        f"blocked_clients:{server.blocked.count}",
    ]


def _section_memory(server: Server) -> list[str]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [
        f"used_memory:{rss}",
        f"used_memory_rss:{rss}",
        "maxmemory:0",
        "maxmemory_policy:noeviction",
    ]


def _section_persistence(server: Server) -> list[str]:
    lines = [
        "loading:0",
        "rdb_changes_since_last_save:0",
        f"rdb_last_save_time:{server.lastsave}",
        *server.backups.info_lines(),
        "aof_enabled:0",
    ]
    if server.runtime is not None:
        stats = server.runtime.writer.stats
        lines += [
            f"raft_log_fsync:{'always' if server.config.raft.fsync else 'no'}",
            f"raft_log_synced_writes:{stats.groups}",
            f"raft_log_write_jobs:{stats.jobs}",
        ]
    return lines


def _section_stats(server: Server) -> list[str]:
    s = server.stats
    return [
        f"total_connections_received:{s.connections_received}",
        f"total_commands_processed:{s.commands_processed}",
        f"total_net_input_bytes:{s.bytes_in}",
        f"total_net_output_bytes:{s.bytes_out}",
        f"rejected_connections:{s.rejected_connections}",
        f"expired_keys:{s.expired_keys}",
        "evicted_keys:0",
    ]


def _section_replication(server: Server) -> list[str]:
    runtime = server.runtime
    if runtime is None or runtime.is_leader:
        followers = (
            []
            if runtime is None
            else sorted(m.id for m in runtime.conf_state.members if m.id != runtime.id)
        )
        lines = ["role:master", f"connected_slaves:{len(followers)}"]
        return lines
    return [
        "role:slave",
        f"master_node_id:{runtime.leader}",
        f"master_link_status:{'up' if runtime.leader else 'down'}",
    ]


def _section_keyspace(server: Server) -> list[str]:
    sm = server.state_machine
    if sm is None:
        return []
    lines = []
    for db in range(server.config.server.databases):
        keys = sm.key_count(sm.db(db))
        if keys:
            lines.append(f"db{db}:keys={keys},expires=0,avg_ttl=0")
    return lines


def _section_raft(server: Server) -> list[str]:
    runtime = server.runtime
    if runtime is None:
        return []
    status = runtime.raft.status()
    voters = ",".join(str(v) for v in sorted(status.conf_state.voters))
    learners = ",".join(str(v) for v in sorted(status.conf_state.learners))
    return [
        f"raft_node_id:{status.id}",
        f"raft_role:{status.role.value}",
        f"raft_term:{status.term}",
        f"raft_leader_id:{status.leader}",
        f"raft_commit_index:{status.commit}",
        f"raft_applied_index:{status.applied}",
        f"raft_first_index:{status.first_index}",
        f"raft_last_index:{status.last_index}",
        f"raft_voters:{voters}",
        f"raft_learners:{learners}",
        f"raft_leader_changes:{runtime.leader_changes}",
        f"raft_snapshot_bytes_sent:{runtime.snapshot_bytes_sent}",
    ]


SECTIONS: dict[str, Callable[[Server], list[str]]] = {
    "server": _section_server,
    "clients": _section_clients,
    "memory": _section_memory,
    "persistence": _section_persistence,
    "stats": _section_stats,
    "replication": _section_replication,
    "keyspace": _section_keyspace,
    "raft": _section_raft,
}
DEFAULT_SECTIONS = list(SECTIONS)


@command("info")
def info(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    wanted = [a.decode(errors="replace").lower() for a in argv[1:]]
    if not wanted or any(w in ("all", "everything", "default") for w in wanted):
        names = DEFAULT_SECTIONS
    else:
        names = [w for w in wanted if w in SECTIONS]
    parts = []
    for name in names:
        lines = SECTIONS[name](server)
        parts.append(f"# {name.capitalize()}\r\n" + "".join(line + "\r\n" for line in lines))
    return Verbatim(b"txt", "\r\n".join(parts).encode())
