"""Start real respkv processes on loopback for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis


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
        return redis.Redis(port=self.port, socket_timeout=10, **kwargs)  # type: ignore[arg-type]

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
