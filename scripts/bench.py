#!/usr/bin/env python3
"""Benchmark respkv against a real redis-server, side by side, in one run.

Starts on free loopback ports:

* ``respkv``         a single respkv node (fresh temporary data dir, ``[raft] fsync = true``);
* ``redis-durable``  redis-server with ``--appendonly yes --appendfsync always --save ''``;
* ``redis-memory``   redis-server with ``--save '' --appendonly no``;

then runs the same ``redis-benchmark --csv`` loads against each, alternating the targets run by
run (A B C A B C ...) for ``--rounds`` rounds, and prints medians, the CPU time per request of
each server process (utime + stime from ``/proc/<pid>/stat``), the respkv/redis ratios and
whether the performance targets are MET or MISSED.

``--cluster 3`` instead starts a static 3-node respkv cluster and measures SET and GET at 50
clients spread over all nodes and directed at the leader, then the failover time (SIGKILL the
leader, time until a SET succeeds on a surviving node).

``--join-benchmark [KEYS]`` loads KEYS keys (default 1,000,000 x 100 bytes) into one node, then
starts a second node with ``[cluster] join`` while SET -c 50 runs against the first, and times
the snapshot export, transfer and install, the promotion to voter, and the write rate per second.

Only 127.0.0.1 is ever targeted. Every subprocess has a timeout, and every process this script
starts runs in its own process group, which is killed at the end (also on Ctrl-C or errors).
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the only address this script ever talks to
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Process handling: every child in its own process group, all of them killed in the end.
# ---------------------------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen[bytes]] = []
_CHILDREN_LOCK = threading.Lock()


def spawn(
    argv: Sequence[str],
    *,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.DEVNULL,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in a new session (own process group) and remember it for cleanup."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)
    return proc


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, wait: float = 5.0) -> None:
    """Send ``sig`` to the child's process group and reap it (SIGKILL if it does not exit)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=wait)
    with _CHILDREN_LOCK:
        if proc in _CHILDREN:
            _CHILDREN.remove(proc)


def kill_all_children() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for proc in procs:  # polite first, so servers can close their stores
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        kill_group(proc, signal.SIGKILL, wait=5.0)


def run_bounded(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    """Run a child to completion within ``timeout`` seconds; kill its group otherwise."""
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
        with _CHILDREN_LOCK:
            if proc in _CHILDREN:
                _CHILDREN.remove(proc)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class BenchError(Exception):
    pass


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()  # fields from 3 (state) on
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ---------------------------------------------------------------------------------------------
# A tiny RESP client (readiness checks, INFO raft, the failover probe).
# ---------------------------------------------------------------------------------------------


class RespError(Exception):
    pass


def _read_reply(f: io.BufferedReader) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RespError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        n = int(body)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed")
        return data[:-2]
    if kind == b"*":
        n = int(body)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ConnectionError(f"unexpected reply {line[:40]!r}")


def resp_call(port: int, *args: str | bytes, timeout: float = 2.0) -> Any:
    """Send one command to 127.0.0.1:port on a fresh connection and return the reply."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(b"".join(parts))
        with s.makefile("rb") as f:
            return _read_reply(f)


def info_section(port: int, section: str, timeout: float = 2.0) -> dict[str, str]:
    raw = resp_call(port, "INFO", section, timeout=timeout)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RespError, ValueError):
            if pred():
                return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """One server process (respkv node or redis-server) on 127.0.0.1:port."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_file: Any = None

    def start(self, ready_timeout: float) -> None:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = spawn(
            self.argv, stdout=self.log_file, stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.proc.returncode}\n{self.log_tail()}"
                )
            return bool(resp_call(self.port, "PING", timeout=1.0) == "PONG")

        try:
            wait_until(ready, ready_timeout, f"{self.name} to answer PING on port {self.port}")
        except BenchError as e:
            raise BenchError(f"{e}\n{self.log_tail()}") from None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            kill_group(self.proc, sig, wait=10.0)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  [{self.name} log] {line}" for line in lines[-n:])


def respkv_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "respkv.server.cli", "serve", "--config", str(config)]


def respkv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def _toml_value(v: str) -> str:
    """Render a --raft-option value: integers and booleans as is, anything else quoted."""
    if v.lower() in ("true", "false"):
        return v.lower()
    try:
        int(v)
    except ValueError:
        return json.dumps(v)
    return v


