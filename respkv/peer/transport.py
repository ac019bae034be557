"""The peer channel over TCP: listener, per-peer dialers, and the network facade. asyncio only.

Theory of operation
-------------------
Each node dials each peer once for its *outbound* traffic (:class:`PeerClient`) and accepts the
peers' dials on its peer address (:class:`PeerServer`). Raft messages therefore always flow
dialer -> listener; the only frames that flow back on a connection are the handshake answers and
the replies to forwarded client commands (:class:`~respkv.peer.frames.ForwardReply`), routed by
request id to the future the forwarding caller awaits.

The dialer speaks first (see :mod:`respkv.peer.frames` for the handshake); nothing but the
handshake is accepted until both sides have checked each other, and a listener reads at most
``max_handshake_bytes`` from a peer it does not trust yet.

Outbound traffic goes through a :class:`~respkv.peer.queue.SendQueue` (bounded; control frames
before bulk). ``send`` only queues and schedules one flush per loop turn, so every message the
Raft node emits in one Ready leaves in one ``transport.write``; while the socket's write buffer
is above its high-water mark nothing more is written and the queue's bounds take over, so a
slow or dead peer costs bounded memory and never blocks the event loop.

:class:`PeerNetwork` is what the server builds: one object from this node's identity and the
members' peer addresses, with ``send``, ``forward``, ``update_members``, ``status``,
``start`` and ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import ssl
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from respkv.raft.types import AppendEntries, InstallSnapshot, Message, NodeId

from .codec import FrameDecoder, PeerProtocolError, encode_frame, encode_message
from .frames import (
    PROTOCOL_VERSION,
    Auth,
    Forward,
    ForwardReply,
    Frame,
    HandshakeOk,
    Hello,
    Reject,
    Welcome,
)
from .handshake import (
    NONCE_BYTES,
    PeerIdentity,
    check_hello,
    dialer_proof,
    listener_proof,
    make_hello,
    proof_matches,
)
from .queue import QueueLimits, SendQueue

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_S = 60.0

__all__ = [
    "ForwardError",
    "ForwardNotSent",
    "ForwardOutcomeUnknown",
    "ForwardResponder",
    "HandshakeRejected",
    "PeerClient",
    "PeerError",
    "PeerNetwork",
    "PeerOptions",
    "PeerServer",
    "PeerStatus",
    "parse_address",
]


# --- errors ---------------------------------------------------------------------------------


class PeerError(Exception):
    """Base of the peer channel's errors."""


class HandshakeRejected(PeerError):
    """A handshake failed; the message names what did not match."""


class ForwardError(PeerError):
    """A forwarded command got no reply."""


class ForwardNotSent(ForwardError):
    """The command never left this node (peer unreachable, queue full, peer removed).

    Safe to retry."""


class ForwardOutcomeUnknown(ForwardError):
    """The command was written to the peer, then the connection was lost before the reply: it
    may or may not have been executed."""


