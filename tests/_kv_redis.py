"""A real redis-server for the kv layer's differential tests, and a raw RESP client for it.

``redis_server()`` starts ``redis-server --port N --save '' --appendonly no`` on a free port
(skipping the calling test with a clear message when redis-server is not on PATH) and stops it
at exit. ``RawRedis`` speaks RESP2 through hiredis and returns replies untouched: bulk and simple
strings as bytes, errors as ``("error", message)`` instead of exceptions, so they compare with
the state machine's replies after ``normalize``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import hiredis
import pytest

from respkv.resp.replies import ErrorReply, NullArray, PairsReply, SimpleString


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RawRedis:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def call(self, *args: bytes | str) -> Any:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return _from_hiredis(reply)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self.reader.feed(chunk)

    def close(self) -> None:
        self.sock.close()


def _from_hiredis(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [_from_hiredis(r) for r in reply]
    return reply


def normalize(reply: Any) -> Any:
    """A state machine reply as ``RawRedis`` would show the same RESP2 bytes."""
    if isinstance(reply, ErrorReply):
        return ("error", reply.message)
    if isinstance(reply, SimpleString):
        return reply.value
    if isinstance(reply, bool):
        return int(reply)
    if isinstance(reply, NullArray):
        return None
    if isinstance(reply, PairsReply):
        return [normalize(item) for pair in reply for item in pair]
    if isinstance(reply, (list, tuple)):
        return [normalize(r) for r in reply]
    if isinstance(reply, dict):
        flat: list[Any] = []
        for k, v in reply.items():
            flat += [normalize(k), normalize(v)]
        return flat
    return reply


@contextmanager
def redis_server() -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not on PATH: differential tests against Redis skipped")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = RawRedis(port)
                if client.call("PING") == b"PONG":
                    client.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def encode(args: Sequence[bytes | str]) -> list[bytes]:
    return [a.encode() if isinstance(a, str) else a for a in args]


class Driver:
    """Runs commands on a StateMachine the way the server will: reads via ``read``, writes via
    ``prepare_write`` then ``apply`` with increasing log indexes."""

    def __init__(self, databases: int = 16, backend: Any = None) -> None:
        from respkv.kv import MemoryBackend, StateMachine

        self.backend = backend if backend is not None else MemoryBackend()
        self.sm = StateMachine(self.backend, databases)
        self.index = 0
        self.payloads: list[tuple[int, bytes]] = []

    def call(
        self,
        argv: Sequence[bytes | str],
        db: int = 0,
        now: int = 1_700_000_000_000,
        *,
        check_state: bool = False,
    ) -> Any:
        from respkv.kv import lookup

        args = encode(argv)
        spec = lookup(args[0])
        if spec is not None and spec.is_write:
            payload = self.sm.prepare_write(args, db, now, check_state=check_state)
            if isinstance(payload, ErrorReply):
                return payload
            return self.apply([payload])[0]
        return self.sm.read(args, db, now)

    def apply(self, payloads: Sequence[bytes]) -> list[Any]:
        entries = []
        for payload in payloads:
            self.index += 1
            entries.append((self.index, payload))
        self.payloads += entries
        return self.sm.apply(entries)

    def batch(self, commands: Sequence[tuple[Sequence[bytes | str], int]], now: int) -> list[Any]:
        """Prepare every write first, then apply them all in one batch; reads see the result."""
        from respkv.kv import lookup

        replies: list[Any] = [None] * len(commands)
        pending: list[tuple[int, bytes]] = []
        for i, (argv, db) in enumerate(commands):
            args = encode(argv)
            spec = lookup(args[0])
            assert spec is not None and spec.is_write
            payload = self.sm.prepare_write(args, db, now)
            if isinstance(payload, ErrorReply):
                replies[i] = payload
            else:
                pending.append((i, payload))
        for (i, _), reply in zip(pending, self.apply([p for _, p in pending]), strict=True):
            replies[i] = reply
        return replies
