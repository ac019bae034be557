#!/usr/bin/env python3
"""Per-call cost of collection commands as the collection grows: the state machine on RocksDB.

    python scripts/bench_collections.py                    # 10k and 1M members
    python scripts/bench_collections.py --sizes 1000 100000 --calls 5000 --types zset hash

For each size and type a fresh RocksDB store (a temporary directory) is loaded with one
collection of that many members through ``prepare_write`` + ``apply`` like the server does
(a sorted set with random integer scores, so ties exist; a hash; a set; a list). Then, per
operation, ``--calls`` commands are timed one by one, each write its own apply (one backend
write):

* zset: ``ZADD new`` (a new member), ``ZADD update`` (the score index entry moves),
  ``ZRANGEBYSCORE key min +inf LIMIT 0 10`` from a random min (a seek, then 10 entries),
  ``ZRANGE 0 9`` / ``ZRANGE -10 -1`` (a seek from either end), ``ZSCORE``;
* hash: ``HSET new`` (a new field), ``HSET update``, ``HGET``;
* set: ``SADD new``, ``SISMEMBER``;
* list: ``LPUSH``, ``LINDEX`` of the middle element, ``LRANGE 0 9``, ``LSET`` at a random
  index, ``RPOP``.

The table shows microseconds per call and the ratio between the largest and the smallest size:
a ratio near 1 is the O(log n) of a RocksDB seek (its block index and bloom filters), where a
layout that read or rewrote the whole collection would grow like n. No network, no Raft, no
fsync: this isolates the data layout (``docs/architecture.md``); ``scripts/bench.py``
measures the server end to end.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from respkv.kv import StateMachine
from respkv.resp.replies import ErrorReply
from respkv.storage import Store

NOW = 1_700_000_000_000
KEY = b"bench:collection"
LOAD_PAIRS = 1000  # members per loading ZADD
LOAD_COMMANDS = 20  # loading ZADDs per apply


class Bench:
    def __init__(self, path: Path) -> None:
        self.store = Store.open(path, 1)
        self.sm = StateMachine(self.store.keyspace)
        self.index = self.store.keyspace.applied_index

    def apply(self, commands: list[list[bytes]]) -> list[object]:
        entries = []
        for argv in commands:
            payload = self.sm.prepare_write(argv, 0, NOW)
            if isinstance(payload, ErrorReply):
                raise RuntimeError(f"{argv[:3]!r}: {payload.message}")
            self.index += 1
            entries.append((self.index, payload))
        return self.sm.apply(entries)

    def read(self, argv: list[bytes]) -> object:
        return self.sm.read(argv, 0, NOW)

    def close(self) -> None:
        self.store.close()


#: type: (the loading command for members [first, last), the command that counts them)
LOADERS: dict[str, tuple[Callable[[int, int, random.Random, int], list[bytes]], list[bytes]]] = {
    "zset": (
        lambda first, last, rng, size: (
            [b"ZADD", KEY]
            + [x for i in range(first, last) for x in (b"%d" % rng.randrange(size), b"m:%010d" % i)]
        ),
        [b"ZCARD", KEY],
    ),
    "hash": (
        lambda first, last, rng, size: (
            [b"HSET", KEY] + [x for i in range(first, last) for x in (b"m:%010d" % i, b"v%d" % i)]
        ),
        [b"HLEN", KEY],
    ),
    "set": (
        lambda first, last, rng, size: (
            [b"SADD", KEY] + [b"m:%010d" % i for i in range(first, last)]
        ),
        [b"SCARD", KEY],
    ),
    "list": (
        lambda first, last, rng, size: (
            [b"RPUSH", KEY] + [b"m:%010d" % i for i in range(first, last)]
        ),
        [b"LLEN", KEY],
    ),
}


def load(bench: Bench, kind: str, size: int, rng: random.Random) -> float:
    started = time.perf_counter()
    build, count = LOADERS[kind]
    pending: list[list[bytes]] = []
    for first in range(0, size, LOAD_PAIRS):
        pending.append(build(first, min(first + LOAD_PAIRS, size), rng, size))
        if len(pending) == LOAD_COMMANDS:
            bench.apply(pending)
            pending = []
    if pending:
        bench.apply(pending)
    card = bench.read(count)
    if card != size:
        raise RuntimeError(f"loaded {card} members, wanted {size}")
    return time.perf_counter() - started


def per_call_us(calls: int, one: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(calls):
        one(i)
    return (time.perf_counter() - started) / calls * 1e6


def operations(
    bench: Bench, size: int, rng: random.Random
) -> dict[str, dict[str, Callable[[int], object]]]:
    def member() -> bytes:
        return b"m:%010d" % rng.randrange(size)

    def score() -> bytes:
        return b"%d" % rng.randrange(size)

    return {
        "zset": {
            "ZADD new": lambda i: bench.apply([[b"ZADD", KEY, score(), b"new:%d" % i]]),
            "ZADD update": lambda i: bench.apply([[b"ZADD", KEY, score(), member()]]),
            "ZRANGEBYSCORE LIMIT 0 10": lambda i: bench.read(
                [b"ZRANGEBYSCORE", KEY, score(), b"+inf", b"LIMIT", b"0", b"10"]
            ),
            "ZRANGE 0 9": lambda i: bench.read([b"ZRANGE", KEY, b"0", b"9"]),
            "ZRANGE -10 -1": lambda i: bench.read([b"ZRANGE", KEY, b"-10", b"-1"]),
            "ZSCORE": lambda i: bench.read([b"ZSCORE", KEY, member()]),
        },
        "hash": {
            "HSET new": lambda i: bench.apply([[b"HSET", KEY, b"new:%d" % i, b"v"]]),
            "HSET update": lambda i: bench.apply([[b"HSET", KEY, member(), b"w"]]),
            "HGET": lambda i: bench.read([b"HGET", KEY, member()]),
        },
        "set": {
            "SADD new": lambda i: bench.apply([[b"SADD", KEY, b"new:%d" % i]]),
            "SISMEMBER": lambda i: bench.read([b"SISMEMBER", KEY, member()]),
        },
        "list": {
            "LPUSH": lambda i: bench.apply([[b"LPUSH", KEY, b"new:%d" % i]]),
            "LINDEX middle": lambda i: bench.read([b"LINDEX", KEY, b"%d" % (size // 2)]),
            "LRANGE 0 9": lambda i: bench.read([b"LRANGE", KEY, b"0", b"9"]),
            "LSET random": lambda i: bench.apply(
                [[b"LSET", KEY, b"%d" % rng.randrange(size), b"x"]]
            ),
            "RPOP": lambda i: bench.apply([[b"RPOP", KEY]]),
        },
    }


def measure(kind: str, size: int, calls: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="respkv-bench-") as tmp:
        bench = Bench(Path(tmp) / "db")
        try:
            seconds = load(bench, kind, size, rng)
            print(f"  {kind}: {size:>9,} members loaded in {seconds:.1f} s", file=sys.stderr)
            ops = operations(bench, size, rng)[kind]
            return {name: per_call_us(calls, one) for name, one in ops.items()}
        finally:
            bench.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per operation")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--types", nargs="+", choices=list(LOADERS), default=list(LOADERS))
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    results: dict[int, dict[str, float]] = {size: {} for size in sizes}
    for kind in args.types:
        for size in sizes:
            results[size].update(measure(kind, size, args.calls, args.seed))
    names = list(results[sizes[0]])
    header = ["operation (us/call)", *(f"n={s:,}" for s in sizes)]
    if len(sizes) > 1:
        header.append(f"ratio {sizes[-1]:,}/{sizes[0]:,}")
    rows = [header]
    for name in names:
        row = [name, *(f"{results[s][name]:.1f}" for s in sizes)]
        if len(sizes) > 1:
            row.append(f"{results[sizes[-1]][name] / results[sizes[0]][name]:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
