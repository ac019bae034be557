"""The ``respkv`` command.

respkv                                   serve with the defaults (127.0.0.1:6379, ./data)
respkv serve --config config/node1.toml  serve with a config file
respkv serve --port 7000 --data-dir /tmp/d
respkv health --config config/node1.toml   exit 0 if the node answers PING, else 1 (one line why)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from respkv import __version__
from respkv.config import Config, ConfigError, load

EXIT_CONFIG = 2

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
    for target in (parser, serve, health):
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


if __name__ == "__main__":
    sys.exit(main())