def respkv_config(
    *,
    node_id: int,
    peer_port: int,
    client_port: int,
    data_root: Path,
    members: Sequence[tuple[int, int, int]] = (),
    raft_options: dict[str, str] | None = None,
    log_level: str = "warning",
) -> str:
    """A respkv TOML config (see config/node1.toml). members: (id, peer_port, client_port)."""
    lines = [
        "[cluster]",
        f"node_id = {node_id}",
        f'listen_address = "{HOST}:{peer_port}"',
    ]
    if members:
        lines.append("initial_cluster = [")
        for mid, mpeer, mclient in members:
            lines.append(
                f'    {{ id = {mid}, address = "{HOST}:{mpeer}", '
                f'client_address = "{HOST}:{mclient}" }},'
            )
        lines.append("]")
    lines += [
        f"db_root_dir = {json.dumps(str(data_root))}",
        "",
        "[server]",
        f'bind = "{HOST}"',
        f"port = {client_port}",
        f'log_level = "{log_level}"',
        "",
        "[raft]",
    ]
    opts = {"fsync": "true", **(raft_options or {})}
    lines += [f"{k} = {_toml_value(v)}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


def start_respkv_single(
    workdir: Path, raft_options: dict[str, str], ready_timeout: float, log_level: str
) -> Server:
    client_port, peer_port = free_ports(2)
    d = workdir / "respkv"
    d.mkdir()
    cfg = d / "respkv.toml"
    cfg.write_text(
        respkv_config(
            node_id=1,
            peer_port=peer_port,
            client_port=client_port,
            data_root=d / "data",
            raft_options=raft_options,
            log_level=log_level,
        )
    )
    srv = Server("respkv", respkv_argv(cfg), client_port, d / "server.log", REPO, respkv_env())
    srv.start(ready_timeout)
    return srv


def start_respkv_cluster(
    n: int, workdir: Path, raft_options: dict[str, str], ready_timeout: float, log_level: str
) -> list[Server]:
    """Start an n-node static respkv cluster (same layout as config/node*.toml)."""
    ports = free_ports(2 * n)
    members = [(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    d = workdir / f"cluster{n}"
    d.mkdir()
    servers: list[Server] = []
    for node_id, peer_port, client_port in members:
        cfg = d / f"node{node_id}.toml"
        cfg.write_text(
            respkv_config(
                node_id=node_id,
                peer_port=peer_port,
                client_port=client_port,
                data_root=d / "data",
                members=members,
                raft_options=raft_options,
                log_level=log_level,
            )
        )
        srv = Server(
            f"respkv-node{node_id}",
            respkv_argv(cfg),
            client_port,
            d / f"node{node_id}.log",
            REPO,
            respkv_env(),
        )
        servers.append(srv)
    for srv in servers:  # a node answers PING before the cluster has a leader
        srv.start(ready_timeout)
    return servers


def start_redis(name: str, workdir: Path, durable: bool, ready_timeout: float) -> Server:
    (port,) = free_ports(1)
    d = workdir / name
    d.mkdir()
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--dir",
        str(d),
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    if durable:
        argv += ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        argv += ["--appendonly", "no"]
    srv = Server(name, argv, port, d / "server.log")
    srv.start(ready_timeout)
    return srv


def raft_info(port: int, timeout: float = 1.0) -> dict[str, str]:
    return info_section(port, "raft", timeout=timeout)


def find_leader(servers: Sequence[Server], timeout: float) -> Server:
    """Wait until a live node reports raft_role:leader and every live node agrees on it."""
    found: list[Server] = []

    def check() -> bool:
        found.clear()
        live = [s for s in servers if s.alive()]
        infos = {}
        for s in live:
            with contextlib.suppress(OSError, RespError):
                infos[s.name] = raft_info(s.port)
        leaders = [s for s in live if infos.get(s.name, {}).get("raft_role") == "leader"]
        if len(leaders) != 1:
            return False
        leader_id = infos[leaders[0].name].get("raft_node_id")
        if any(infos.get(s.name, {}).get("raft_leader_id") != leader_id for s in live):
            return False
        found.append(leaders[0])
        return True

    wait_until(check, timeout, "a raft leader", interval=0.05)
    return found[0]


# ---------------------------------------------------------------------------------------------
# Loads and targets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    id: str
    test: str  # redis-benchmark -t name
    clients: int
    pipeline: int
    request_factor: float  # requests = round(N * factor)
    command: tuple[str, ...] = ()  # a command line instead of redis-benchmark's -t test

    @property
    def label(self) -> str:
        s = f"{self.test.upper()} -c {self.clients}"
        return s + (f" -P {self.pipeline}" if self.pipeline > 1 else "")

    def requests(self, n: int) -> int:
        return max(100, round(n * self.request_factor))


LOADS: list[Load] = [
    Load("set_c50", "set", 50, 1, 1.0),
    Load("get_c50", "get", 50, 1, 1.0),
    Load("incr_c50", "incr", 50, 1, 1.0),
    Load("set_c50_p16", "set", 50, 16, 5.0),
    Load("get_c50_p16", "get", 50, 16, 5.0),
    Load("incr_c50_p16", "incr", 50, 16, 5.0),
    Load("set_c1", "set", 1, 1, 0.05),
    # Collections: redis-benchmark's own tests fill myhash, mylist, myset and myzset.
    Load("hset_c50", "hset", 50, 1, 1.0),
    Load("hget_c50", "hget", 50, 1, 1.0, ("HGET", "myhash", "element:__rand_int__")),
    Load("lpush_c50", "lpush", 50, 1, 1.0),
    Load("lpop_c50", "lpop", 50, 1, 1.0),
    Load("sadd_c50", "sadd", 50, 1, 1.0),
    Load("zadd_c50", "zadd", 50, 1, 1.0),
    Load("zrange_c50", "zrange", 50, 1, 1.0, ("ZRANGE", "myzset", "0", "9")),
]
CLUSTER_LOADS = ["set_c50", "get_c50"]

# respkv/redis ratios: writes against the durable baseline, reads against the in-memory one.
BASELINE_FOR_TEST = {
    **dict.fromkeys(("set", "incr", "hset", "lpush", "lpop", "sadd", "zadd"), "redis-durable"),
    **dict.fromkeys(("get", "hget", "zrange"), "redis-memory"),
}


@dataclass
class Target:
    """What a load runs against: one or more client ports, and the server pids to charge CPU to."""

    name: str
    endpoints: Callable[[], list[int]]  # re-evaluated per run (the leader may move)
    pids: Callable[[], list[int]]
    is_respkv: bool


def single_target(srv: Server, is_respkv: bool) -> Target:
    return Target(srv.name, lambda: [srv.port], lambda: [srv.pid], is_respkv)


def cluster_target(name: str, nodes: list[Server], leader_only: bool, timeout: float) -> Target:
    """Loads spread over all nodes, or directed at the current leader; CPU of all nodes."""

    def endpoints() -> list[int]:
        if leader_only:
            return [find_leader(nodes, timeout).port]
        return [s.port for s in nodes if s.alive()]

    return Target(name, endpoints, lambda: [s.pid for s in nodes if s.alive()], True)


@dataclass
class RunResult:
    round: int
    load: str
    target: str
    requests: int
    rps: float
    avg_ms: float
    min_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    cpu_us_per_req: float
    cpu_ticks: int  # resolution: CPU time is counted in clock ticks (1/SC_CLK_TCK s)
    wall_s: float
    endpoints: list[int]
    errors: list[str] = field(default_factory=list)


CSV_FIELDS = ("rps", "avg_latency_ms", "min_latency_ms", "p50_latency_ms", "p95_latency_ms")


def parse_csv(text: str) -> dict[str, dict[str, float]]:
    """Parse ``redis-benchmark --csv`` (7.0: test, rps, avg, min, p50, p95, p99, max)."""
    rows = [line for line in text.splitlines() if line.startswith('"')]
    out: dict[str, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO("\n".join(rows))):
        name = row.pop("test")
        out[name.upper()] = {k: float(v) for k, v in row.items() if v not in (None, "")}
    return out


def bench_argv(port: int, load: Load, clients: int, requests: int, keyspace: int) -> list[str]:
    argv = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-h",
        HOST,
        "-p",
        str(port),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-P",
        str(load.pipeline),
        "--csv",
    ]
    if keyspace > 0:
        argv += ["-r", str(keyspace)]
    return argv + (list(load.command) if load.command else ["-t", load.test])


def diagnose_hang(ports: list[int], pids: list[int]) -> str:
    """While a load is stuck: does the server still answer PING, and (py-spy) where is it?"""
    lines = []
    for port in ports:
        try:
            lines.append(f"  PING on port {port}: {resp_call(port, 'PING', timeout=2.0)}")
        except (OSError, RespError, ConnectionError) as e:
            lines.append(f"  PING on port {port}: {type(e).__name__}: {e}")
    py_spy = shutil.which("py-spy")
    for pid in pids:
        with contextlib.suppress(OSError):
            lines.append(f"  pid {pid}: {cpu_seconds(pid):.1f} s CPU so far")
        if py_spy:
            with contextlib.suppress(BenchError, OSError):
                _, out, err = run_bounded([py_spy, "dump", "--pid", str(pid)], 30)
                lines.append(f"  py-spy dump --pid {pid}:\n{out or err}")
    return "\n".join(lines)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    target: Target, load: Load, n: int, rnd: int, timeout: float, keyspace: int
) -> RunResult:
    """Run one load against a target; several endpoints get parallel redis-benchmarks."""
    ports = target.endpoints()
    requests = load.requests(n)
    clients = _split(load.clients, len(ports))
    reqs = _split(requests, len(ports))
    pids = target.pids()
    cpu0 = sum(cpu_seconds(p) for p in pids)
    t0 = time.monotonic()
    procs = []
    try:
        for port, c, r in zip(ports, clients, reqs, strict=True):
            procs.append(
                (
                    spawn(
                        bench_argv(port, load, c, r, keyspace),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    ),
                    r,
                )
            )
        outputs: list[tuple[str, str, int]] = []
        deadline = t0 + timeout
        for proc, r in procs:
            try:
                out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BenchError(
                    f"redis-benchmark {load.label} against {target.name} timed out after "
                    f"{timeout:.0f}s\n{diagnose_hang(ports, pids)}"
                ) from None
            if proc.returncode != 0:
                raise BenchError(
                    f"redis-benchmark {load.label} against {target.name} exited "
                    f"{proc.returncode}: {err.decode(errors='replace')[-500:]}"
                )
            outputs.append((out.decode(errors="replace"), err.decode(errors="replace"), r))
    finally:
        for proc, _ in procs:
            kill_group(proc)
    wall = time.monotonic() - t0
    cpu1 = sum(cpu_seconds(p) for p in pids)

    stats = []
    errors: list[str] = []
    for stdout, stderr, r in outputs:
        rows = parse_csv(stdout)
        if load.command and len(rows) == 1:  # named after the command line
            rows = {load.test.upper(): next(iter(rows.values()))}
        parsed = rows.get(load.test.upper())
        if parsed is None:
            raise BenchError(
                f"no CSV row for {load.test} from redis-benchmark:\n{stdout}\n{stderr}"
            )
        stats.append((parsed, r))
        errors += [line for line in stderr.splitlines() if line.strip()][:5]
    # Aggregate: the requests of all parallel clients over the duration of the slowest one.
    elapsed = max(r / s["rps"] for s, r in stats if s["rps"] > 0)
    rps = requests / elapsed if len(stats) > 1 else stats[0][0]["rps"]

    def worst(key: str) -> float:
        return max(s[key] for s, _ in stats)

    def weighted(key: str) -> float:
        return sum(s[key] * r for s, r in stats) / requests

    cpu = cpu1 - cpu0
    return RunResult(
        round=rnd,
        load=load.id,
        target=target.name,
        requests=requests,
        rps=rps,
        avg_ms=weighted("avg_latency_ms"),
        min_ms=min(s["min_latency_ms"] for s, _ in stats),
        p50_ms=worst("p50_latency_ms"),  # with several endpoints: the worst node's
        p95_ms=worst("p95_latency_ms"),
        p99_ms=worst("p99_latency_ms"),
        max_ms=worst("max_latency_ms"),
        cpu_s=cpu,
        cpu_us_per_req=cpu / requests * 1e6,
        cpu_ticks=round(cpu * CLK_TCK),
        wall_s=wall,
        endpoints=ports,
        errors=errors,
    )


# ---------------------------------------------------------------------------------------------
# Summary, goals, output
# ---------------------------------------------------------------------------------------------


@dataclass
class Summary:
    load: str
    label: str
    target: str
    runs: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    cpu_ticks: float  # median ticks per run; few ticks = coarse CPU figure
    baseline: str | None = None
    rps_ratio: float | None = None
    cpu_ratio: float | None = None


def summarize(results: list[RunResult], loads: list[Load], targets: list[Target]) -> list[Summary]:
    by_id = {ld.id: ld for ld in loads}
    out: list[Summary] = []
    med: dict[tuple[str, str], Summary] = {}
    for ld in loads:
        for t in targets:
            rs = [r for r in results if r.load == ld.id and r.target == t.name]
            if not rs:
                continue
            s = Summary(
                load=ld.id,
                label=ld.label,
                target=t.name,
                runs=len(rs),
                rps=statistics.median(r.rps for r in rs),
                p50_ms=statistics.median(r.p50_ms for r in rs),
                p99_ms=statistics.median(r.p99_ms for r in rs),
                cpu_us_per_req=statistics.median(r.cpu_us_per_req for r in rs),
                cpu_ticks=statistics.median(r.cpu_ticks for r in rs),
            )
            med[(ld.id, t.name)] = s
            out.append(s)
    for s in out:
        t = next(t for t in targets if t.name == s.target)
        if not t.is_respkv:
            continue
        base_name = BASELINE_FOR_TEST[by_id[s.load].test]
        base = med.get((s.load, base_name))
        if base is None:
            continue
        s.baseline = base_name
        s.rps_ratio = s.rps / base.rps if base.rps else None
        s.cpu_ratio = s.cpu_us_per_req / base.cpu_us_per_req if base.cpu_us_per_req else None
    return out


@dataclass(frozen=True)
class Goal:
    name: str
    load: str
    metric: str  # "rps_ratio" (>= threshold) or "p50_ms" (<= threshold)
    threshold: float


GOALS = [
    Goal("durable SET, 50 clients: rps >= redis appendfsync-always", "set_c50", "rps_ratio", 1.0),
    Goal("GET, 50 clients: rps >= 0.9x redis", "get_c50", "rps_ratio", 0.9),
    Goal("pipelined GET (-P 16): rps >= 0.4x redis", "get_c50_p16", "rps_ratio", 0.4),
    Goal("single-client durable SET: p50 <= 0.3 ms", "set_c1", "p50_ms", 0.3),
]


@dataclass
class GoalResult:
    name: str
    met: bool | None
    value: float | None
    threshold: float
    detail: str


def check_goals(summaries: list[Summary], target: str = "respkv") -> list[GoalResult]:
    out: list[GoalResult] = []
    for g in GOALS:
        s = next((s for s in summaries if s.load == g.load and s.target == target), None)
        if g.metric == "rps_ratio":
            v = s.rps_ratio if s else None
            if v is None:
                out.append(GoalResult(g.name, None, None, g.threshold, "not measured"))
                continue
            met = v >= g.threshold
            detail = f"{v:.2f}x vs {s.baseline if s else '?'} (needs >= {g.threshold:.2f}x)"
            if not met:
                detail += f"; short by {(1 - v / g.threshold) * 100:.0f}%"
        else:
            v = s.p50_ms if s else None
            if v is None:
                out.append(GoalResult(g.name, None, None, g.threshold, "not measured"))
                continue
            met = v <= g.threshold
            detail = f"p50 {v:.3f} ms (needs <= {g.threshold:.3f} ms)"
            if not met:
                detail += f"; {v / g.threshold:.1f}x over"
        out.append(GoalResult(g.name, met, v, g.threshold, detail))
    return out


def _fmt_ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}x"