# --- options, status ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerOptions:
    queue: QueueLimits = field(default_factory=QueueLimits)
    # The socket's write buffer: above high, nothing more is written until it drains below low.
    # Also the byte budget of bulk frames per flush, so it bounds how long a heartbeat can wait
    # behind appends that are already in the buffer.
    write_high_water_bytes: int = 1 << 20
    write_low_water_bytes: int = 256 << 10
    reconnect_initial_s: float = 0.05
    reconnect_max_s: float = 2.0
    connect_timeout_s: float = 3.0
    handshake_timeout_s: float = 5.0
    max_handshake_bytes: int = 64 << 10
    read_buffer_bytes: int = 256 << 10
    # Mutual TLS: the listener's context (requires the dialer's certificate) and the dialer's
    # (verifies the listener's). None: plain TCP.
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One peer as this node sees it, for status logs and CLUSTER STATUS."""

    node_id: NodeId
    address: str
    connected: bool  # our outbound connection is open (handshake done both ways)
    inbound: bool  # the peer's connection to us is open
    last_error: str | None  # the last outbound failure (cleared on connect)
    last_contact_s: float | None  # seconds since we last received anything from the peer
    queued_messages: int
    queued_bytes: int
    dropped_messages: int  # Raft messages dropped because the queue was full
    connects: int  # successful outbound handshakes so far


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad peer address {address!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _is_bulk(msg: Message) -> bool:
    return type(msg) is AppendEntries or type(msg) is InstallSnapshot


class ForwardResponder(Protocol):
    """Where the server sends the reply to a forwarded command."""

    def reply(self, request_id: int, payload: bytes) -> None: ...

    @property
    def peer_id(self) -> NodeId: ...


OnMessage = Callable[[Message], None]
OnForward = Callable[[Forward, ForwardResponder], None]


# --- one connection, either side ------------------------------------------------------------


class _Connection(asyncio.BufferedProtocol):
    """Bytes in -> frames out, plus write flow control. Subclasses handle the frames."""

    def __init__(self, options: PeerOptions, me: PeerIdentity) -> None:
        self.options = options
        self.me = me
        self._buf = bytearray(options.read_buffer_bytes)
        self._view = memoryview(self._buf)
        self._decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        self.closing = False
        self.last_contact = 0.0  # loop time of the last read
        self.remote = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(
            high=self.options.write_high_water_bytes, low=self.options.write_low_water_bytes
        )
        peername = transport.get_extra_info("peername")
        if peername:
            self.remote = f"{peername[0]}:{peername[1]}"
        self.last_contact = asyncio.get_running_loop().time()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._decoder.feed(self._view, nbytes)
        self.last_contact = asyncio.get_running_loop().time()
        try:
            if not self._trusted() and self._decoder.bytes_fed > self.options.max_handshake_bytes:
                self.reject(f"handshake larger than {self.options.max_handshake_bytes} bytes")
                return
            for frame in self._decoder:
                if self.closing:
                    return
                self.handle(frame)
        except PeerProtocolError as exc:
            self.protocol_error(exc)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def reject(self, reason: str) -> None:
        """Tell the other side why, then close."""
        self.write(encode_frame(Reject(reason)))
        self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # overridden
    def _trusted(self) -> bool:
        raise NotImplementedError

    def handle(self, frame: Message | Frame) -> None:
        raise NotImplementedError

    def protocol_error(self, exc: PeerProtocolError) -> None:
        raise NotImplementedError


# --- listener side --------------------------------------------------------------------------


class _InboundConnection(_Connection):
    """A peer's connection to us: it sends Raft messages and forwarded commands."""

    def __init__(self, server: PeerServer) -> None:
        super().__init__(server.options, server.me)
        self.server = server
        self.peer_id = NodeId(0)  # known after Hello; trusted after Auth
        self.hello: Hello | None = None
        self._nonce = b""
        self._open = False
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._replies: list[bytes] = []
        self._reply_flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._connections.add(self)
        self._handshake_timer = asyncio.get_running_loop().call_later(
            self.options.handshake_timeout_s, self._handshake_timeout
        )

    def _handshake_timeout(self) -> None:
        if not self._open and not self.closing:
            self._refuse(f"no complete handshake within {self.options.handshake_timeout_s}s")

    def _trusted(self) -> bool:
        return self._open

    def _refuse(self, reason: str) -> None:
        who = f"node {self.peer_id}" if self.peer_id else "unidentified peer"
        self.server.note_refusal(f"refused peer connection from {self.remote} ({who})", reason)
        self.reject(reason)

    def handle(self, frame: Message | Frame) -> None:
        if self._open:
            if isinstance(frame, Forward):
                try:
                    self.server.on_forward(frame, self)
                except Exception:
                    log.exception("forward handler failed on request from node %s", self.peer_id)
                return
            if isinstance(frame, (Hello, Welcome, Auth, HandshakeOk, Reject, ForwardReply)):
                if type(frame) is Reject:
                    log.warning("peer %s closed the channel: %s", self.peer_id, frame.reason)
                    self.close()
                    return
                raise PeerProtocolError(f"unexpected {type(frame).__name__} frame after handshake")
            if frame.sender != self.peer_id or frame.to != self.me.node_id:
                raise PeerProtocolError(
                    f"{type(frame).__name__} from {frame.sender} to {frame.to} on the channel "
                    f"of node {self.peer_id} to node {self.me.node_id}"
                )
            try:
                self.server.on_message(frame)
            except Exception:  # a bug above us: keep the channel, say so loudly
                log.exception("message handler failed on %r", frame)
            return
        match frame:
            case Hello() if self.hello is None:
                self._on_hello(frame)
            case Auth() if self.hello is not None:
                self._on_auth(frame)
            case Reject(reason=reason):
                self.server.note_refusal(f"peer at {self.remote} refused us", reason)
                self.close()
            case _:
                raise PeerProtocolError(f"unexpected {type(frame).__name__} frame in handshake")

    def _on_hello(self, hello: Hello) -> None:
        self.hello = hello
        self.peer_id = hello.node_id
        server = self.server
        reason = check_hello(self.me, hello, server.known_members(), server.accept_unknown())
        if reason is not None:
            self._refuse(reason)
            return
        if self.me.secret:
            self._nonce = secrets.token_bytes(NONCE_BYTES)
        proof = listener_proof(
            self.me.secret,
            hello.cluster_id,
            hello.node_id,
            self.me.node_id,
            hello.nonce,
            self._nonce,
        )
        self.write(encode_frame(Welcome(PROTOCOL_VERSION, self.me.node_id, self._nonce, proof)))

    def _on_auth(self, auth: Auth) -> None:
        hello = self.hello
        assert hello is not None
        expected = dialer_proof(
            self.me.secret,
            hello.cluster_id,
            hello.node_id,
            self.me.node_id,
            hello.nonce,
            self._nonce,
        )
        if not proof_matches(expected, auth.proof):
            self._refuse(f"node {hello.node_id} failed to prove the cluster secret")
            return
        self._open = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.write(encode_frame(HandshakeOk()))
        self.server._opened(self)

    def reply(self, request_id: int, payload: bytes) -> None:
        """Send the reply to a forwarded command; replies of one loop turn leave together."""
        if self.closing:
            return  # the dialer fails its in-flight requests as outcome-unknown
        self._replies.append(encode_frame(ForwardReply(request_id, payload)))
        if not self._reply_flush_scheduled:
            self._reply_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_replies)

    def _flush_replies(self) -> None:
        self._reply_flush_scheduled = False
        replies, self._replies = self._replies, []
        if replies:
            self.write(replies[0] if len(replies) == 1 else b"".join(replies))

    def protocol_error(self, exc: PeerProtocolError) -> None:
        who = f"node {self.peer_id}" if self.peer_id else f"unidentified peer {self.remote}"
        log.warning("closing connection from %s: %s", who, exc)
        self.server.note_refusal(f"closing connection from {who}", str(exc))
        self.reject(str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.server._lost(self)


class PeerServer:
    """Accepts the peers' connections on this node's peer address."""

    def __init__(
        self,
        me: PeerIdentity,
        on_message: OnMessage,
        on_forward: OnForward | None = None,
        *,
        known_members: Callable[[], Collection[NodeId]] | None = None,
        accept_unknown: Callable[[], bool] | None = None,
        options: PeerOptions | None = None,
    ) -> None:
        self.me = me
        self.on_message = on_message
        self.on_forward: OnForward = on_forward or _no_forwarding
        self.known_members = known_members or (lambda: me.initial_cluster.keys())
        self.accept_unknown = accept_unknown or (lambda: False)
        self.options = options or PeerOptions()
        self._server: asyncio.Server | None = None
        self._connections: set[_InboundConnection] = set()
        self._upgrading: set[asyncio.Task[None]] = set()  # TLS handshakes in progress
        self._tls_socket: socket.socket | None = None  # the TLS listener's socket
        self._accept_task: asyncio.Task[None] | None = None
        self.inbound: dict[NodeId, _InboundConnection] = {}  # open, by peer id
        # The last accepted Hello of each peer: its advertised peer and client addresses (how a
        # joining node learns where the leader that dialed it lives).
        self.hellos: dict[NodeId, Hello] = {}
        self.last_contact: dict[NodeId, float] = {}  # loop time, of closed connections too
        # Recent refusals (ours and the peers'), newest last; for tests and status.
        self.rejections: deque[str] = deque(maxlen=32)
        self._refusal_logged: dict[str, float] = {}

    async def start(self, listen_address: str | None = None) -> tuple[str, int]:
        """Listen (on the advertised peer address unless told otherwise); the bound address."""
        host, port = parse_address(listen_address or self.me.peer_address)
        loop = asyncio.get_running_loop()
        if self.options.server_ssl is not None:
            sock = socket.create_server(
                (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
            )
            sock.setblocking(False)
            self._tls_socket = sock
            self._accept_task = loop.create_task(self._accept_tls(sock), name="peer-tls-accept")
            sockname = sock.getsockname()
            log.info(
                "node %s listening for peers on %s:%s (TLS)", self.me.node_id, host, sockname[1]
            )
            return sockname[0], sockname[1]
        self._server = await loop.create_server(
            lambda: _InboundConnection(self), host, port, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        log.info("node %s listening for peers on %s:%s", self.me.node_id, host, sockname[1])
        return sockname[0], sockname[1]

    async def _accept_tls(self, sock: socket.socket) -> None:
        """The TLS listener's accept loop. Each connection's handshake is awaited with
        ``connect_accepted_socket``, so a peer without a valid certificate is refused and
        logged like any other refused handshake (with ``create_server(ssl=...)`` the event
        loop would only log it in debug mode)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, address = await loop.sock_accept(sock)
            except OSError as exc:  # e.g. out of file descriptors: do not spin
                log.warning("peer listener: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._tls_handshake(client, address))
            self._upgrading.add(task)  # the loop keeps only a weak reference to tasks
            task.add_done_callback(self._upgrading.discard)

    async def _tls_handshake(self, client: socket.socket, address: object) -> None:
        remote = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _InboundConnection(self),
                client,
                ssl=self.options.server_ssl,
                ssl_handshake_timeout=self.options.handshake_timeout_s,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            self.note_refusal(
                f"refused peer connection from {remote}",
                f"TLS handshake failed: {str(exc) or repr(exc)}",
            )
            with contextlib.suppress(OSError):
                client.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._accept_task is not None:
            self._accept_task.cancel()
            self._accept_task = None
        if self._tls_socket is not None:
            self._tls_socket.close()
            self._tls_socket = None
        for task in list(self._upgrading):
            task.cancel()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def note_refusal(self, what: str, reason: str) -> None:
        """Log a refused handshake - once per reason and minute, as a misconfigured peer redials
        every couple of seconds - and keep it for status."""
        self.rejections.append(reason)
        now = asyncio.get_running_loop().time()
        key = reason
        if now - self._refusal_logged.get(key, -1e9) >= REFUSAL_LOG_INTERVAL_S:
            self._refusal_logged[key] = now
            log.warning("%s: %s", what, reason)
        else:
            log.debug("%s: %s", what, reason)

    def disconnect(self, node_id: NodeId) -> None:
        """Drop the inbound connection of a peer (e.g. removed from the cluster)."""
        conn = self.inbound.pop(node_id, None)
        if conn is not None:
            conn.close()

    def contact_age(self, node_id: NodeId, now: float) -> float | None:
        conn = self.inbound.get(node_id)
        last = conn.last_contact if conn is not None else self.last_contact.get(node_id)
        return None if last is None else max(0.0, now - last)

    def _opened(self, conn: _InboundConnection) -> None:
        old = self.inbound.get(conn.peer_id)
        self.inbound[conn.peer_id] = conn
        if conn.hello is not None:
            self.hellos[conn.peer_id] = conn.hello
        log.info("peer %s connected from %s", conn.peer_id, conn.remote)
        if old is not None and old is not conn:
            old.close()  # the peer reconnected; the old one is half-open at best

    def _lost(self, conn: _InboundConnection) -> None:
        self._connections.discard(conn)
        if conn.peer_id:
            self.last_contact[conn.peer_id] = conn.last_contact
        if self.inbound.get(conn.peer_id) is conn:
            del self.inbound[conn.peer_id]
            log.info("peer %s disconnected", conn.peer_id)


def _no_forwarding(request: Forward, responder: ForwardResponder) -> None:
    responder.reply(request.request_id, b"-ERR this node does not accept forwarded commands\r\n")


# --- dialer side ----------------------------------------------------------------------------


class _OutboundConnection(_Connection):
    """Our connection to one peer: we send, it answers the handshake and forwarded commands."""

    def __init__(self, client: PeerClient) -> None:
        super().__init__(client.options, client.me)
        self.client = client
        loop = asyncio.get_running_loop()
        self.handshake_done: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self._nonce = secrets.token_bytes(NONCE_BYTES) if client.me.secret else b""
        self._state = "welcome"  # -> "ok" -> "open"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.write(encode_frame(make_hello(self.me, self.client.node_id, self._nonce)))

    def _trusted(self) -> bool:
        return self._state == "open"

    def _fail_handshake(self, reason: str) -> None:
        if not self.handshake_done.done():
            self.handshake_done.set_exception(HandshakeRejected(reason))

    def handle(self, frame: Message | Frame) -> None:
        state = self._state
        if state == "open" and type(frame) is ForwardReply:
            self.client._on_forward_reply(frame)
            return
        match frame:
            case Welcome() if state == "welcome":
                self._on_welcome(frame)
            case HandshakeOk() if state == "ok":
                self._state = "open"
                if not self.handshake_done.done():
                    self.handshake_done.set_result(None)
            case Reject(reason=reason):
                self._fail_handshake(f"node {self.client.node_id} refused us: {reason}")
                self.close()
            case _:
                raise PeerProtocolError(f"unexpected {type(frame).__name__} frame ({state})")

    def _on_welcome(self, welcome: Welcome) -> None:
        client = self.client
        me = self.me
        if client.node_id == 0:  # joining by address: whoever answers there
            client.node_id = welcome.node_id
        if welcome.node_id != client.node_id:
            reason = (
                f"wrong node: {client.address} answers as node {welcome.node_id}, "
                f"expected node {client.node_id}"
            )
            self._fail_handshake(reason)
            self.reject(reason)
            return
        if me.secret:
            expected = listener_proof(
                me.secret, me.cluster_id, me.node_id, client.node_id, self._nonce, welcome.nonce
            )
            if len(welcome.nonce) != NONCE_BYTES or not proof_matches(expected, welcome.proof):
                reason = f"node {client.node_id} failed to prove the cluster secret"
                self._fail_handshake(reason)
                self.reject(reason)
                return
        proof = dialer_proof(
            me.secret, me.cluster_id, me.node_id, client.node_id, self._nonce, welcome.nonce
        )
        self._state = "ok"
        self.write(encode_frame(Auth(proof)))

    def protocol_error(self, exc: PeerProtocolError) -> None:
        self._fail_handshake(str(exc))
        log.warning("closing connection to node %s: %s", self.client.node_id, exc)
        self.reject(str(exc))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.client._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._fail_handshake(f"connection closed during handshake ({exc or 'EOF'})")
        if not self.lost.done():
            self.lost.set_result(None)


def _factory(conn: _OutboundConnection) -> Callable[[], _OutboundConnection]:
    return lambda: conn


class PeerClient:
    """This node's outbound channel to one peer: queue, dial, handshake, reconnect."""

    def __init__(
        self,
        me: PeerIdentity,
        node_id: NodeId,
        address: str,
        options: PeerOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.me = me
        self.node_id = node_id
        self.address = address
        self.options = options or PeerOptions()
        self._rng = rng or random.Random()
        self._queue = SendQueue(self.options.queue)
        self._conn: _OutboundConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._flush_scheduled = False
        self._next_request_id = 1
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._in_flight: set[int] = set()  # pending requests already written
        self.last_error: str | None = None
        self.connects = 0

    # lifecycle

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"peer-client-{self.node_id}"
            )

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            self._conn.abort()
            self._conn = None
        self._fail_pending(f"peer {self.node_id} removed or node shutting down")
        self._queue.clear()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def queue(self) -> SendQueue:
        return self._queue

    # sending

    def send(self, msg: Message) -> None:
        frame = encode_message(msg)
        if _is_bulk(msg):
            self._queue.push_bulk(frame)
        else:
            self._queue.push_control(frame)
        self._schedule_flush()

    def forward(self, db: int, argv: Sequence[bytes], protocol: int = 2) -> asyncio.Future[bytes]:
        """Send a client command to this peer; the future gets its encoded RESP reply.

        Fails with ForwardNotSent (retry-safe) or ForwardOutcomeUnknown. A caller that gives
        up cancels the future: if the request was not written yet it never will be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if self._closed:
            future.set_exception(ForwardNotSent(f"peer {self.node_id} is not a member"))
            return future
        request_id = self._next_request_id
        self._next_request_id += 1
        frame = encode_frame(Forward(request_id, db, protocol, tuple(argv)))
        if not self._queue.push_forward(request_id, frame):
            future.set_exception(ForwardNotSent(f"forward queue to peer {self.node_id} is full"))
            return future
        self._pending[request_id] = future
        future.add_done_callback(lambda _: self._forget(request_id))
        self._schedule_flush()
        return future

    def _forget(self, request_id: int) -> None:
        self._pending.pop(request_id, None)
        self._in_flight.discard(request_id)

    def _on_forward_reply(self, reply: ForwardReply) -> None:
        future = self._pending.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply.payload)

    def _fail_pending(self, why: str) -> None:
        self._fail_unsent(why)
        self._fail_in_flight(why)

    def _fail_unsent(self, why: str) -> None:
        for request_id in self._queue.take_forward_ids():
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_exception(ForwardNotSent(why))

    def _fail_in_flight(self, why: str) -> None:
        for request_id in list(self._in_flight):
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_exception(
                    ForwardOutcomeUnknown(f"connection to peer {self.node_id} lost ({why})")
                )
        self._in_flight.clear()

    def _schedule_flush(self) -> None:
        conn = self._conn
        if self._flush_scheduled or conn is None or conn.write_paused or not self._queue:
            return
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        conn = self._conn
        if conn is None or conn.write_paused or conn.closing or conn.transport is None:
            return  # a closing connection would lose the frames; the next one sends them
        transport = conn.transport
        # Not paused means the buffer is below high water: write at least one bulk frame.
        budget = max(1, self.options.write_high_water_bytes - transport.get_write_buffer_size())
        batch, written = self._queue.pop_batch(budget, self._pending.__contains__)
        if written:
            self._in_flight.update(written)
        if batch:
            transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
        if self._queue:
            self._schedule_flush()  # next turn, after whatever else the loop has to do

    # dialing

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        delay = opts.reconnect_initial_s
        while not self._closed:
            conn = _OutboundConnection(self)
            try:
                host, port = parse_address(self.address)
                await asyncio.wait_for(
                    loop.create_connection(_factory(conn), host, port, ssl=opts.client_ssl),
                    opts.connect_timeout_s,
                )
                await asyncio.wait_for(conn.handshake_done, opts.handshake_timeout_s)
            except (OSError, TimeoutError, PeerError, ValueError) as exc:
                conn.abort()
                self._record_failure(exc)
            else:
                delay = opts.reconnect_initial_s
                self._opened(conn)
                try:
                    await conn.lost
                finally:
                    self._lost(conn)
                if self._closed:
                    break
            # Full jitter over [delay/2, delay): peers that lost each other do not redial in step.
            await asyncio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
            delay = min(delay * 2, opts.reconnect_max_s)

    def _record_failure(self, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            error = f"timed out connecting to {self.address} (or in the handshake)"
        elif isinstance(exc, PeerError):
            error = str(exc)
        elif isinstance(exc, ssl.SSLError):
            error = f"TLS handshake with {self.address} failed: {exc}"
        else:
            error = f"cannot reach {self.address}: {exc}"
        if error != self.last_error:
            refused = isinstance(exc, (HandshakeRejected, ssl.SSLError))
            level = logging.WARNING if refused else logging.INFO
            log.log(level, "peer %s unreachable: %s", self.node_id, error)
        self.last_error = error

    def _opened(self, conn: _OutboundConnection) -> None:
        self._conn = conn
        self.connects += 1
        self.last_error = None
        log.info("connected to peer %s at %s", self.node_id, self.address)
        self._schedule_flush()

    def _lost(self, conn: _OutboundConnection) -> None:
        if self._conn is conn:
            self._conn = None
        self._fail_in_flight("connection closed")
        if not self._closed:
            self.last_error = f"connection to {self.address} lost"
            log.warning("lost connection to peer %s at %s", self.node_id, self.address)


# --- the facade -----------------------------------------------------------------------------


class PeerNetwork:
    """Everything the server needs from the peer channel, built from this node's identity.

    ``members`` maps every other member's id to its peer address (this node's own id is ignored
    if present); ``update_members`` replaces it when the membership changes. ``on_message`` gets
    each Raft message addressed to this node; ``on_forward`` each forwarded client command with
    a responder whose ``reply`` sends the encoded RESP reply back on the same connection.
    """

    def __init__(
        self,
        me: PeerIdentity,
        members: Mapping[NodeId, str],
        on_message: OnMessage,
        on_forward: OnForward | None = None,
        *,
        listen_address: str | None = None,
        accept_unknown_peers: bool = False,
        options: PeerOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.me = me
        self.options = options or PeerOptions()
        # A node joining a running cluster does not know the members yet: let it accept any
        # peer of the same cluster (the secret, when set, still has to be proven).
        self.accept_unknown_peers = accept_unknown_peers
        self._listen_address = listen_address
        self._rng = rng or random.Random()
        self._members: dict[NodeId, str] = {}
        self._clients: dict[NodeId, PeerClient] = {}
        self._started = False
        self._closing: set[asyncio.Task[None]] = set()
        self.unknown_destination_drops = 0
        self.server = PeerServer(
            me,
            on_message,
            on_forward,
            known_members=self._known_members,
            accept_unknown=lambda: self.accept_unknown_peers,
            options=self.options,
        )
        self.listen_address: tuple[str, int] | None = None
        self.update_members(members)

    def _known_members(self) -> Collection[NodeId]:
        return self._members.keys()

    async def start(self) -> None:
        """Listen for peers and start dialing every member."""
        self.listen_address = await self.server.start(self._listen_address)
        self._started = True
        for client in self._clients.values():
            client.start()

    async def close(self) -> None:
        self._started = False
        await asyncio.gather(*(c.close() for c in self._clients.values()))
        await asyncio.gather(*self._closing)
        await self.server.close()

    def update_members(self, members: Mapping[NodeId, str]) -> None:
        """Dial new members, hang up on removed ones, redial those whose address changed."""
        wanted = {node_id: addr for node_id, addr in members.items() if node_id != self.me.node_id}
        for node_id, address in wanted.items():
            parse_address(address)  # a bad address is the caller's error, raised here
            client = self._clients.get(node_id)
            if client is not None and client.address == address:
                continue
            if client is not None:
                log.info("peer %s moved from %s to %s", node_id, client.address, address)
                self._close_client(client)
            else:
                log.info("peer %s at %s added", node_id, address)
            client = PeerClient(
                self.me,
                node_id,
                address,
                self.options,
                random.Random(self._rng.random()),
            )
            self._clients[node_id] = client
            if self._started:
                client.start()
        for node_id in list(self._clients.keys() - wanted.keys()):
            log.info("peer %s removed", node_id)
            self._close_client(self._clients.pop(node_id))
            self.server.disconnect(node_id)
        self._members = wanted

    def _close_client(self, client: PeerClient) -> None:
        try:
            task = asyncio.get_running_loop().create_task(client.close())
        except RuntimeError:  # no loop (not started yet): nothing runs, nothing to wait for
            client._closed = True
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def send(self, messages: Iterable[Message]) -> None:
        """Queue Raft messages for their recipients; they leave together on the next loop turn."""
        clients = self._clients
        for msg in messages:
            client = clients.get(msg.to)
            if client is None:
                self.unknown_destination_drops += 1
                log.debug("dropping %s to non-member %s", type(msg).__name__, msg.to)
                continue
            client.send(msg)

    def forward(
        self, to: NodeId, db: int, argv: Sequence[bytes], protocol: int = 2
    ) -> asyncio.Future[bytes]:
        """Forward a client command to node ``to`` (normally the leader); see PeerClient."""
        client = self._clients.get(to)
        if client is None:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            future.set_exception(ForwardNotSent(f"node {to} is not a known peer"))
            return future
        return client.forward(db, argv, protocol)

    def pending_forwards(self) -> int:
        """Forwards sent from here still waiting for their answer."""
        return sum(len(c._pending) for c in self._clients.values())

    def fail_unsent_forwards(self, to: NodeId, why: str) -> None:
        """Forwards to ``to`` not written yet fail with ForwardNotSent (e.g. it is no longer
        the leader: the caller sends them elsewhere); those written still get their answer."""
        client = self._clients.get(to)
        if client is not None:
            client._fail_unsent(why)

    def peer_hello(self, node_id: NodeId) -> Hello | None:
        """What the peer said about itself when it last connected to us (addresses, ...)."""
        return self.server.hellos.get(node_id)

    def client(self, node_id: NodeId) -> PeerClient | None:
        return self._clients.get(node_id)

    def reachable(self) -> set[NodeId]:
        """Peers our outbound connection currently reaches."""
        return {node_id for node_id, c in self._clients.items() if c.connected}

    def status(self) -> list[PeerStatus]:
        now = asyncio.get_running_loop().time()
        result = []
        for node_id, client in sorted(self._clients.items()):
            queue = client.queue
            result.append(
                PeerStatus(
                    node_id=node_id,
                    address=client.address,
                    connected=client.connected,
                    inbound=node_id in self.server.inbound,
                    last_error=client.last_error,
                    last_contact_s=self.server.contact_age(node_id, now),
                    queued_messages=len(queue),
                    queued_bytes=queue.queued_bytes,
                    dropped_messages=queue.dropped_messages,
                    connects=client.connects,
                )
            )
        return result

    def describe(self) -> str:
        """One line for the periodic status log: which peers it reaches, which it does not."""
        parts = []
        for s in self.status():
            state = "ok" if s.connected else f"DOWN ({s.last_error or 'connecting'})"
            contact = "never" if s.last_contact_s is None else f"{s.last_contact_s:.1f}s ago"
            parts.append(f"{s.node_id}@{s.address} {state}, heard {contact}")
        return "; ".join(parts) or "no peers"
