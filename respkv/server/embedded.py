"""Embed a respkv node in an asyncio application (the seed docs' "embedded engine").

    from respkv.config import load
    from respkv.server.embedded import EmbeddedNode

    async with EmbeddedNode(load("config/node1.toml")) as node:
        await node.wait_ready()
        await node.set(b"k", b"v")
        assert await node.get(b"k") == b"v"
        node.on_leader_change(lambda leader, term: print("leader", leader, "term", term))

The node is a full cluster member (it also serves RESP clients on its configured port).
Commands run through the same path as a client's: writes are proposed (or forwarded to the
leader), reads are linearizable. Errors arrive as ``EmbeddedError`` with Redis's text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import hiredis

from respkv.config import Config
from respkv.raft.types import NodeId, Role, Term
from respkv.resp.replies import ErrorReply, Raw, SimpleString

from .app import Server
from .errors import error_reply
from .runtime import ClusterDown


class EmbeddedError(Exception):
    """A command failed; the message is the Redis error text (e.g. 'CLUSTERDOWN ...')."""


class EmbeddedNode:
    def __init__(self, config: Config) -> None:
        self.server = Server(config)
        self._leader_callbacks: list[Callable[[int, int], None]] = []

    async def __aenter__(self) -> EmbeddedNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.server.start()
        assert self.server.runtime is not None
        self.server.runtime.on_soft_state.append(self._soft_state)

    async def stop(self) -> None:
        await self.server.stop()

    # --- state -------------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self.server.config.cluster.node_id

    @property
    def leader(self) -> int:
        """The leader's node id as this node knows it (0: none known)."""
        runtime = self.server.runtime
        return int(runtime.leader) if runtime is not None else 0

    @property
    def is_leader(self) -> bool:
        runtime = self.server.runtime
        return runtime is not None and runtime.is_leader

    def on_leader_change(self, callback: Callable[[int, int], None]) -> None:
        """``callback(leader_id, term)`` whenever the known leader changes (0: none)."""
        self._leader_callbacks.append(callback)

    def _soft_state(self, leader: NodeId, role: Role, term: Term) -> None:
        for callback in self._leader_callbacks:
            callback(int(leader), int(term))

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until a leader is known and a linearizable read succeeds on this node."""
        deadline = time.monotonic() + timeout
        while True:
            if self.leader:
                try:
                    await self.execute(b"EXISTS", b"__respkv_ready__")
                    return
                except EmbeddedError:
                    pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no leader within {timeout:g}s")
            await asyncio.sleep(0.05)

    # --- commands ----------------------------------------------------------------------------

    async def execute(self, *argv: bytes | str | int, db: int = 0) -> Any:
        """Run any data command; returns what redis-py would (bytes, int, list, None...)."""
        args = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
        server = self.server
        sm, runtime, cluster = server.state_machine, server.runtime, server.cluster
        assert sm is not None and runtime is not None and cluster is not None
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()

        def done(value: Any) -> None:
            if not result.done():
                result.set_result(value)

        if sm.is_write(args[0]):
            cluster.forward_write(args, db, 2, done)  # proposes here when this node leads
        else:

            def read(barrier: Any) -> None:
                if isinstance(barrier, BaseException):
                    done(error_reply(barrier))
                else:
                    done(sm.read(args, db, time.time_ns() // 1_000_000))

            try:
                if runtime.read_barrier(read):
                    read(None)
            except ClusterDown as e:
                done(error_reply(e))
        return _python_value(await result)

    async def set(self, key: bytes, value: bytes, db: int = 0) -> None:
        await self.execute(b"SET", key, value, db=db)

    async def get(self, key: bytes, db: int = 0) -> bytes | None:
        value = await self.execute(b"GET", key, db=db)
        assert value is None or isinstance(value, bytes)
        return value

    async def delete(self, *keys: bytes, db: int = 0) -> int:
        return int(await self.execute(b"DEL", *keys, db=db))


def _python_value(value: Any) -> Any:
    if isinstance(value, ErrorReply):
        raise EmbeddedError(value.message)
    if isinstance(value, Raw):  # a reply forwarded by the leader, RESP2-encoded
        reader = hiredis.Reader()
        reader.feed(value.data)
        decoded = reader.gets()
        if isinstance(decoded, hiredis.ReplyError):
            raise EmbeddedError(str(decoded))
        return decoded
    if isinstance(value, SimpleString):
        return value.value
    return value
