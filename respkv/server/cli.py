"""The ``respkv`` command.

respkv                                   serve with the defaults (127.0.0.1:6379, ./data)
respkv serve --config config/node1.toml  serve with a config file
respkv serve --port 7000 --data-dir /tmp/d
respkv health --config config/node1.toml   exit 0 if the node answers PING, else 1 (one line why)
respkv backup /backups/today --port 7000 ask a running node for a backup, wait for it
respkv restore /backups/today --data-dir /tmp/new [--node-id N]
                                         a new single-node cluster from a backup
respkv check /tmp/d/node1 [--json]       verify a stopped node's data

See docs/backup.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable
from typing import Any

from respkv import __version__
from respkv.config import Config, ConfigError, load

EXIT_CONFIG = 2
PROGRESS_EVERY_S = 2.0  # respkv backup prints the node's progress this often

_FLAGS: list[tuple[str, str, type, str]] = [
    ("--port", "server.port", int, "client (RESP) port [6379]"),
    ("--bind", "server.bind", str, "client address to listen on [127.0.0.1]"),
    ("--requirepass", "server.requirepass", str, "password clients must AUTH with"),
    ("--databases", "server.databases", int, "number of databases [16]"),
    ("--log-level", "server.log_level", str, "debug, info, warning or error [info]"),
    ("--log-format", "server.log_format", str, "text or json (one JSON object per line) [text]"),
    ("--metrics-port", "metrics.port", int, "Prometheus metrics HTTP port, 0: off [0]"),
    ("--data-dir", "cluster.db_root_dir", str, "root of the data directories [./data]"),
    ("--node-id", "cluster.node_id", int, "this node's id [1]"),
    ("--peer-address", "cluster.listen_address", str, "peer (Raft) address [127.0.0.1:9081]"),
    ("--join", "cluster.join", str, "peer address of a member: join that cluster as a learner"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="respkv",
        description="A Redis-compatible key-value store replicated with Raft.",
        epilog="Every option can also come from the config file or from a RESPKV_<SECTION>_<KEY>"
        " environment variable (e.g. RESPKV_SERVER_PORT=7000); flags win. "
        "See docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"respkv {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run a node (the default)")
    health = commands.add_parser(
        "health",
        help="check that a node answers PING (exit 0) or say why not (exit 1)",
        description="Connect to the client port (from --config, or --host/--port), AUTH with"
        " the configured requirepass if there is one, send PING; exit 0 on PONG, 1 otherwise.",
    )
    health.add_argument("--host", help="default: [server] bind (127.0.0.1 for 0.0.0.0 / ::)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds [3]")
    backup = commands.add_parser(
        "backup",
        help="ask a running node (over its client port) for a consistent backup; wait for it",
        description="Ask a running node for a consistent backup written into DIR (a path on "
        "the node's host, absent or empty) and wait until it is complete. The node keeps "
        "serving meanwhile. See docs/backup.md.",
    )
    backup.add_argument("dir", help="the backup directory to create")
    backup.add_argument(
        "--local",
        action="store_true",
        help="back up the node's state as it is, even without a leader to confirm the "
        "latest writes (a cluster that lost its majority)",
    )
    restore = commands.add_parser(
        "restore",
        help="create a new single-node cluster from a backup",
        description="Create the data dir of a NEW single-node cluster (new cluster id, this "
        "node its only voter) holding the backup's data; start it with 'respkv serve' and the "
        "same options, then grow it with the usual join flow. Refuses a non-empty data dir "
        "and a damaged backup. See docs/backup.md.",
    )
    restore.add_argument("backup", help="the backup directory (holding manifest.json)")
    check = commands.add_parser(
        "check",
        help="verify a stopped node's data directory",
        description="Verify a stopped node's data (log continuity, indexes, hard state, "
        "membership, keyspace records and counts). Exit 0 when healthy, 1 with a list of "
        "problems, 2 when it cannot check (a running node, not a data dir).",
    )
    check.add_argument("data_dir", help="a node's data dir (<db_root_dir>/node<id>)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    for target in (parser, serve, health, backup, restore):
        target.add_argument(
            "--config",
            "-c",
            default=os.environ.get("RESPKV_CONFIG"),
            help="TOML config file (env RESPKV_CONFIG)",
        )
        for flag, dest, kind, text in _FLAGS:
            target.add_argument(flag, dest=dest, type=kind, help=text, default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command
    if command == "check":
        return _check(args.data_dir, args.json)
    overrides: dict[str, Any] = {
        dest: getattr(args, dest) for _, dest, _, _ in _FLAGS if hasattr(args, dest)
    }
    try:
        config = load(args.config, overrides=overrides)
    except ConfigError as e:
        print(f"respkv: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "health":
        return health_check(config, args.host, args.timeout)
    if command == "backup":
        return _backup(config, args.dir, args.local)
    if command == "restore":
        return _restore(config, args.backup)
    from .logs import configure

    configure(config.server.log_level, config.server.log_format, config.cluster.node_id)
    from respkv.storage import StorageError

    from .app import Server
    from .join import JoinError

    runner: Callable[..., Any]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep going without it
        runner = asyncio.run
    try:
        runner(Server(config).serve_forever())
    except StorageError as e:
        logging.getLogger("respkv").critical("cannot open the data directory: %s", e)
        return 1
    except JoinError as e:
        logging.getLogger("respkv").critical("cannot join the cluster: %s", e)
        return 1
    except ConfigError as e:  # e.g. certificates that do not load
        logging.getLogger("respkv").critical("configuration error: %s", e)
        return EXIT_CONFIG
    except OSError as e:
        logging.getLogger("respkv").critical("cannot start: %s", e)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def health_check(config: Config, host: str | None, timeout: float) -> int:
    """PING the node (after AUTH when a password is configured): 0 on PONG, else 1 with one
    line on stderr saying why."""
    bind = config.server.bind
    if host is None:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)
    port = config.server.port
    where = f"{host}:{port}"
    request = b""
    password = config.server.requirepass.encode()
    if password:
        request += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password)
    request += b"*1\r\n$4\r\nPING\r\n"
    try:
        import hiredis

        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            reader = hiredis.Reader()
            replies: list[object] = []
            while len(replies) < (2 if password else 1):
                data = sock.recv(4096)
                if not data:
                    raise ConnectionError("the server closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
    except (OSError, ConnectionError) as e:
        print(f"respkv health: {where}: {e}", file=sys.stderr)
        return 1
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            print(f"respkv health: {where}: {reply}", file=sys.stderr)
            return 1
    if replies[-1] != b"PONG":
        print(f"respkv health: {where}: unexpected reply {replies[-1]!r}", file=sys.stderr)
        return 1
    return 0


# --- backup, restore, check ----------------------------------------------------------------


def _tool_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )


class _Client:
    """Just enough RESP (through hiredis) to send admin commands to a node."""

    def __init__(self, host: str, port: int, timeout: float | None) -> None:
        import hiredis

        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.settimeout(timeout)
        self._reader = hiredis.Reader()

    def send(self, *args: str) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))

    def call(self, *args: str) -> Any:
        self.send(*args)
        return self.reply()

    def reply(self) -> Any:
        while (reply := self._reader.gets()) is False:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the node closed the connection")
            self._reader.feed(chunk)
        return reply

    def close(self) -> None:
        self._sock.close()


def _connect(config: Config, timeout: float | None) -> _Client:
    host = config.server.bind if config.server.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    client = _Client(host, config.server.port, timeout)
    if config.server.requirepass:
        reply = client.call("AUTH", config.server.requirepass)
        if isinstance(reply, Exception):
            raise ConnectionError(f"AUTH failed: {reply}")
    return client


def _backup(config: Config, directory: str, local: bool) -> int:
    target = os.path.abspath(directory)
    where = f"{config.server.bind}:{config.server.port}"
    try:
        client = _connect(config, timeout=PROGRESS_EVERY_S)
        watcher = _connect(config, timeout=10.0)
    except OSError as e:
        print(f"respkv backup: cannot reach the node at {where}: {e}", file=sys.stderr)
        return 1
    try:
        client.send("RESPKV", "BACKUP", target, *(["LOCAL"] if local else []))
        print(f"respkv backup: node {where} is writing a backup to {target}", file=sys.stderr)
        while True:
            try:
                reply = client.reply()
                break
            except TimeoutError:
                info = watcher.call("INFO", "persistence")
                fields = dict(
                    line.split(":", 1)
                    for line in info.decode(errors="replace").splitlines()
                    if ":" in line
                )
                print(
                    f"respkv backup: {int(fields.get('respkv_backup_bytes_written', 0)) / 1e6:.1f}"
                    f" MB written (~{fields.get('respkv_backup_percent', '?')}%)",
                    file=sys.stderr,
                )
    except OSError as e:
        print(f"respkv backup: lost the connection to {where}: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
        watcher.close()
    if isinstance(reply, Exception):
        print(f"respkv backup: the node refused: {reply}", file=sys.stderr)
        return 1
    manifest = json.loads(reply)
    print(
        f"respkv backup: done: {target} (index {manifest['applied_index']}, "
        f"{manifest['key_count']} keys, {manifest['snapshot']['bytes']} bytes)",
        file=sys.stderr,
    )
    print(reply.decode())
    return 0


def _restore(config: Config, backup: str) -> int:
    from respkv.storage.backup import restore_backup
    from respkv.storage.errors import StorageError

    from .runtime import member_context

    _tool_logging()
    node_id = config.cluster.node_id
    cluster_id = uuid.uuid4().hex
    context = member_context(
        config.cluster.listen_address, f"{config.server.bind}:{config.server.port}"
    )
    try:
        manifest = restore_backup(backup, config.data_dir, node_id, context, cluster_id)
    except StorageError as e:
        print(f"respkv restore: {e}", file=sys.stderr)
        return 1
    print(
        f"respkv restore: {config.data_dir} now holds a new single-node cluster {cluster_id} "
        f"(node {node_id}, {manifest['key_count']} keys at index {manifest['applied_index']}, "
        f"from cluster {manifest['cluster_id']}). Start it with 'respkv serve' and the same "
        "options; grow it with --join.",
        file=sys.stderr,
    )
    return 0


def _check(data_dir: str, as_json: bool) -> int:
    from respkv.storage.check import check_data_dir
    from respkv.storage.errors import StorageError

    try:
        report = check_data_dir(data_dir)
    except StorageError as e:
        if as_json:
            print(json.dumps({"data_dir": data_dir, "healthy": None, "error": str(e)}))
        print(f"respkv check: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    elif report.healthy:
        facts = report.facts
        print(
            f"{report.path}: healthy (node {facts.get('node_id')}, log "
            f"{facts.get('log_first_index')}..{facts.get('log_last_index')}, applied "
            f"{facts.get('applied_index')}, {facts.get('keys')} key records)"
        )
    else:
        print(f"{report.path}: {len(report.problems)} problem(s):")
        for problem in report.problems:
            print(f"  - {problem}")
    return 0 if report.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