COARSE_TICKS = 20  # CPU figures from fewer clock ticks than this are marked "~"
TABLE_NOTE = (
    "rps, p50, p99 and CPU: medians over the rounds (p50/p99 from redis-benchmark; with several "
    "endpoints, the worst one's). CPU µs/req: server utime+stime per request (all nodes in "
    f"cluster mode); ~ = under {COARSE_TICKS} clock ticks, coarse. Ratios: respkv/redis, SET and "
    "INCR vs redis-durable, GET vs redis-memory."
)
TABLE_HEAD = ["test", "target", "rps", "p50 ms", "p99 ms", "CPU µs/req", "rps ratio", "CPU ratio"]


def table_rows(summaries: list[Summary]) -> list[list[str]]:
    return [
        [
            s.label,
            s.target,
            f"{s.rps:,.0f}",
            f"{s.p50_ms:.3f}",
            f"{s.p99_ms:.3f}",
            ("~" if s.cpu_ticks < COARSE_TICKS else "") + f"{s.cpu_us_per_req:.1f}",
            _fmt_ratio(s.rps_ratio),
            _fmt_ratio(s.cpu_ratio),
        ]
        for s in summaries
    ]


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [TABLE_HEAD, *rows]) for i in range(len(TABLE_HEAD))]
    right = {2, 3, 4, 5, 6, 7}

    def fmt(r: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    lines = [fmt(TABLE_HEAD), fmt(["-" * w for w in widths])]
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            lines.append("")
        lines.append(fmt(r))
        prev = r[0]
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    right = {2, 3, 4, 5, 6, 7}
    lines = [
        "| " + " | ".join(TABLE_HEAD) + " |",
        "| " + " | ".join("---:" if i in right else "---" for i in range(len(TABLE_HEAD))) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_goals(goals: list[GoalResult], markdown: bool) -> str:
    lines = []
    for g in goals:
        status = "n/a" if g.met is None else ("MET" if g.met else "MISSED")
        if markdown:
            lines.append(f"| {g.name} | **{status}** | {g.detail} |")
        else:
            lines.append(f"  {status:<6}  {g.name}: {g.detail}")
    if markdown:
        lines = ["| target | status | measured |", "| --- | --- | --- |", *lines]
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    def cmd(argv: list[str]) -> str:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=10, cwd=REPO
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host_cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "redis_server": cmd(["redis-server", "--version"]),
        "respkv_commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
        "respkv_dirty": bool(cmd(["git", "status", "--porcelain", "--", "respkv"])),
        "args": {k: v for k, v in vars(args).items() if k != "func"},
    }


def env_line(env: dict[str, Any]) -> str:
    la = ", ".join(f"{x:.2f}" for x in env["loadavg"])
    dirty = " (+ uncommitted changes)" if env["respkv_dirty"] else ""
    a = env["args"]
    return (
        f"{env['date']}; {env['host_cpus']} CPUs, load average {la} at start; "
        f"Python {env['python']}; {env['redis_server'].split(' sha=')[0]}; "
        f"respkv {env['respkv_commit']}{dirty}; N={a['requests']}, {a['rounds']} rounds, medians"
    )


# ---------------------------------------------------------------------------------------------
# Failover (cluster mode)
# ---------------------------------------------------------------------------------------------


def time_first_set(ports: list[int], timeout: float) -> float | None:
    """Seconds until a SET succeeds on any of ``ports`` (one retrying prober per port)."""
    t0 = time.monotonic()
    done = threading.Event()
    result: list[float] = []
    lock = threading.Lock()

    def probe(port: int) -> None:
        i = 0
        while not done.is_set() and time.monotonic() - t0 < timeout:
            i += 1
            try:
                reply = resp_call(port, "SET", f"bench:failover:{port}", str(i), timeout=1.0)
            except (OSError, RespError, ConnectionError):
                time.sleep(0.01)
                continue
            if reply == "OK":
                with lock:
                    if not result:
                        result.append(time.monotonic() - t0)
                done.set()
                return

    threads = [threading.Thread(target=probe, args=(p,), daemon=True) for p in ports]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout + 2.0)
    done.set()
    return result[0] if result else None


