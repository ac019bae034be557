"""One client connection: bytes in, commands dispatched in order, replies out in one write.

Theory of operation
-------------------
``buffer_updated`` feeds the parser and runs every complete command. A command either answers
at once (connection commands, errors, reads that need no round trip) or waits: a write waits
for its log entry to be applied, a linearizable read for its read index. Replies always leave in
request order: each command owns a slot, and slots are flushed from the head as they fill.

Reads and writes of one connection must appear to run in order (a pipelined GET sees the SET
before it, and not the SET after it), so commands of the same kind may be in flight together but
a change of kind waits until everything in flight has completed: a barrier. A blocking command
(BLPOP...) and an EXEC whose transaction runs server commands (SELECT...) are EXCLUSIVE: they
wait for everything before them, and everything after them waits for them.

A connection in MULTI, or subscribed in RESP2, sees its commands first through ``intercept``
(queue them, or refuse them as Redis does); otherwise ``intercept`` is None and costs one
attribute check per command. Pub/sub messages (``push``) skip the queue of replies in RESP3 (out
of band) and keep their place after earlier replies in RESP2; a subscriber that does not read
them is disconnected at the pub/sub output buffer limit (Redis's client-output-buffer-limit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from respkv.resp.encoder import encode
from respkv.resp.parser import ProtocolError, RequestParser
from respkv.resp.replies import ErrorReply

if TYPE_CHECKING:
    from respkv.kv.acl import User
    from respkv.kv.commands import CommandSpec

    from .dispatch import Dispatcher

log = logging.getLogger(__name__)

READ, WRITE, EXCLUSIVE = 1, 2, 3
_MAX_IN_FLIGHT = 10_000  # commands per connection before we stop reading from it


class _Slot:
    __slots__ = ("protocol", "reply", "spec", "started_ns")

    def __init__(self, protocol: int = 2) -> None:
        self.reply: bytes | None = None
        self.protocol = protocol  # as when the command arrived (a later HELLO may change it)
        self.spec: CommandSpec | None = None  # a command's reply: timed when it completes
        self.started_ns = 0


class ClientConnection(asyncio.BufferedProtocol):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.server = dispatcher.server
        self.id = self.server.next_client_id()
        self.transport: asyncio.Transport | None = None
        limits = self.server.config.server
        self.parser = RequestParser(
            proto_max_bulk_len=limits.proto_max_bulk_len,
            client_max_querybuf_len=limits.client_query_buffer_limit,
        )
        self._buffer = bytearray(65536)
        self._view = memoryview(self._buffer)
        self._out = bytearray()
        self._slots: deque[_Slot] = deque()
        self._queued: deque[list[bytes]] = deque()  # parsed, waiting behind a barrier
        self._in_flight = 0
        self._in_flight_kind = 0
        self._flush_scheduled = False
        self._paused_reading = False
        self._paused_writing = False
        self._closing = False
        # Connection state, as in Redis.
        self.db = 0
        self.protocol = 2
        # The user (respkv.server.acl): ``restricted`` is None when it may run everything.
        # Before AUTH, Redis caps what a client may send; the parser enforces it.
        self.user = "default"
        self.authenticated = False
        self.restricted: User | None = None
        self.server.acl.start(self)
        self.name = b""
        self.lib_name = b""
        self.lib_version = b""
        self.readonly = False  # READONLY: serve reads from local state
        self.addr = "?"
        self.laddr = "?"
        self.created_at = 0.0
        self.last_command = b"NULL"
        self.commands_processed = 0
        # The command being dispatched (set by Dispatcher.dispatch): for timing and CLIENT LIST.
        self.cmd_started_ns = time.perf_counter_ns()
        self.cmd_argv: list[bytes] = []
        self.cmd_spec: CommandSpec | None = None
        self.deferred = False  # its reply comes later: timed by ``complete``
        self.fd = -1
        # MULTI and pub/sub state (respkv.server.transactions, respkv.server.pubsub).
        self.intercept: Callable[[ClientConnection, list[bytes]], bool] | None = None
        self.multi: list[tuple[list[bytes], CommandSpec]] | None = None  # queued: in MULTI
        self.multi_error = False  # a command was refused while queueing: EXEC aborts
        self.watches: dict[tuple[int, bytes], bytes] | None = None  # (db, key) -> fingerprint
        self.channels: dict[bytes, None] = {}  # subscribed channels, in subscription order
        self.patterns: dict[bytes, None] = {}
        self._over_soft_limit_since: float | None = None

    # --- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.laddr = f"{sock[0]}:{sock[1]}" if isinstance(sock, tuple) else str(sock)
        raw = transport.get_extra_info("socket")
        self.fd = raw.fileno() if raw is not None else -1
        self.created_at = self.server.clock()
        if not self.server.client_connected(self):
            self._write_error("ERR max number of clients reached")
            self.close_after_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.transport = None
        self.server.client_disconnected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._closing:
            return
        self.server.stats.bytes_in += nbytes
        parser = self.parser
        parser.feed(self._view[:nbytes])
        while not self._closing:
            try:
                commands = parser.get_commands()
            except ProtocolError as e:
                self._protocol_error(e)
                return
            if not commands:
                break
            if self._queued:  # still behind a barrier: keep the order
                self._queued.extend(commands)
            else:
                self._run(commands)
        self._flush()

    def pause_writing(self) -> None:
        self._paused_writing = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._update_reading()

    # --- running commands --------------------------------------------------------------------

    def _run(self, commands: list[list[bytes]] | deque[list[bytes]]) -> None:
        dispatch = self.dispatcher.dispatch
        classify = self.dispatcher.classify
        for position, argv in enumerate(commands):
            if self._closing:
                return
            intercept = self.intercept
            if intercept is not None and intercept(self, argv):
                self.commands_processed += 1
                continue
            kind, spec = classify(self, argv)
            if self._in_flight and kind and (kind != self._in_flight_kind or kind == EXCLUSIVE):
                # A read after writes (or a write after reads) waits for them, and so does
                # anything after a blocking command (Redis runs nothing of a blocked client),
                # and a blocking command after writes: keep the rest.
                rest = list(commands)[position:]
                self._queued.extendleft(reversed(rest))
                return
            self.commands_processed += 1
            dispatch(self, argv, kind, spec)
        self._update_reading()

    def reply_now(self, value: Any) -> None:
        """Answer the current command at once (after anything still in flight)."""
        data = encode(value, self.protocol)
        if self._slots:
            slot = _Slot()
            slot.reply = data
            self._slots.append(slot)
        else:
            self._out += data

    def reply_later(self, kind: int) -> _Slot:
        """Reserve the reply of the current command; fill it with ``complete``."""
        slot = _Slot(self.protocol)
        if not self.deferred:  # the command's first deferred reply carries its timing
            self.deferred = True
            slot.spec = self.cmd_spec
            slot.started_ns = self.cmd_started_ns
        self._slots.append(slot)
        self._in_flight += 1
        self._in_flight_kind = kind
        return slot

    def complete(self, slot: _Slot, value: Any) -> None:
        slot.reply = encode(value, slot.protocol)
        if slot.spec is not None:
            self.server.observer.reply_sent(slot.spec, time.perf_counter_ns() - slot.started_ns)
        self._in_flight -= 1
        slots = self._slots
        out = self._out
        while slots and slots[0].reply is not None:
            out += slots.popleft().reply  # type: ignore[arg-type]
        if not self._in_flight:
            if self._queued:
                queued, self._queued = self._queued, deque()
                self._run(queued)
            else:
                self._update_reading()
        self._schedule_flush()

    def update_intercept(self) -> None:
        """Choose what sees commands first, after a change of MULTI, subscriptions or protocol."""
        from .pubsub import subscribed_intercept
        from .transactions import multi_intercept

        if self.multi is not None:
            self.intercept = multi_intercept
        elif self.protocol == 2 and (self.channels or self.patterns):
            self.intercept = subscribed_intercept
        else:
            self.intercept = None

    def push(self, data: bytes) -> None:
        """An encoded pub/sub message for this client."""
        if self._closing or self.transport is None:
            return
        if self.protocol == 3 or not self._slots:
            self._out += data
        else:
            slot = _Slot()
            slot.reply = data
            self._slots.append(slot)
        self._check_output_limit()
        self._schedule_flush()

    def _check_output_limit(self) -> None:
        assert self.transport is not None
        hard, soft, soft_seconds = self.server.pubsub_output_limit
        pending = len(self._out) + self.transport.get_write_buffer_size()
        if hard and pending > hard:
            self._drop_slow_client(f"over the hard limit ({pending} > {hard} bytes)")
        elif soft and pending > soft:
            now = self.server.clock()
            since = self._over_soft_limit_since
            if since is None:
                self._over_soft_limit_since = now
            elif now - since > soft_seconds:
                self._drop_slow_client(f"over the soft limit ({soft} bytes) for {soft_seconds}s")
        else:
            self._over_soft_limit_since = None

    def _drop_slow_client(self, why: str) -> None:
        log.warning("client %s closed for overcoming of output buffer limits: %s", self.addr, why)
        self._closing = True
        self._out = bytearray()
        self._slots.clear()
        self._queued.clear()
        if self.transport is not None:
            self.transport.abort()  # close() would wait for the client to read it all

    # --- output ------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.dispatcher.flush_soon(self)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.transport is not None:
            self.server.stats.bytes_out += len(out)
            self.transport.write(out)  # the transport may keep it: start a new buffer
            self._out = bytearray()
        if self._close_after_flush and self.transport is not None and not self._slots:
            self.transport.close()

    _close_after_flush = False

    def close_after_flush(self) -> None:
        """QUIT, CLIENT KILL, protocol errors: send what is ready, then close."""
        self._close_after_flush = True
        self._closing = True
        self._queued.clear()
        self._schedule_flush()

    def _write_error(self, message: str) -> None:
        self.reply_now(ErrorReply(message))

    def _protocol_error(self, error: ProtocolError) -> None:
        log.debug("client %s: %s", self.addr, error.message)
        if error.reply is not None:  # none for the query buffer limit: Redis just closes
            self.reply_now(error.reply)
        self.close_after_flush()
        self._flush()

    def _update_reading(self) -> None:
        """Stop reading from a client that does not read its replies or floods us."""
        if self.transport is None:
            return
        should_pause = self._paused_writing or self._in_flight + len(self._queued) > _MAX_IN_FLIGHT
        if should_pause and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()
        elif not should_pause and self._paused_reading:
            self._paused_reading = False
            self.transport.resume_reading()

    def kill(self) -> None:
        if self.transport is not None:
            self.transport.close()
