"""Start a real redis-server on a free loopback port, for tests that compare against Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port

    def raw(self, data: bytes, timeout: float = 0.5) -> tuple[bytes, bool]:
        """Send raw bytes on a new connection; return (what came back, whether it closed)."""
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            conn.sendall(data)
            conn.settimeout(timeout)
            received = b""
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return received, True
                    received += chunk
            except TimeoutError:
                return received, False

    def command(self, *args: bytes) -> bytes:
        """Send one command; return the raw reply (read until the server is quiet)."""
        data = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        return self.raw(data, timeout=0.3)[0]


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server; the test is skipped when redis-server is not on PATH."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH: cannot compare with real Redis")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield RedisServer(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
