"""The ``respkv`` command.

respkv                                   serve with the defaults (127.0.0.1:6379, ./data)
respkv serve --config config/node1.toml  serve with a config file
respkv serve --port 7000 --data-dir /tmp/d
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from respkv import __version__
from respkv.config import ConfigError, load

EXIT_CONFIG = 2

_FLAGS: list[tuple[str, str, type, str]] = [
    ("--port", "server.port", int, "client (RESP) port [6379]"),
    ("--bind", "server.bind", str, "client address to listen on [127.0.0.1]"),
    ("--requirepass", "server.requirepass", str, "password clients must AUTH with"),
    ("--databases", "server.databases", int, "number of databases [16]"),
    ("--log-level", "server.log_level", str, "debug, info, warning or error [info]"),
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
    for target in (parser, serve):
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
    overrides: dict[str, Any] = {
        dest: getattr(args, dest) for _, dest, _, _ in _FLAGS if hasattr(args, dest)
    }
    try:
        config = load(args.config, overrides=overrides)
    except ConfigError as e:
        print(f"respkv: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s [node "
        + str(config.cluster.node_id)
        + "] %(name)s: %(message)s",
        stream=sys.stderr,
    )
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


if __name__ == "__main__":
    sys.exit(main())
