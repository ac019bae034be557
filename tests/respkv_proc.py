"""Start real respkv processes on loopback for integration tests."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RespkvProcess:
    """One node: its config file, data dir and log live under ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        node_id: int = 1,
        port: int | None = None,
        peer_port: int | None = None,
        extra: str = "",
        cluster: str = "",
        server_extra: str = "",
        raft_extra: str = "",
    ) -> None:
        self.workdir = workdir
        self.node_id = node_id
        self.port = port or free_port()
        self.peer_port = peer_port or free_port()
        self.config_path = workdir / f"node{node_id}.toml"
        self.log_path = workdir / f"node{node_id}.log"
        self.config_path.write_text(
            f"""[cluster]
node_id = {node_id}
listen_address = "127.0.0.1:{self.peer_port}"
db_root_dir = "{workdir / "data"}"
{cluster}
{extra}
[server]
bind = "127.0.0.1"
port = {self.port}
{server_extra}
[raft]
{raft_extra}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> RespkvProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESPKV_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "respkv.server.cli", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"respkv exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"respkv did not listen on {self.port}:\n{self.log()}")

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(port=self.port, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> RespkvProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# --- clusters --------------------------------------------------------------------------------


def control_client(port: int, timeout: float = 2.0) -> redis.Redis:
    """A client for polling: short timeouts, no hidden retries (redis-py retries by default)."""
    return redis.Redis(
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    )


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_port_rng = random.Random()  # seeded from the OS: concurrent test processes pick apart


def stable_port() -> int:
    """A free loopback port below the ephemeral range. A node keeps its ports across
    restarts, so they must not be handed out meanwhile as the local end of some outbound
    connection (which ``free_port``'s ephemeral ports can be: seen while two test runs
    shared the machine)."""
    low = _ephemeral_range()[0]
    for _ in range(200):
        port = _port_rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class GiveUp(Exception):
    """Raised by a ``wait_until`` condition that can never become true."""


def wait_until(
    condition: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Poll ``condition`` until it returns something truthy (which is returned); fail with
    ``what`` in the message at the deadline. Exceptions from ``condition`` count as "not yet"
    (the last one is reported), except ``GiveUp``, which ends the wait."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result  # type: ignore[return-value]
        except GiveUp:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


class Cluster:
    """N nodes with a shared static ``initial_cluster``, all under one work directory.

    ``listed_address(node_id, real_peer_port)`` gives the peer address that ``initial_cluster``
    lists for a node (default: its real listen address; a fault-injecting proxy returns its own
    front address). Ports are fixed at construction, so a restarted node keeps its addresses.
    """

    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        *,
        cluster_extra: str | Mapping[int, str] = "",
        raft_extra: str = "",
        server_extra: str = "",
        listed_address: Callable[[int, int], str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.raft_extra, self.server_extra = raft_extra, server_extra
        # The current members. Replaced, never mutated in place (``add_node``, ``forget``), so
        # other threads may read it at any time.
        self.ids = list(range(1, size + 1))
        ports = {i: (stable_port(), stable_port()) for i in self.ids}
        listed = listed_address or (lambda _i, peer_port: f"127.0.0.1:{peer_port}")
        self.listed = {i: listed(i, ports[i][1]) for i in self.ids}
        self.initial_cluster_text = self.initial_cluster_toml(
            {i: (self.listed[i], f"127.0.0.1:{ports[i][0]}") for i in self.ids}
        )
        self.nodes: dict[int, RespkvProcess] = {}
        for i in self.ids:
            extra = cluster_extra if isinstance(cluster_extra, str) else cluster_extra.get(i, "")
            self.nodes[i] = RespkvProcess(
                workdir,
                node_id=i,
                port=ports[i][0],
                peer_port=ports[i][1],
                cluster=self.initial_cluster_text,
                extra=extra,
                raft_extra=raft_extra,
                server_extra=server_extra,
            )

    @staticmethod
    def initial_cluster_toml(members: Mapping[int, tuple[str, str]]) -> str:
        """``initial_cluster = [...]`` for {id: (peer address, client address)}."""
        lines = [
            f'    {{ id = {i}, address = "{peer}", client_address = "{client}" }},'
            for i, (peer, client) in sorted(members.items())
        ]
        return "initial_cluster = [\n" + "\n".join(lines) + "\n]"

    # --- membership --------------------------------------------------------------------------

    def add_node(self, node_id: int, join: str, extra: str = "") -> RespkvProcess:
        """Configure (not start) a new node with a fresh data dir that joins through the peer
        address ``join`` of any member; it is a member (in ``ids``) from now on. Node ids of
        removed members can never be reused."""
        assert node_id not in self.nodes, f"node id {node_id} was used before"
        self.nodes[node_id] = RespkvProcess(
            self.workdir,
            node_id=node_id,
            port=stable_port(),
            peer_port=stable_port(),
            cluster=f'join = "{join}"',
            extra=extra,
            raft_extra=self.raft_extra,
            server_extra=self.server_extra,
        )
        self.ids = [*self.ids, node_id]
        return self.nodes[node_id]

    def forget(self, node_id: int) -> None:
        """No longer a member (removed from the cluster); its process and log are kept in
        ``nodes``."""
        self.ids = [i for i in self.ids if i != node_id]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, ids: Iterable[int] | None = None) -> Cluster:
        chosen = list(self.ids if ids is None else ids)
        for i in chosen:
            self.nodes[i].start(wait=False)
        for i in chosen:
            self.wait_started(i)
        return self

    def wait_started(self, node_id: int, timeout: float = 20.0) -> None:
        """Listening, and the process answering there is this node's (not a stranger that
        took the port meanwhile, maybe another test's node: then ours exits, its log says
        why)."""
        node = self.nodes[node_id]
        node.wait_ready(timeout)

        def identified() -> bool:
            if node.proc is None or node.proc.poll() is not None:
                raise GiveUp(f"node {node_id} exited:\n{node.log()}")
            with control_client(node.port) as r:
                return bool(r.info("server")["process_id"] == node.proc.pid)

        try:
            wait_until(identified, timeout, f"node {node_id} to answer on {node.port}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{node.log()}") from None

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def restart(self, node_id: int, wait: bool = True) -> None:
        """Start a node again (after kill/stop) on the same ports and data."""
        node = self.nodes[node_id]
        node.kill()
        node.start(wait=False)
        if wait:
            self.wait_started(node_id)

    def alive(self) -> list[int]:
        """The current members (``ids``) whose process runs."""
        procs = {i: self.nodes[i].proc for i in self.ids}
        return [i for i, p in procs.items() if p is not None and p.poll() is None]

    def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(OSError):
                    node.proc.send_signal(signal.SIGCONT)  # a paused node cannot die otherwise
            node.kill()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- clients -----------------------------------------------------------------------------

    def client(self, node_id: int, **kwargs: Any) -> redis.Redis:
        return self.nodes[node_id].client(**kwargs)

    def port(self, node_id: int) -> int:
        return self.nodes[node_id].port

    def client_address(self, node_id: int) -> str:
        return f"127.0.0.1:{self.nodes[node_id].port}"

    def info_raft(self, node_id: int, timeout: float = 2.0) -> dict[str, Any]:
        """``INFO raft`` of one node as a dict (raises if it does not answer in time)."""
        with control_client(self.port(node_id), timeout) as r:
            return dict(r.info("raft"))

    def try_info_raft(self, node_id: int, timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            return self.info_raft(node_id, timeout)
        except (redis.RedisError, OSError):
            return None

    # --- conditions --------------------------------------------------------------------------

    def current_leader(self, among: Iterable[int] | None = None) -> int | None:
        """The node among ``among`` (default: every live node) that says it leads and that
        every other answering node of ``among`` follows, or None."""
        chosen = list(self.alive() if among is None else among)
        infos = {i: self.try_info_raft(i) for i in chosen}
        leaders = [i for i, info in infos.items() if info and info["raft_role"] == "leader"]
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        term = infos[leader]["raft_term"]  # type: ignore[index]
        for info in infos.values():
            if info is not None and (info["raft_leader_id"] != leader or info["raft_term"] != term):
                return None
        return leader

    def wait_leader(
        self, among: Iterable[int] | None = None, timeout: float = 20.0, not_: int | None = None
    ) -> int:
        """Wait until ``among`` agrees on one leader (other than ``not_``); its id."""
        chosen = None if among is None else list(among)

        def found() -> int | None:
            leader = self.current_leader(chosen)
            return leader if leader is not None and leader != not_ else None

        return wait_until(found, timeout, f"one agreed leader among {chosen or 'live nodes'}")

    def wait_caught_up(self, ids: Iterable[int] | None = None, timeout: float = 30.0) -> int:
        """Wait until the nodes agree on a leader and have all applied the same index (the
        leader's commit index, with nothing newer being written); that index."""
        chosen = list(self.alive() if ids is None else ids)

        def same() -> int | None:
            infos = [self.info_raft(i) for i in chosen]
            applied = {info["raft_applied_index"] for info in infos}
            commits = {info["raft_commit_index"] for info in infos}
            leaders = {info["raft_leader_id"] for info in infos}
            if len(applied) == 1 and commits == applied and len(leaders) == 1 and 0 not in leaders:
                return applied.pop() or None
            return None

        return wait_until(same, timeout, f"nodes {chosen} to apply the same index")

    def dump(self, node_id: int) -> dict[bytes, bytes | None]:
        """Every key of db 0 and its string value, read with ``READONLY`` from the node's
        own state (call ``wait_caught_up`` first to compare nodes)."""
        with control_client(self.port(node_id), 10.0) as r:
            assert r.execute_command("READONLY") is True
            keys = sorted(r.keys("*"))
            values = r.mget(keys) if keys else []
            return dict(zip(keys, values, strict=True))
