"""Add rows to respkv/kv/_redis_commands.py from a live redis-server 7.0.15's COMMAND INFO.

    python scripts/redis_command_rows.py --port 6379 hset hget ...

Appends the rows of the named commands (skipping those already in the table) to
``REDIS_COMMANDS`` as a block at the end of the file, formatted like the existing rows. ``tests/test_kv_command_table.py`` then
checks them byte for byte against the server.
"""

from __future__ import annotations

import argparse
import pprint
import socket
from pathlib import Path
from typing import Any

import hiredis

TABLE = Path(__file__).resolve().parent.parent / "respkv" / "kv" / "_redis_commands.py"


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> list[tuple[str, Any]]:
    return [(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


def _search(spec: list[Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    fields = dict(_pairs(spec))
    return _text(fields["type"]), tuple((k, _text(v)) for k, v in _pairs(fields["spec"]))


def _key_spec(flat: list[Any]) -> dict[str, Any]:
    fields = dict(_pairs(flat))
    out: dict[str, Any] = {}
    if "notes" in fields:
        out["notes"] = _text(fields["notes"])
    out["flags"] = tuple(_text(f) for f in fields["flags"])
    out["begin_search"] = _search(fields["begin_search"])
    out["find_keys"] = _search(fields["find_keys"])
    return out


def row(info: list[Any]) -> tuple[Any, ...]:
    name, arity, flags, first, last, step, acl, tips, key_specs, subs = info
    return (
        _text(name),
        arity,
        tuple(_text(f) for f in flags),
        first,
        last,
        step,
        tuple(_text(c) for c in acl),
        tuple(_text(t) for t in tips),
        tuple(_key_spec(k) for k in key_specs),
        tuple(sorted((row(s) for s in subs), key=lambda r: r[0])),
    )


def command_info(port: int, name: str) -> Any:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        args = [b"COMMAND", b"INFO", name.encode()]
        sock.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        reader = hiredis.Reader()
        while (reply := reader.gets()) is False:
            reader.feed(sock.recv(1 << 16))
    return reply[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--label", default="More commands", help="the block's comment line")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    namespace: dict[str, Any] = {}
    source = TABLE.read_text()
    exec(compile(source, str(TABLE), "exec"), namespace)
    known = {r[0] for r in namespace["REDIS_COMMANDS"]}
    rows = []
    for name in args.names:
        if name.lower() in known:
            continue
        info = command_info(args.port, name)
        if info is None:
            raise SystemExit(f"redis-server does not know {name!r}")
        rows.append(row(info))
    if not rows:
        return
    text = "".join(
        " " + pprint.pformat(r, width=100, sort_dicts=False).replace("\n", "\n ") + ",\n"
        for r in rows
    )
    block = f"\n# {args.label}\n# fmt: off\nREDIS_COMMANDS += (\n{text})\n# fmt: on\n"
    TABLE.write_text(source + block)


if __name__ == "__main__":
    main()