def wait_caught_up(servers: list[Server], node: Server, timeout: float) -> None:
    """Wait until ``node`` knows the leader and has applied what the leader had committed."""
    leader = find_leader(servers, timeout)
    target = int(raft_info(leader.port)["raft_commit_index"])

    def ok() -> bool:
        info = raft_info(node.port)
        return (
            info.get("raft_leader_id") not in ("", "0", "None")
            and int(info["raft_applied_index"]) >= target
        )

    wait_until(ok, timeout, f"{node.name} to catch up to index {target}")


def failover_trials(
    servers: list[Server], trials: int, args: argparse.Namespace
) -> list[float | None]:
    times: list[float | None] = []
    for k in range(trials):
        leader = find_leader(servers, args.ready_timeout)
        survivors = [s for s in servers if s is not leader and s.alive()]
        assert leader.proc is not None
        os.killpg(leader.proc.pid, signal.SIGKILL)
        t = time_first_set([s.port for s in survivors], args.failover_timeout)
        leader.proc.wait(timeout=10)
        leader.stop()
        new_leader = "?"
        with contextlib.suppress(BenchError):
            new_leader = find_leader(survivors, args.ready_timeout).name
        shown = "no SET succeeded" if t is None else f"{t * 1000:.0f} ms"
        print(
            f"  failover trial {k + 1}/{trials}: killed {leader.name}: {shown} (new leader {new_leader})",
            file=sys.stderr,
            flush=True,
        )
        times.append(t)
        leader.start(args.ready_timeout)  # same config and data dir: it rejoins
        wait_caught_up(servers, leader, args.ready_timeout)
        time.sleep(args.settle)
    return times


