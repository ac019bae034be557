"""Helpers for the integration tests of the whole server (tests/test_server_*.py).

- ``start_node``: a started ``RespkvProcess`` (tests/respkv_proc.py) with short Raft timers;
- ``real_redis``: a throwaway ``redis-server`` on a free loopback port, to compare replies with;
- ``RawConn``: a raw TCP connection that sends bytes and reads RESP replies (hiredis), exactly as
  they came, for wire-level tests and byte-for-byte comparisons;
- ``bare``: a redis-py client without response callbacks (replies as the wire gave them);
- ``wait_until``: poll a condition instead of sleeping.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from tests.respkv_proc import RespkvProcess, free_port

FAST_RAFT = "heartbeat_interval_ms = 50\nelection_timeout_ms = 300\n"


def start_node(workdir: Path, **kwargs: Any) -> RespkvProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("raft_extra", FAST_RAFT)
    node = RespkvProcess(workdir, **kwargs)
    node.start()
    wait_until(lambda: _answers(node.port), timeout=30, what=f"respkv answering PING\n{node.log()}")
    return node


def _answers(port: int) -> bool:
    try:
        with RawConn(port, timeout=5) as conn:
            reply = conn.call("PING")
    except OSError:
        return False
    # NOAUTH also proves the server answers.
    return reply == b"PONG" or (isinstance(reply, tuple) and reply[0] == "error")


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install it (apt-get install {package})", pytrace=False)
    return path


class RealRedis:
    def __init__(self, port: int) -> None:
        self.port = port

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10, **kwargs)


@contextmanager
def real_redis(*extra: str) -> Iterator[RealRedis]:
    """A real redis-server (7.0.15 on the test machines): no persistence, loopback only."""
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(port), timeout=20, what="redis-server to answer PING")
        yield RealRedis(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bare(port: int, protocol: int = 2, **kwargs: Any) -> redis.Redis:
    """redis-py without its response callbacks: replies are what the wire carried."""
    client = redis.Redis(port=port, protocol=protocol, socket_timeout=10, **kwargs)
    client.response_callbacks.clear()
    return client


def call(client: redis.Redis, *args: Any) -> Any:
    """``client.execute_command`` (untyped in redis-py), typed for mypy."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def encode_command(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def error(text: str) -> tuple[str, str]:
    """How ``RawConn`` shows an error reply."""
    return ("error", text)


def _plain(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        return error(str(reply))
    if isinstance(reply, list):
        return [_plain(item) for item in reply]
    return reply


class RawConn:
    """One TCP connection; replies parsed by hiredis, errors as ``("error", text)``."""

    def __init__(self, port: int, timeout: float = 10.0, protocol: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()
        self.received = bytearray()  # every byte read, for exact comparisons

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args: bytes | str | int) -> Any:
        self.send(encode_command(*args))
        return self.read_reply()

    def read_reply(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return _plain(reply)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.received += chunk
            self.reader.feed(chunk)

    def read_replies(self, count: int) -> list[Any]:
        return [self.read_reply() for _ in range(count)]

    def read_until_closed(self, timeout: float = 10.0) -> tuple[bytes, bool]:
        """Everything the server sends until it closes (True) or is quiet for ``timeout``."""
        data = bytearray()
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return bytes(data), True
                data += chunk
        except TimeoutError:
            return bytes(data), False
        except ConnectionResetError:
            return bytes(data), True

    def exchange(self, data: bytes, quiet: float = 0.3) -> bytes:
        """Send ``data``, return the bytes that come back before ``quiet`` s of silence."""
        self.send(data)
        received = bytearray()
        self.sock.settimeout(quiet)
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        finally:
            self.sock.settimeout(10)
        return bytes(received)
