"""The fault test: random GET/SET/INCR from several clients against every node of a real
3-node cluster while a nemesis kills (SIGKILL, restart), pauses (SIGSTOP/SIGCONT), partitions
(tests/netproxy.py: isolation, one-way, a cut between two nodes) and heals; the history is
checked for linearizability and, once healed, every node must hold the same data.

Bounded form (default suite): a few short runs with fixed seeds. Long form::

    pytest -m slow tests/test_fault.py          # RESPKV_FAULT_SEEDS, RESPKV_FAULT_DURATION
    python -m tests.test_fault --seed 7 --duration 300

Every run prints its seed and the command that repeats its nemesis schedule and client
choices (the timing of a real cluster is not reproducible, the choices are).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `python -m tests.test_fault`

from netproxy import NetProxy
from respkv_proc import Cluster, wait_until

from respkv.sim.linearizability import History, Kind

REGISTERS = [f"reg{i}" for i in range(3)]  # GET/SET, unique values
COUNTERS = [f"ctr{i}" for i in range(2)]  # GET/INCR
CLIENTS = 5
SOCKET_TIMEOUT = 8.0  # above request_timeout_ms (5 s): the server answers first if it can
CHECK_BUDGET_STEPS = 20_000_000
CI_SEEDS = (1, 2, 3)
CI_DURATION = float(os.environ.get("RESPKV_FAULT_DURATION", "20"))


def _error_kind(error: redis.ResponseError) -> str:
    if isinstance(error, redis.exceptions.ClusterDownError):
        return "CLUSTERDOWN"
    if isinstance(error, redis.exceptions.TryAgainError):
        return "TRYAGAIN"
    return str(error).split(" ", 1)[0]


@dataclass
class Stats:
    ok: int = 0
    fail: int = 0
    info: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


class Client(threading.Thread):
    """Random operations on random nodes; every one recorded in ``history``."""

    def __init__(
        self,
        client_id: int,
        seed: int,
        cluster: Cluster,
        history: History,
        stop: threading.Event,
        stats: Stats,
    ) -> None:
        super().__init__(name=f"client{client_id}", daemon=True)
        self.client_id = client_id
        self.rng = random.Random(seed * 1000 + client_id)
        self.cluster = cluster
        self.history = history
        self.stop_event = stop
        self.stats = stats
        self.conns: dict[int, redis.Connection] = {}
        self.sets = 0

    def connection(self, node: int) -> redis.Connection | None:
        conn = self.conns.get(node)
        if conn is None:
            conn = redis.Connection(
                port=self.cluster.port(node),
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=1.0,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                conn.connect()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                return None
            self.conns[node] = conn
        return conn

    def drop(self, node: int) -> None:
        conn = self.conns.pop(node, None)
        if conn is not None:
            conn.disconnect()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.one()
        finally:
            for node in list(self.conns):
                self.drop(node)

    def one(self) -> None:
        rng = self.rng
        node = rng.choice(self.cluster.ids)
        roll = rng.random()
        if roll < 0.3:
            key, kind, value, argv = self._get(rng.choice(REGISTERS))
        elif roll < 0.6:
            self.sets += 1
            value = f"c{self.client_id}-{self.sets}"
            key = rng.choice(REGISTERS)
            kind, argv = Kind.SET, ("SET", key, value)
        elif roll < 0.8:
            key, kind, value, argv = self._get(rng.choice(COUNTERS))
        else:
            key = rng.choice(COUNTERS)
            kind, value, argv = Kind.INCR, None, ("INCR", key)
        conn = self.connection(node)
        if conn is None:  # refused before anything was sent: definitely not applied
            time.sleep(0.05)
            return
        op = self.history.invoke(self.client_id, key, kind, value)
        try:
            conn.send_command(*argv)
            reply = conn.read_response()
        except redis.ResponseError as e:
            what = _error_kind(e)
            if what in ("CLUSTERDOWN", "TRYAGAIN"):
                self.history.fail(op)
                self.stats.add("fail")
                time.sleep(0.02)
            else:
                self.history.info(op)
                self.stats.add("info")
                if what != "UNKNOWN":
                    with self.stats.lock:
                        self.stats.unexpected.append(f"{argv} on node {node}: {what} {e}")
            return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self.history.info(op)
            self.stats.add("info")
            self.drop(node)
            return
        self.history.ok(op, reply)
        self.stats.add("ok")

    @staticmethod
    def _get(key: str) -> tuple[str, Kind, None, tuple[str, ...]]:
        return key, Kind.GET, None, ("GET", key)


class Nemesis(threading.Thread):
    """One fault at a time: apply, hold, heal, rest. Logs what it does."""

    FAULTS = ("kill", "pause", "isolate", "one-way", "cut-pair")

    def __init__(self, seed: int, cluster: Cluster, proxy: NetProxy, stop: threading.Event) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.rng = random.Random(seed)
        self.cluster = cluster
        self.proxy = proxy
        self.stop_event = stop
        self.events: list[str] = []
        self.error: BaseException | None = None
        self.killed: set[int] = set()  # down because we killed them
        self.crashes: list[str] = []  # nodes found dead that we did not kill
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.1f}s {text}")

    def leader_or_random(self) -> int:
        leader = None
        if self.rng.random() < 0.6:
            leader = self.cluster.current_leader()
        return leader if leader is not None else self.rng.choice(self.cluster.ids)

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.rng.uniform(1.0, 2.5)):
                self.fault()
        except BaseException as e:  # reported by the test
            self.error = e
            self.note(f"nemesis failed: {e!r}")

    def check_crashes(self) -> None:
        """A node that is down although we did not kill it crashed: note it with its exit
        status and the end of its log, and start it again so the run goes on."""
        for i, node in self.cluster.nodes.items():
            proc = node.proc
            if i in self.killed or proc is None or proc.poll() is None:
                continue
            tail = "\n".join(node.log().splitlines()[-30:])
            self.crashes.append(f"node {i} exited with status {proc.returncode}:\n{tail}")
            self.note(f"node {i} CRASHED (exit status {proc.returncode}); restarting it")
            self.cluster.restart(i)

    def fault(self) -> None:
        self.check_crashes()
        rng, cluster, proxy = self.rng, self.cluster, self.proxy
        kind = rng.choice(self.FAULTS)
        target = self.leader_or_random()
        other = rng.choice([i for i in cluster.ids if i != target])
        hold = rng.uniform(1.5, 4.0)
        if kind == "kill":
            self.note(f"SIGKILL node {target}")
            self.killed.add(target)
            cluster.kill(target)
            self.stop_event.wait(hold)
            cluster.restart(target)
            self.killed.discard(target)
            self.note(f"restarted node {target}")
        elif kind == "pause":
            self.note(f"SIGSTOP node {target}")
            cluster.nodes[target].signal(signal.SIGSTOP)
            self.stop_event.wait(hold)
            cluster.nodes[target].signal(signal.SIGCONT)
            self.note(f"SIGCONT node {target}")
        else:
            if kind == "isolate":
                self.note(f"isolate node {target}")
                proxy.isolate(target)
            elif kind == "one-way":
                self.note(f"drop {target} -> {other}")
                proxy.block(target, other)
            else:
                self.note(f"cut {target} <-> {other}")
                proxy.block(target, other)
                proxy.block(other, target)
            self.stop_event.wait(hold)
            proxy.heal()
            self.note("healed")

    def heal_all(self) -> None:
        self.check_crashes()
        self.proxy.heal()
        for i, node in self.cluster.nodes.items():
            if node.proc is not None and node.proc.poll() is None:
                node.signal(signal.SIGCONT)
            else:
                self.cluster.restart(i)
                self.note(f"restarted node {i}")


@dataclass
class RunResult:
    seed: int
    duration: float
    operations: int
    stats: Stats
    check: str
    events: list[str]


def run_fault(seed: int, duration: float, workdir: Path) -> RunResult:
    """One run; raises AssertionError naming the seed if anything is wrong."""
    repro = f"python -m tests.test_fault --seed {seed} --duration {duration:g}"
    print(f"\nfault run: seed {seed}, {duration:g}s (reproduce: {repro})", flush=True)
    with NetProxy() as proxy, Cluster(workdir, 3, listed_address=proxy.add_node) as cluster:
        cluster.start()
        cluster.wait_leader(timeout=30)
        history = History(time.monotonic)
        stop_clients, stop_nemesis = threading.Event(), threading.Event()
        stats = Stats()
        clients = [Client(c, seed, cluster, history, stop_clients, stats) for c in range(CLIENTS)]
        nemesis = Nemesis(seed, cluster, proxy, stop_nemesis)
        for thread in [*clients, nemesis]:
            thread.start()
        time.sleep(duration)  # the run itself: clients and nemesis work meanwhile
        stop_nemesis.set()
        nemesis.join(60)
        assert not nemesis.is_alive(), "the nemesis did not stop"
        nemesis.heal_all()
        nemesis.note("healed everything")
        # Let the clients see the healed cluster for a moment, then stop them.
        wait_until(lambda: cluster.current_leader() is not None, 30, "a leader after healing")
        ok_before = stats.ok
        wait_until(lambda: stats.ok > ok_before + 50, 30, "client progress after healing")
        stop_clients.set()
        for client in clients:
            client.join(SOCKET_TIMEOUT + 10)
            assert not client.is_alive(), f"{client.name} did not stop"
        context = f"seed {seed} ({repro})\nnemesis:\n  " + "\n  ".join(nemesis.events)
        assert nemesis.error is None, f"nemesis failed: {nemesis.error!r}; {context}"
        assert not nemesis.crashes, "a node crashed:\n" + "\n".join(nemesis.crashes) + context

        applied = cluster.wait_caught_up(timeout=60)
        dumps = {i: cluster.dump(i) for i in cluster.ids}
        assert cluster.wait_caught_up(timeout=30) == applied, "writes after the clients stopped"
        reference = dumps[cluster.ids[0]]
        for i, dump in dumps.items():
            assert dump == reference, f"node {i} differs from node 1: {dump} vs {reference}"
        for key in REGISTERS + COUNTERS:  # the final state is part of the history
            op = history.invoke(-1, key, Kind.GET)
            history.ok(op, reference.get(key.encode()))

        ops = history.operations()
        start = time.monotonic()
        result = history.check(budget_steps=CHECK_BUDGET_STEPS)
        took = time.monotonic() - start
        print(
            f"seed {seed}: {len(ops)} operations ({stats.ok} ok, {stats.fail} failed, "
            f"{stats.info} unknown), applied index {applied}; check {took:.1f}s: "
            f"{result.explanation.splitlines()[0]}",
            flush=True,
        )
        print("nemesis:\n  " + "\n  ".join(nemesis.events), flush=True)
        assert not stats.unexpected, f"unexpected errors: {stats.unexpected[:10]}; {context}"
        if result.ok is None:
            print(f"linearizability checker gave up: {result.explanation}", flush=True)
        assert result.ok is not None, (
            f"the linearizability checker gave up (budget {CHECK_BUDGET_STEPS} steps), so "
            f"nothing was proven: {result.explanation}; {context}"
        )
        assert result.ok is True, f"not linearizable: {result.explanation}; {context}"
        assert stats.ok > 100, f"too little progress to mean anything: {stats}; {context}"
        return RunResult(seed, duration, len(ops), stats, result.explanation, nemesis.events)


@pytest.mark.integration
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_fault_bounded(seed: int, tmp_path: Path) -> None:
    run_fault(seed, CI_DURATION, tmp_path)


@pytest.mark.integration
@pytest.mark.slow
def test_fault_long(tmp_path: Path) -> None:
    seeds = [int(s) for s in os.environ.get("RESPKV_FAULT_SEEDS", "100,101,102").split(",")]
    duration = float(os.environ.get("RESPKV_FAULT_LONG_DURATION", "120"))
    for seed in seeds:
        run_fault(seed, duration, tmp_path / f"seed{seed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="seeds seed, seed+1, ...")
    parser.add_argument("--keep", action="store_true", help="keep the logs of passing runs")
    args = parser.parse_args()
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    for seed in range(first, first + args.runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"respkv-fault-{seed}-"))
        try:
            run_fault(seed, args.duration, workdir)
        except AssertionError as e:
            print(f"FAILED: {e}\nlogs kept in {workdir}", flush=True)
            return 1
        if args.keep:
            print(f"logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