# ---------------------------------------------------------------------------------------------
# Joining a learner (--join-benchmark)
# ---------------------------------------------------------------------------------------------

JOIN_KEY_FORMAT = "key:%012d"  # redis-benchmark -r's key names: the steady load overwrites them


def load_keys(port: int, keys: int, value_size: int, timeout: float, threads: int = 4) -> float:
    """Write ``keys`` distinct keys (key:000000000000 ...) with MSET over a few pipelined
    connections; returns the seconds it took."""
    batch, depth = 500, 4  # keys per MSET, MSETs in flight per connection
    t0 = time.monotonic()
    deadline = t0 + timeout
    errors: list[BaseException] = []

    def worker(lo: int, hi: int) -> None:
        try:
            with socket.create_connection((HOST, port), timeout=60.0) as s, s.makefile("rb") as f:
                pending = 0
                for start in range(lo, hi, batch):
                    if time.monotonic() > deadline:
                        raise BenchError(f"loading {keys} keys took over {timeout:.0f}s")
                    n = min(batch, hi - start)
                    blob = os.urandom((value_size + 1) // 2 * n).hex()
                    parts = [b"*%d\r\n$4\r\nMSET\r\n" % (2 * n + 1)]
                    for i in range(n):
                        k = (JOIN_KEY_FORMAT % (start + i)).encode()
                        v = blob[i * value_size : (i + 1) * value_size].encode()
                        parts.append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
                    s.sendall(b"".join(parts))
                    pending += 1
                    if pending >= depth:
                        _read_reply(f)
                        pending -= 1
                for _ in range(pending):
                    _read_reply(f)
        except BaseException as e:  # reported by the caller
            errors.append(e)

    bounds = [0]
    for part in _split(keys, threads):
        bounds.append(bounds[-1] + part)
    workers = [
        threading.Thread(target=worker, args=(bounds[i], bounds[i + 1]), daemon=True)
        for i in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(max(1.0, deadline - time.monotonic()) + 5.0)
    if any(w.is_alive() for w in workers):
        raise BenchError(f"loading {keys} keys took over {timeout:.0f}s")
    if errors:
        raise BenchError(f"loading keys failed: {type(errors[0]).__name__}: {errors[0]}")
    return time.monotonic() - t0


class CommandRateSampler:
    """Polls INFO stats total_commands_processed of one server every second, in a thread."""

    def __init__(self, port: int, interval: float = 1.0) -> None:
        self.port = port
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (monotonic time, total_commands_processed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RespError, ConnectionError, ValueError, KeyError):
                t = time.monotonic()
                n = int(info_section(self.port, "stats", timeout=0.9)["total_commands_processed"])
                self.samples.append((t, n))
            nxt += self.interval
            self._stop.wait(max(0.0, nxt - time.monotonic()))


@dataclass
class JoinResult:
    keys: int
    value_size: int
    dbsize: int
    load_s: float
    snapshot_index: int | None = None
    export_bytes: int | None = None
    export_s: float | None = None
    to_receiving_s: float | None = None  # node 2 started -> "receiving a snapshot"
    transfer_install_s: float | None = None  # "receiving" -> "installed" (observed)
    install_s: float | None = None  # the "installed ... in X s" figure alone
    mb_s: float | None = None  # export_bytes / transfer_install_s
    to_installed_s: float | None = None  # node 2 started -> "installed"
    to_voter_s: float | None = None  # node 2 started -> raft_voters contains 2
    node2_dbsize: int | None = None
    snapshots_received: int = 0  # "receiving a snapshot" lines in node 2's log
    buckets: list[tuple[float, float, str]] = field(default_factory=list)  # (t, rps, phase)
    before_rps: float | None = None
    during_rps: float | None = None
    during_min_rps: float | None = None
    after_rps: float | None = None
    load_clients: int = 50
    notes: list[str] = field(default_factory=list)


def _first_match(path: Path, needle: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if needle in line:
                    return line
    except OSError:
        pass
    return None


def _count_lines(path: Path, needle: str) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if needle in line)
    except OSError:
        return 0


def _number_after(line: str, word: str) -> float | None:
    rest = line.split(word, 1)[1].split()
    if not rest:
        return None
    token = rest[0].strip("(),s")
    try:
        return float(token)
    except ValueError:
        return None


def join_benchmark(
    workdir: Path,
    raft_options: dict[str, str],
    args: argparse.Namespace,
    servers: list[Server],
    log: Callable[[str], None],
) -> JoinResult:
    """Node 1 alone with KEYS keys; node 2 joins while SET -c 50 runs against node 1."""
    keys = args.join_benchmark
    d = workdir / "join"
    d.mkdir()
    p1_peer, p1_client, p2_peer, p2_client = free_ports(4)
    (d / "node1.toml").write_text(
        respkv_config(
            node_id=1,
            peer_port=p1_peer,
            client_port=p1_client,
            data_root=d / "data1",
            members=[(1, p1_peer, p1_client)],
            raft_options=raft_options,
            log_level="info",
        )
    )
    node2_cfg = respkv_config(
        node_id=2,
        peer_port=p2_peer,
        client_port=p2_client,
        data_root=d / "data2",
        raft_options=raft_options,
        log_level="info",
    ).replace("[cluster]\n", f'[cluster]\njoin = "{HOST}:{p1_peer}"\n', 1)
    (d / "node2.toml").write_text(node2_cfg)
    env = respkv_env()
    n1 = Server(
        "respkv-node1", respkv_argv(d / "node1.toml"), p1_client, d / "node1.log", REPO, env
    )
    n2 = Server(
        "respkv-node2", respkv_argv(d / "node2.toml"), p2_client, d / "node2.log", REPO, env
    )
    servers.append(n1)
    n1.start(args.ready_timeout)
    find_leader([n1], args.ready_timeout)
    log(f"node 1 up (port {n1.port}); loading {keys:,} keys of {args.value_size} bytes")

    load_s = load_keys(n1.port, keys, args.value_size, args.join_timeout)
    dbsize = int(resp_call(n1.port, "DBSIZE", timeout=30.0))
    log(f"loaded in {load_s:.1f}s ({keys / load_s:,.0f} keys/s); DBSIZE {dbsize:,}")
    if dbsize != keys:
        raise BenchError(f"DBSIZE is {dbsize} after loading {keys} distinct keys")
    res = JoinResult(keys=keys, value_size=args.value_size, dbsize=dbsize, load_s=load_s)
    res.load_clients = 50
    info = raft_info(n1.port)
    log(
        f"node 1 raft: first_index {info.get('raft_first_index')}, "
        f"applied {info.get('raft_applied_index')}"
    )
    time.sleep(args.settle)

    # The steady write load, for much longer than needed; killed once the join is measured.
    total = args.join_before + args.join_timeout + args.join_after + 60
    load_argv = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-h",
        HOST,
        "-p",
        str(n1.port),
        "-t",
        "set",
        "-c",
        str(res.load_clients),
        "-n",
        str(int(200_000 * total)),
        "-r",
        str(keys),
        "-d",
        str(args.value_size),
        "-q",
    ]
    sampler = CommandRateSampler(n1.port)
    load_proc = spawn(load_argv)
    try:
        sampler.start()
        time.sleep(args.join_before)
        if load_proc.poll() is not None:
            raise BenchError(f"the steady SET load exited early ({load_proc.returncode})")
        log(f"starting node 2 (join {HOST}:{p1_peer}) under SET -c {res.load_clients}")
        servers.append(n2)
        t_join = time.monotonic()
        n2.start(args.ready_timeout)
        t_receiving = t_installed = t_voter = None
        deadline = t_join + args.join_timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            if t_receiving is None and _first_match(n2.log_path, "receiving a snapshot"):
                t_receiving = now
                log(f"  +{now - t_join:.2f}s node 2 is receiving a snapshot")
            if t_installed is None and _first_match(n2.log_path, "installed the leader's snapshot"):
                t_installed = now
                log(f"  +{now - t_join:.2f}s node 2 installed the snapshot")
            if t_voter is None:
                with contextlib.suppress(OSError, RespError, ConnectionError):
                    voters = raft_info(n1.port).get("raft_voters", "").split(",")
                    if "2" in voters:
                        t_voter = now
                        log(f"  +{now - t_join:.2f}s node 2 is a voter")
            if t_voter is not None:
                break
            if not n2.alive():
                raise BenchError(f"node 2 exited ({n2.proc.returncode if n2.proc else '?'})")
            if load_proc.poll() is not None:
                raise BenchError(f"the steady SET load exited early ({load_proc.returncode})")
            time.sleep(0.05)
        if t_voter is None:
            res.notes.append(f"node 2 was not a voter {args.join_timeout:.0f}s after its start")
            log(res.notes[-1])
        t_after = time.monotonic()
        time.sleep(args.join_after)
        t_end = time.monotonic()
    finally:
        sampler.stop()
        kill_group(load_proc)

    # -- figures from the logs -----------------------------------------------------------------
    exported = _first_match(n1.log_path, "exported (")
    if exported:
        res.snapshot_index = int(_number_after(exported, "snapshot at index") or 0) or None
        b = _number_after(exported, "exported (")
        res.export_bytes = int(b) if b is not None else None
        res.export_s = _number_after(exported, "bytes in")
    else:
        res.notes.append("node 1 logged no snapshot export (node 2 caught up from the log?)")
    res.snapshots_received = _count_lines(n2.log_path, "receiving a snapshot")
    if res.snapshots_received > 1:
        res.notes.append(
            f"node 2 received {res.snapshots_received} snapshots: the leader compacted its log "
            "past each snapshot's index before node 2 had installed it (figures above: the first)"
        )
    installed = _first_match(n2.log_path, "installed the leader's snapshot")
    if installed:
        res.install_s = _number_after(" in " + installed.rsplit(" in ", 1)[-1], " in ")
    if t_receiving is not None:
        res.to_receiving_s = t_receiving - t_join
    if t_receiving is not None and t_installed is not None:
        res.transfer_install_s = t_installed - t_receiving
        res.to_installed_s = t_installed - t_join
        if res.export_bytes and res.transfer_install_s > 0:
            res.mb_s = res.export_bytes / 1e6 / res.transfer_install_s
    if t_voter is not None:
        res.to_voter_s = t_voter - t_join
    with contextlib.suppress(OSError, RespError, ConnectionError, ValueError):
        res.node2_dbsize = int(resp_call(n2.port, "DBSIZE", timeout=30.0))

    # -- the write rate in 1-second buckets ----------------------------------------------------
    s = sampler.samples
    join_end = t_voter if t_voter is not None else t_after
    for (ta, na), (tb, nb) in itertools.pairwise(s):
        if tb <= ta:
            continue
        rate = (nb - na - 1) / (tb - ta)  # minus our own INFO call
        mid = (ta + tb) / 2
        phase = "before" if tb <= t_join else ("after" if ta >= join_end else "during")
        if ta >= t_end:
            break
        res.buckets.append((mid - t_join, rate, phase))

    def med(phase: str) -> float | None:
        xs = [r for _, r, p in res.buckets if p == phase]
        return statistics.median(xs) if xs else None

    res.before_rps, res.during_rps, res.after_rps = med("before"), med("during"), med("after")
    during = [r for _, r, p in res.buckets if p == "during"]
    res.during_min_rps = min(during) if during else None
    return res


def _fmt(v: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if v is None else format(v, spec) + unit


def render_join(res: JoinResult, markdown: bool) -> str:
    rows = [
        ("keys loaded on node 1 (DBSIZE)", f"{res.dbsize:,} x {res.value_size} B"),
        ("initial load (MSET, 4 connections)", f"{res.load_s:.1f} s"),
        ("node 2 start -> 'receiving a snapshot'", _fmt(res.to_receiving_s, ".2f", " s")),
        ("snapshot index", str(res.snapshot_index) if res.snapshot_index else "n/a"),
        (
            "snapshot export (node 1)",
            "n/a"
            if res.export_bytes is None
            else f"{res.export_bytes / 1e6:.1f} MB in {_fmt(res.export_s, '.2f', ' s')}",
        ),
        ("transfer + install (receiving -> installed)", _fmt(res.transfer_install_s, ".2f", " s")),
        ("  of which install (node 2's log)", _fmt(res.install_s, ".2f", " s")),
        ("  transfer + install rate", _fmt(res.mb_s, ".1f", " MB/s")),
        ("node 2 start -> snapshot installed", _fmt(res.to_installed_s, ".2f", " s")),
        ("node 2 start -> voter (INFO raft raft_voters)", _fmt(res.to_voter_s, ".2f", " s")),
        ("snapshots node 2 received", str(res.snapshots_received)),
        (
            "node 2 DBSIZE at the end",
            "n/a" if res.node2_dbsize is None else f"{res.node2_dbsize:,}",
        ),
        (
            f"SET -c {res.load_clients} on node 1, before: median",
            _fmt(res.before_rps, ",.0f", " /s"),
        ),
        ("  during the join: median", _fmt(res.during_rps, ",.0f", " /s")),
        ("  during the join: lowest 1 s bucket", _fmt(res.during_min_rps, ",.0f", " /s")),
        ("  after (voter, or the timeout): median", _fmt(res.after_rps, ",.0f", " /s")),
    ]
    buckets = " ".join(f"{r / 1000:.1f}{p[0]}" for _, r, p in res.buckets)
    if markdown:
        lines = ["| measure | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in rows]
        lines.append("")
        lines.append(f"Writes/s in 1 s buckets, thousands (b/d/a = before/during/after): {buckets}")
    else:
        w = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(w)}  {v}" for k, v in rows]
        lines.append("")
        lines.append(f"writes/s per 1 s, thousands (b/d/a = before/during/after): {buckets}")
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_raft_options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise SystemExit(f"--raft-option expects KEY=VALUE, got {item!r}")
        out[k.strip()] = v.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            "Loads (N = --requests): SET/GET/INCR at -c 50 with N requests, the same with -P 16 "
            "and 5N requests, and SET at -c 1 with N/20 requests. Targets: respkv (single node, "
            "fsync on), redis-durable (appendfsync always), redis-memory (no persistence). "
            "Ratios are respkv/redis: SET and INCR against redis-durable, GET against "
            "redis-memory. See docs/performance.md."
        ),
    )
    p.add_argument("-n", "--requests", type=int, default=20000, help="base request count N [20000]")
    p.add_argument("-r", "--rounds", type=int, default=3, help="rounds (medians are reported) [3]")
    p.add_argument(
        "--loads",
        default="",
        help="comma-separated load ids to run (default: all): " + ", ".join(ld.id for ld in LOADS),
    )
    p.add_argument(
        "--targets",
        default="respkv,redis-durable,redis-memory",
        help="comma-separated targets [respkv,redis-durable,redis-memory]",
    )
    p.add_argument(
        "--keyspace",
        type=int,
        default=0,
        help="redis-benchmark -r (random keys); 0 = one key, redis-benchmark's default [0]",
    )
    p.add_argument(
        "--raft-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra [raft] option for respkv, e.g. fsync=false or election_timeout_ms=500",
    )
    p.add_argument("--log-level", default="warning", help="respkv log level [warning]")
    p.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="instead: start an N-node respkv cluster, measure SET/GET at 50 clients spread "
        "over all nodes and at the leader, then failover time",
    )
    p.add_argument(
        "--join-benchmark",
        type=int,
        nargs="?",
        const=1_000_000,
        default=None,
        metavar="KEYS",
        help="instead: load KEYS keys [1,000,000] into one node, then time a second node joining "
        "it (snapshot export, transfer, install, promotion) under a steady SET -c 50 load",
    )
    p.add_argument("--value-size", type=int, default=100, help="join benchmark: bytes [100]")
    p.add_argument(
        "--join-before", type=float, default=10.0, help="join benchmark: load before [10 s]"
    )
    p.add_argument(
        "--join-after", type=float, default=10.0, help="join benchmark: load after [10 s]"
    )
    p.add_argument(
        "--join-timeout",
        type=float,
        default=600.0,
        help="join benchmark: for the initial load, and for node 2 to become a voter [600 s]",
    )
    p.add_argument("--failover-trials", type=int, default=5, help="cluster mode: K trials [5]")
    p.add_argument(
        "--failover-timeout", type=float, default=30.0, help="cluster mode: per trial [30 s]"
    )
    p.add_argument(
        "--settle", type=float, default=1.0, help="pause after setup and between trials [1 s]"
    )
    p.add_argument("--timeout", type=float, default=180.0, help="per redis-benchmark run [180 s]")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="server start-up [30 s]")
    p.add_argument("--tmp-dir", default=None, help="where the temporary data dirs go")
    p.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", metavar="FILE", help="write raw results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")
    return p


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    # Ctrl-C too, even where SIGINT was ignored (a background job of a non-interactive shell).
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def main_join(args: argparse.Namespace, raft_options: dict[str, str], env: dict[str, Any]) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="respkv-bench-", dir=args.tmp_dir))
    servers: list[Server] = []
    res: JoinResult | None = None

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    status = 0
    try:
        with sigterm_as_interrupt():
            log(f"work dir: {workdir}")
            res = join_benchmark(workdir, raft_options, args, servers, log)
    except KeyboardInterrupt:
        print("\nbench.py: interrupted; stopping servers", file=sys.stderr)
        status = 130
    except BenchError as e:
        print(f"bench.py: {e}", file=sys.stderr)
        for s in servers:
            print(s.log_tail(), file=sys.stderr)
        status = 1
    finally:
        for s in servers:
            s.stop()
        kill_all_children()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if res is None:
        return status or 1
    la = ", ".join(f"{x:.2f}" for x in env["loadavg"])
    dirty = " (+ uncommitted changes)" if env["respkv_dirty"] else ""
    head = (
        f"{env['date']}; {env['host_cpus']} CPUs, load average {la} at start; "
        f"Python {env['python']}; respkv {env['respkv_commit']}{dirty}; "
        f"--join-benchmark {res.keys}, {args.join_before:.0f} s before / {args.join_after:.0f} s "
        f"after, raft options {raft_options or 'default'}"
    )
    print()
    print(f"_{head}_\n" if args.markdown else head + "\n")
    print(render_join(res, args.markdown))
    if args.json:
        payload = {"environment": env, "join": asdict(res)}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nraw results: {args.json}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench.py: {tool} not found on PATH", file=sys.stderr)
            return 2
    raft_options = parse_raft_options(args.raft_option)
    wanted_targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted_targets) - {"respkv", "redis-durable", "redis-memory"}
    if unknown:
        print(f"bench.py: unknown target(s) {sorted(unknown)}", file=sys.stderr)
        return 2
    load_ids = [x.strip() for x in args.loads.split(",") if x.strip()]
    if args.cluster:
        load_ids = load_ids or CLUSTER_LOADS
    bad = set(load_ids) - {ld.id for ld in LOADS}
    if bad:
        print(f"bench.py: unknown load(s) {sorted(bad)}", file=sys.stderr)
        return 2
    loads = [ld for ld in LOADS if not load_ids or ld.id in load_ids]

    env = environment(args)
    if args.join_benchmark is not None:
        return main_join(args, raft_options, env)
    workdir = Path(tempfile.mkdtemp(prefix="respkv-bench-", dir=args.tmp_dir))
    servers: list[Server] = []
    targets: list[Target] = []
    results: list[RunResult] = []
    failover: list[float | None] = []

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    status = 0
    try:
        with sigterm_as_interrupt():
            # -- start everything ------------------------------------------------------------
            if args.cluster:
                nodes = start_respkv_cluster(
                    args.cluster, workdir, raft_options, args.ready_timeout, args.log_level
                )
                servers += nodes
                leader = find_leader(nodes, args.ready_timeout)
                log(f"cluster of {len(nodes)} up; leader {leader.name} (port {leader.port})")

                name = f"respkv-{args.cluster}n"
                targets.append(cluster_target(f"{name}-spread", nodes, False, args.ready_timeout))
                targets.append(cluster_target(f"{name}-leader", nodes, True, args.ready_timeout))
            elif "respkv" in wanted_targets:
                srv = start_respkv_single(workdir, raft_options, args.ready_timeout, args.log_level)
                servers.append(srv)
                targets.append(single_target(srv, is_respkv=True))
            for name, durable in (("redis-durable", True), ("redis-memory", False)):
                if name in wanted_targets:
                    srv = start_redis(name, workdir, durable, args.ready_timeout)
                    servers.append(srv)
                    targets.append(single_target(srv, is_respkv=False))
            log("started: " + ", ".join(f"{s.name} (port {s.port}, pid {s.pid})" for s in servers))
            log(f"work dir: {workdir}")

            # warm-up: connections, first allocations, the key for GET
            warm = Load("warmup", "set,get", 50, 1, 0.1)
            for t in targets:
                for port in t.endpoints():
                    code, _, err = run_bounded(
                        bench_argv(port, warm, 50, warm.requests(args.requests), args.keyspace),
                        args.timeout,
                    )
                    if code != 0:
                        raise BenchError(f"warm-up against {t.name} failed: {err[-500:]}")
            time.sleep(args.settle)

            # -- measure: A B C A B C ... ----------------------------------------------------
            for rnd in range(1, args.rounds + 1):
                for ld in loads:
                    for t in targets:
                        r = run_load(t, ld, args.requests, rnd, args.timeout, args.keyspace)
                        results.append(r)
                        log(
                            f"round {rnd} {ld.label:<18} {t.name:<20} {r.rps:>10,.0f} rps  "
                            f"p50 {r.p50_ms:7.3f}  p99 {r.p99_ms:8.3f} ms  "
                            f"{r.cpu_us_per_req:7.1f} CPU µs/req  ({r.wall_s:.1f} s)"
                        )
                        for e in r.errors:
                            log(f"    redis-benchmark: {e}")

            if args.cluster and args.failover_trials > 0:
                log(f"failover: {args.failover_trials} trials")
                failover = failover_trials(servers[: args.cluster], args.failover_trials, args)
    except KeyboardInterrupt:
        print("\nbench.py: interrupted; stopping servers", file=sys.stderr)
        status = 130
    except BenchError as e:
        print(f"bench.py: {e}", file=sys.stderr)
        for s in servers:
            if s.name.startswith("respkv"):
                print(s.log_tail(), file=sys.stderr)
        status = 1
    finally:
        for s in servers:
            s.stop()
        kill_all_children()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if not results:
        return status or 1
    summaries = summarize(results, loads, targets)
    goals = [] if args.cluster else check_goals(summaries)
    rows = table_rows(summaries)
    print()
    if args.markdown:
        print(f"_{env_line(env)}_\n")
        print(render_markdown(rows))
        print(f"\n{TABLE_NOTE}")
        if goals:
            print()
            print(render_goals(goals, markdown=True))
    else:
        print(env_line(env))
        print()
        print(render_text(rows))
        print(f"\n{TABLE_NOTE}")
        if goals:
            print("\nTargets (respkv single node):")
            print(render_goals(goals, markdown=False))
    fo = [t for t in failover if t is not None]
    if failover:
        failed = len(failover) - len(fo)
        line = (
            f"Failover ({len(failover)} trials, SIGKILL the leader -> first successful SET): "
            + (
                f"median {statistics.median(fo) * 1000:.0f} ms, max {max(fo) * 1000:.0f} ms"
                if fo
                else "no trial recovered"
            )
            + (
                f"; {failed} trial(s) did not recover within {args.failover_timeout:.0f} s"
                if failed
                else ""
            )
        )
        print("\n" + line)
    if args.json:
        payload = {
            "environment": env,
            "loads": [asdict(ld) for ld in loads],
            "runs": [asdict(r) for r in results],
            "summary": [asdict(s) for s in summaries],
            "goals": [asdict(g) for g in goals],
            "failover_s": failover,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nraw results: {args.json}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
