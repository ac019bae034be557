"""A fault-injecting TCP proxy for the peer channel, loopback only (integration tests).

One front port per node is placed before that node's real peer port: every node's
``initial_cluster`` lists the front addresses, while each node listens on its own real
``listen_address``. The handshake never compares a node's ``listen_address`` with its own
``initial_cluster`` entry (it compares the two initial_cluster lists, which stay identical), so
this needs no server option.

Peer connections are one-way for Raft traffic: the dialer sends its messages to the listener,
and only handshake answers and forwarded-command replies flow back. So each proxied connection
belongs to one directed pair (source = the dialer, named by the node_id of its first frame, a
RESP ``HELLO`` array; destination = the node behind the front port). Blocking the pair (src,
dst) drops everything on that pair's connections, both byte directions: src's Raft messages no
longer reach dst, while dst's messages to src still flow on dst's own connection. That is a
one-way partition; ``isolate`` and ``partition`` block both directions.

A blocked connection is a black hole, as on a real network: it stays open and its bytes are
read and discarded (no reset tells the sender anything). Healing closes every connection that
was ever blackholed (its byte stream lost an unknown part of a frame) so the nodes reconnect
cleanly; connections that were never blocked are untouched. Memory is bounded: forwarding
waits for the far side to drain (``drain``), so a paused node back-pressures its peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable

import hiredis

MAX_HELLO_BYTES = 64 << 10
READ_BYTES = 64 << 10


class _Pipe:
    """One proxied connection from ``src`` (the dialer) to ``dst``."""

    def __init__(self, src: int, dst: int, client: asyncio.StreamWriter) -> None:
        self.src = src
        self.dst = dst
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.blackholed = False

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.transport.abort()


class NetProxy:
    """Front ports for nodes' peer channels, with per-directed-pair blocking."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netproxy", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._blocked: set[tuple[int, int]] = set()
        self._pipes: set[_Pipe] = set()
        self._servers: dict[int, asyncio.Server] = {}
        self.fronts: dict[int, int] = {}  # node id -> front port
        self.targets: dict[int, int] = {}  # node id -> real peer port
        self.dropped_bytes = 0

    # --- setup -------------------------------------------------------------------------------

    def add_node(self, node_id: int, target_port: int) -> str:
        """Listen on a free loopback port in front of ``target_port``; the front address."""

        async def start() -> int:
            server = await asyncio.start_server(
                lambda r, w: self._serve(node_id, r, w), "127.0.0.1", 0
            )
            self._servers[node_id] = server
            return int(server.sockets[0].getsockname()[1])

        port = self._call(start())
        self.fronts[node_id] = port
        self.targets[node_id] = target_port
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers.values():
                server.close()
            for pipe in list(self._pipes):
                pipe.close()

        with contextlib.suppress(Exception):
            self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> NetProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- faults ------------------------------------------------------------------------------

    def block(self, src: int, dst: int) -> None:
        """Drop src's traffic to dst (one way)."""
        self._set_blocked({(src, dst)}, add=True)

    def unblock(self, src: int, dst: int) -> None:
        self._set_blocked({(src, dst)}, add=False)
        self._reset_blackholed()

    def isolate(self, node: int) -> None:
        """Cut ``node`` off from every other node, both ways."""
        pairs = set()
        for other in self.fronts:
            if other != node:
                pairs |= {(node, other), (other, node)}
        self._set_blocked(pairs, add=True)

    def partition(self, *groups: Iterable[int]) -> None:
        """Nodes talk only within their group (nodes in no group are isolated)."""
        group_of: dict[int, int] = {}
        for n, group in enumerate(groups):
            for node in group:
                group_of[node] = n
        pairs = {
            (a, b)
            for a in self.fronts
            for b in self.fronts
            if a != b and (a not in group_of or group_of.get(a) != group_of.get(b))
        }
        self._set_blocked(pairs, add=True)

    def heal(self) -> None:
        """Unblock everything; connections that were blackholed are closed (nodes redial)."""
        with self._lock:
            self._blocked.clear()
        self._reset_blackholed()

    def blocked(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self._blocked)

    def _set_blocked(self, pairs: set[tuple[int, int]], add: bool) -> None:
        with self._lock:
            if add:
                self._blocked |= pairs
            else:
                self._blocked -= pairs
        if add:
            # Latch the open connections of the pairs now, not at their next chunk.
            def latch() -> None:
                for pipe in self._pipes:
                    if (pipe.src, pipe.dst) in pairs:
                        pipe.blackholed = True

            self._call_soon(latch)

    def _reset_blackholed(self) -> None:
        def reset() -> None:
            with self._lock:
                blocked = set(self._blocked)
            for pipe in list(self._pipes):
                if pipe.blackholed and (pipe.src, pipe.dst) not in blocked:
                    pipe.close()

        self._call_soon(reset)

    def _is_blocked(self, src: int, dst: int) -> bool:
        with self._lock:
            return (src, dst) in self._blocked

    # --- the event loop ----------------------------------------------------------------------

    def _call(self, coro: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def _call_soon(self, fn: object) -> None:
        async def run() -> None:
            fn()  # type: ignore[operator]

        self._call(run())

    async def _serve(
        self, dst: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        first, src = await self._read_hello(reader)
        if src is None:
            writer.transport.abort()
            return
        pipe = _Pipe(src, dst, writer)
        self._pipes.add(pipe)
        try:
            if self._is_blocked(src, dst):
                pipe.blackholed = True
                await self._discard(pipe, reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.targets[dst])
            except OSError:
                return  # the node is down: the dialer sees its connection closed
            pipe.upstream = up_writer
            up_writer.write(first)
            await asyncio.gather(
                self._pump(pipe, reader, up_writer),
                self._pump(pipe, up_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._pipes.discard(pipe)
            pipe.close()

    async def _read_hello(self, reader: asyncio.StreamReader) -> tuple[bytes, int | None]:
        """The bytes read up to the end of the first frame, and the dialer's node id."""
        parser = hiredis.Reader()
        data = bytearray()
        while len(data) < MAX_HELLO_BYTES:
            try:
                chunk = await reader.read(READ_BYTES)
            except OSError:
                return bytes(data), None
            if not chunk:
                return bytes(data), None
            data += chunk
            parser.feed(chunk)
            frame = parser.gets()
            if frame is False:
                continue
            if isinstance(frame, list) and len(frame) > 3 and frame[0] == b"HELLO":
                return bytes(data), int(frame[3])
            return bytes(data), None
        return bytes(data), None

    async def _pump(
        self, pipe: _Pipe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                chunk = await reader.read(READ_BYTES)
                if not chunk:
                    break
                if pipe.blackholed or self._is_blocked(pipe.src, pipe.dst):
                    pipe.blackholed = True
                    self.dropped_bytes += len(chunk)
                    continue
                writer.write(chunk)
                await writer.drain()
        finally:
            if not pipe.blackholed:
                pipe.close()  # one side closed: close the other (a black hole stays open)

    async def _discard(self, pipe: _Pipe, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                chunk = await reader.read(READ_BYTES)
            except OSError:
                return
            if not chunk:
                return
            self.dropped_bytes += len(chunk)
