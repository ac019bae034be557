"""Crash test: acknowledged writes survive SIGKILL, and no INCR is ever applied twice.

Writers record every acknowledged SET and every INCR reply while the server is killed with
SIGKILL at random moments and restarted. After each restart every acknowledged SET must read
back, and each writer's counter must be explained by its acknowledged INCRs plus at most the
INCRs whose outcome is unknown (the connection died with them in flight): a re-applied INCR
would push it higher.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.respkv_proc import RespkvProcess


@dataclass
class Writer:
    index: int
    acked_sets: dict[bytes, bytes] = field(default_factory=dict)
    last_incr: int = 0  # the newest INCR reply
    unknown_incrs: int = 0  # INCRs in flight when a connection broke, since last_incr
    errors: list[str] = field(default_factory=list)


def run_writer(writer: Writer, port: int, stop: threading.Event) -> None:
    rng = random.Random(writer.index)
    client: redis.Redis | None = None
    counter = f"counter:{writer.index}".encode()
    n = 0
    while not stop.is_set():
        try:
            if client is None:
                client = redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=1)
            if rng.random() < 0.5:
                n += 1
                key, value = f"w:{writer.index}:{n}".encode(), str(n).encode()
                if client.set(key, value):
                    writer.acked_sets[key] = value
            else:
                try:
                    reply = int(client.incr(counter))
                except (redis.ConnectionError, redis.TimeoutError):
                    writer.unknown_incrs += 1  # may or may not have been applied
                    raise
                expected_low = writer.last_incr + 1
                expected_high = writer.last_incr + 1 + writer.unknown_incrs
                if not expected_low <= reply <= expected_high:
                    writer.errors.append(
                        f"INCR {counter!r} returned {reply}, expected {expected_low}..{expected_high}"
                    )
                writer.last_incr, writer.unknown_incrs = reply, 0
        except (redis.ConnectionError, redis.TimeoutError):
            client = None
            time.sleep(0.02)
        except redis.ResponseError as e:
            if "CLUSTERDOWN" not in str(e):  # while starting up: not applied, retry
                writer.errors.append(f"unexpected error reply: {e}")
            time.sleep(0.02)


def verify(node: RespkvProcess, writers: list[Writer]) -> None:
    client = node.client()
    for w in writers:
        assert not w.errors, w.errors[:3]
        keys = list(w.acked_sets)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            values = client.mget(chunk)
            lost = [k for k, v in zip(chunk, values, strict=True) if v != w.acked_sets[k]]
            assert not lost, f"acknowledged writes lost after SIGKILL: {lost[:5]}"
        stored = int(client.get(f"counter:{w.index}") or 0)
        assert w.last_incr <= stored <= w.last_incr + w.unknown_incrs, (
            f"counter:{w.index} is {stored}; acknowledged up to {w.last_incr} with "
            f"{w.unknown_incrs} unknown after: an INCR was lost or applied twice"
        )


@pytest.mark.integration
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    # A small snapshot threshold makes log compaction happen between kills too.
    node = RespkvProcess(tmp_path, raft_extra="snapshot_threshold = 500\nsnapshot_tail = 50")
    node.start()
    writers = [Writer(i) for i in range(6)]
    try:
        for round_ in range(5):
            stop = threading.Event()
            threads = [
                threading.Thread(target=run_writer, args=(w, node.port, stop), daemon=True)
                for w in writers
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.5, 1.5))
            node.kill()  # SIGKILL while the writers are mid-flight
            stop.set()
            for t in threads:
                t.join(15)
            node.start()
            verify(node, writers)
            acked = sum(len(w.acked_sets) for w in writers)
            assert acked > 20 * (round_ + 1), f"the workload barely ran ({acked} SETs acknowledged)"
        assert "recovered" in node.log()
    finally:
        node.kill()
