"""The fault test: random GET/SET/INCR from several clients against every node of a real
3-node cluster while a nemesis kills (SIGKILL, restart), pauses (SIGSTOP/SIGCONT), partitions
(tests/netproxy.py: isolation, one-way, a cut between two nodes) and heals; the history is
checked for linearizability and, once healed, every node must hold the same data.

``test_fault_with_membership_changes``: the same workload against a cluster whose membership
changes (``MembershipNemesis``: kills, pauses, nodes joining with fresh ids and being promoted,
voters replaced and removed, 3 to 5 voters); the clients follow the current members, and every
remaining member must end with the same data.

Bounded form (default suite): a few short runs with fixed seeds. Long form::

    pytest -m slow tests/test_fault.py          # RESPKV_FAULT_SEEDS, RESPKV_FAULT_DURATION
    python -m tests.test_fault --seed 7 --duration 300
    python -m tests.test_fault --membership --seed 7 --duration 300

Every run prints its seed and the command that repeats its nemesis schedule and client
choices (the timing of a real cluster is not reproducible, the choices are).
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `python -m tests.test_fault`

from netproxy import NetProxy
from respkv_proc import Cluster, control_client, wait_until

from respkv.sim.linearizability import History, Kind

REGISTERS = [f"reg{i}" for i in range(3)]  # GET/SET, unique values
COUNTERS = [f"ctr{i}" for i in range(2)]  # GET/INCR
CLIENTS = 5
SOCKET_TIMEOUT = 8.0  # above request_timeout_ms (5 s): the server answers first if it can
CHECK_BUDGET_STEPS = 20_000_000
CI_SEEDS = (1, 2, 3)
CI_DURATION = float(os.environ.get("RESPKV_FAULT_DURATION", "20"))
MEMBERSHIP_CI_SEED = 11
MEMBERSHIP_CI_DURATION = float(os.environ.get("RESPKV_FAULT_MEMBERSHIP_DURATION", "25"))
MEMBERSHIP_RAFT = (
    "snapshot_threshold = 200\nsnapshot_tail = 20"  # joiners also catch up by snapshot
)


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
        self.t0 = time.monotonic()

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
        self.send(node, conn, key, kind, value, argv)

    def send(
        self,
        node: int,
        conn: redis.Connection,
        key: str,
        kind: Kind,
        value: str | None,
        argv: tuple[str, ...],
    ) -> None:
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
                        self.stats.unexpected.append(
                            f"{time.monotonic() - self.t0:.1f}s {argv} on node {node}: {e}"
                        )
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

    def __init__(
        self, seed: int, cluster: Cluster, proxy: NetProxy | None, stop: threading.Event
    ) -> None:
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
        for i in self.cluster.ids:
            node = self.cluster.nodes[i]
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
        if kind in ("kill", "pause"):
            self.kill_or_pause(kind, target, hold)
        else:
            assert proxy is not None
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

    def kill_or_pause(self, kind: str, target: int, hold: float) -> None:
        cluster = self.cluster
        if kind == "kill":
            self.note(f"SIGKILL node {target}")
            self.killed.add(target)
            cluster.kill(target)
            self.stop_event.wait(hold)
            cluster.restart(target)
            self.killed.discard(target)
            self.note(f"restarted node {target}")
        else:
            self.note(f"SIGSTOP node {target}")
            cluster.nodes[target].signal(signal.SIGSTOP)
            self.stop_event.wait(hold)
            cluster.nodes[target].signal(signal.SIGCONT)
            self.note(f"SIGCONT node {target}")

    def heal_all(self) -> None:
        self.check_crashes()
        if self.proxy is not None:
            self.proxy.heal()
        for i in self.cluster.ids:
            node = self.cluster.nodes[i]
            if node.proc is not None and node.proc.poll() is None:
                node.signal(signal.SIGCONT)
            else:
                self.cluster.restart(i)
                self.note(f"restarted node {i}")


def cluster_status(cluster: Cluster, node_id: int) -> dict[str, Any]:
    """``CLUSTER STATUS`` of one node (RESP3 map), keys decoded."""
    with redis.Redis(
        port=cluster.port(node_id),
        protocol=3,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    ) as r:
        raw = r.execute_command("CLUSTER", "STATUS")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def member_roles(cluster: Cluster, node_id: int) -> dict[int, str]:
    """{member id: "voter" | "learner"} as ``node_id`` sees the membership."""
    return {int(m[b"id"]): m[b"role"].decode() for m in cluster_status(cluster, node_id)["members"]}


class MembershipNemesis(Nemesis):
    """Kills and pauses as ``Nemesis`` (no partitions), plus membership changes: add a node
    (it joins as a learner and is promoted), replace a voter (add first, then ``CLUSTER
    REMOVE`` an old member), remove a voter while more than 3 remain. The cluster keeps 3 to
    5 voters; new nodes get fresh ids (4, 5, ...). The node removed is the leader more often
    than not (it hands over first), and clients keep using it until it has exited."""

    FAULTS = ("kill", "pause", "replace", "replace", "add", "remove")
    MAX_VOTERS = 5

    def __init__(
        self,
        seed: int,
        cluster: Cluster,
        stop: threading.Event,
        stats: Stats,
    ) -> None:
        super().__init__(seed, cluster, None, stop)
        self.stats = stats
        self.next_id = max(cluster.ids) + 1
        self.added: list[int] = []
        self.removed: list[int] = []

    def fault(self) -> None:
        self.check_crashes()
        rng, cluster = self.rng, self.cluster
        kind = rng.choice(self.FAULTS)
        members = len(cluster.ids)
        if kind in ("add", "replace") and members >= self.MAX_VOTERS:
            kind = "remove"
        if kind == "remove" and members <= 3:
            kind = "replace"
        if kind in ("kill", "pause"):
            self.kill_or_pause(kind, self.leader_or_random(), rng.uniform(1.5, 4.0))
        elif kind == "add":
            self.add()
        elif kind == "replace":
            self.add()
            self.remove(self.leader_or_random())
        else:
            self.remove(self.leader_or_random())

    def leader(self) -> int:
        return self.cluster.wait_leader(timeout=30)

    def add(self) -> None:
        cluster = self.cluster
        new_id = self.next_id
        self.next_id += 1
        via = self.rng.choice(cluster.ids)
        node = cluster.add_node(new_id, f"127.0.0.1:{cluster.nodes[via].peer_port}")
        self.note(f"start node {new_id}, joining through node {via}")
        node.start(wait=False)
        cluster.wait_started(new_id, timeout=30)
        self.added.append(new_id)
        roles = wait_until(
            lambda: (r := member_roles(cluster, self.leader())).get(new_id) and r,
            30,
            f"node {new_id} in the membership",
        )
        self.note(f"node {new_id} is a member ({roles[new_id]})")
        wait_until(
            lambda: member_roles(cluster, self.leader()).get(new_id) == "voter",
            60,
            f"node {new_id} to be promoted to voter",
        )
        self.note(f"node {new_id} promoted to voter")

    def remove(self, target: int) -> None:
        cluster = self.cluster
        voters = [i for i, role in member_roles(cluster, self.leader()).items() if role == "voter"]
        assert target in voters and len(voters) > 3, f"removing {target} from voters {voters}"
        via = self.rng.choice(cluster.ids)  # maybe the target itself
        leader = cluster.current_leader()
        self.note(f"CLUSTER REMOVE {target} sent to node {via} (leader {leader})")

        sent = False

        def gone() -> bool:
            nonlocal sent
            others = [i for i in cluster.ids if i != target]
            if all(target not in member_roles(cluster, i) for i in others):
                return True
            if not sent:  # again only if it failed (then it did nothing)
                with control_client(cluster.port(via), 10.0) as r:
                    reply = r.execute_command("CLUSTER", "REMOVE", str(target))
                assert reply == b"OK", f"CLUSTER REMOVE {target}: {reply!r}"
                sent = True
            return False

        wait_until(gone, 30, f"node {target} to leave the membership", interval=0.3)
        proc = cluster.nodes[target].proc
        assert proc is not None
        status = proc.wait(20)
        assert status == 0, f"removed node {target} exited with status {status}"
        cluster.forget(target)
        self.removed.append(target)
        self.note(f"node {target} removed (exited with status 0); members {cluster.ids}")


@dataclass
class RunResult:
    seed: int
    duration: float
    operations: int
    stats: Stats
    check: str
    events: list[str]


def run_fault(
    seed: int,
    duration: float,
    workdir: Path,
    membership: bool = False,
) -> RunResult:
    """One run; raises AssertionError naming the seed if anything is wrong. ``membership``:
    the nemesis kills, pauses and changes the membership (``MembershipNemesis``) instead of
    killing, pausing and partitioning."""
    flag = " --membership" if membership else ""
    repro = f"python -m tests.test_fault{flag} --seed {seed} --duration {duration:g}"
    what = "membership fault run" if membership else "fault run"
    print(f"\n{what}: seed {seed}, {duration:g}s (reproduce: {repro})", flush=True)
    with contextlib.ExitStack() as stack:
        proxy = None if membership else stack.enter_context(NetProxy())
        cluster = stack.enter_context(
            Cluster(workdir, 3, raft_extra=MEMBERSHIP_RAFT)
            if proxy is None
            else Cluster(workdir, 3, listed_address=proxy.add_node)
        )
        cluster.start()
        cluster.wait_leader(timeout=30)
        history = History(time.monotonic)
        stop_clients, stop_nemesis = threading.Event(), threading.Event()
        stats = Stats()
        clients = [Client(c, seed, cluster, history, stop_clients, stats) for c in range(CLIENTS)]
        nemesis: Nemesis = (
            MembershipNemesis(seed, cluster, stop_nemesis, stats)
            if membership
            else Nemesis(seed, cluster, proxy, stop_nemesis)
        )
        for thread in [*clients, nemesis]:
            thread.start()
        time.sleep(duration)  # the run itself: clients and nemesis work meanwhile
        stop_nemesis.set()
        nemesis.join(60)
        assert not nemesis.is_alive(), "the nemesis did not stop"
        nemesis.heal_all()
        nemesis.note("healed everything")
        # Let the clients see the healed cluster for a moment, then stop them.
        context = f"seed {seed} ({repro})\nnemesis:\n  " + "\n  ".join(nemesis.events)
        try:
            wait_until(lambda: cluster.current_leader() is not None, 30, "a leader after healing")
            ok_before = stats.ok
            wait_until(lambda: stats.ok > ok_before + 50, 30, "client progress after healing")
        except TimeoutError as e:
            raise AssertionError(f"{e}; {context}") from None
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
            assert dump == reference, (
                f"node {i} differs from node {cluster.ids[0]}: {dump} vs {reference}; {context}"
            )
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
        print(f"final members: {cluster.ids}", flush=True)
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


@pytest.mark.integration
def test_fault_with_membership_changes(tmp_path: Path) -> None:
    run_fault(MEMBERSHIP_CI_SEED, MEMBERSHIP_CI_DURATION, tmp_path, membership=True)


@pytest.mark.integration
@pytest.mark.slow
def test_fault_with_membership_changes_long(tmp_path: Path) -> None:
    seeds = [
        int(s) for s in os.environ.get("RESPKV_FAULT_MEMBERSHIP_SEEDS", "200,201,202").split(",")
    ]
    duration = float(os.environ.get("RESPKV_FAULT_LONG_DURATION", "120"))
    for seed in seeds:
        run_fault(seed, duration, tmp_path / f"seed{seed}", membership=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="seeds seed, seed+1, ...")
    parser.add_argument("--keep", action="store_true", help="keep the logs of passing runs")
    parser.add_argument(
        "--membership", action="store_true", help="kills, pauses and membership changes"
    )
    args = parser.parse_args()
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    for seed in range(first, first + args.runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"respkv-fault-{seed}-"))
        try:
            run_fault(
                seed,
                args.duration,
                workdir,
                membership=args.membership,
            )
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
