"""Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH): clients parked until a list has data.

Theory of operation
-------------------
Every node parks its own clients, leader and followers alike: a blocking command is validated
(``prepare_write``: syntax, timeout), then its client waits in a FIFO queue per (db, key) it
waits on. The pop itself is always the command proposed as an ordinary write, through the log
(proposed here on the leader, forwarded to the leader by a follower): the state machine runs
its non-blocking form, which pops if a list has data and otherwise answers the timeout reply
("nothing"). So every replica applies the same pops, and nothing is ever popped outside the
log.

Waking: while a client is parked, the state machine records the keys where a list's key record
was written (``StateMachine.list_writes``), and the runtime calls ``after_apply`` after each
apply batch; with nobody parked both are off and cost nothing. For each touched key the first
parked clients of its queue are sent to pop, as many as the list's length in the applied state
minus the pops already in flight for it, in arrival order (FIFO as in Redis; a client stays at
its place in the queue while its pop is in flight). A pop that finds nothing (another client
won) puts the client back at its place; a new blocked client is queued behind those already
waiting and then woken the same way, so it cannot overtake them.

Failures: a pop that was certainly not applied (no leader: CLUSTERDOWN; an entry overwritten
by a new leader: TRYAGAIN) leaves its client parked and is tried again shortly; a pop whose
outcome is unknown (UNKNOWN) is answered with that error, never retried, so an element is
never popped twice for one client nor lost silently. A parked client is not tied to the
leader: when leadership moves, its next attempt goes to the new leader (transparent re-park).
Clients of a node that dies lose their connection, as with any command.

Timeouts run on this node's clock from the moment the command arrived (0: forever). A timeout
while the client's pop is in flight waits for that pop's answer: an element it popped is
delivered, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from respkv.kv.commands import BLOCKING_KEYS
from respkv.kv.lists import parse_timeout
from respkv.resp.replies import NULL_ARRAY, ErrorReply, Raw

from .errors import error_reply
from .runtime import ClusterDown, EntryLost

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection

log = logging.getLogger(__name__)

#: Encoded "nothing popped" replies of a forwarded attempt (null array, null, RESP3 null).
_NOTHING: Final = frozenset({b"*-1\r\n", b"$-1\r\n", b"_\r\n"})
#: Errors after which the pop certainly was not applied: the client stays parked.
_RETRYABLE: Final = ("CLUSTERDOWN", "TRYAGAIN")
RETRY_SECONDS: Final = 0.1


class Waiter:
    __slots__ = (
        "argv",
        "client_id",
        "db",
        "done",
        "expired",
        "finished",
        "in_flight",
        "keys",
        "nothing",
        "protocol",
        "sent_at_applied",
        "timer",
    )

    def __init__(
        self,
        client_id: int,
        protocol: int,
        argv: list[bytes],
        db: int,
        keys: list[bytes],
        done: Callable[[Any], None],
    ) -> None:
        self.client_id = client_id
        self.protocol = protocol
        self.argv = argv
        self.db = db
        self.keys = list(dict.fromkeys(keys))  # BLPOP k k 0 waits once on k
        self.done = done
        # The timeout reply: BLPOP/BRPOP a null array, BLMOVE/BRPOPLPUSH a null.
        self.nothing: Any = NULL_ARRAY if argv[0] in (b"blpop", b"brpop") else None
        self.in_flight = False  # its pop is proposed or forwarded, no answer yet
        self.expired = False  # timed out while in flight: answer "nothing" if it finds nothing
        self.finished = False
        self.sent_at_applied = 0  # this node's applied index when its pop was sent
        self.timer: asyncio.TimerHandle | None = None


class BlockedPops:
    def __init__(self, server: Server) -> None:
        self.server = server
        self._queues: dict[tuple[int, bytes], deque[Waiter]] = {}
        self._by_client: dict[int, Waiter] = {}
        self._retry: set[Waiter] = set()
        # Found nothing, but this node had not applied anything new since sending the pop:
        # look again after the next apply batch, not now (no busy loop on a lagging node).
        self._recheck: set[Waiter] = set()
        self._retry_handle: asyncio.TimerHandle | None = None

    @property
    def count(self) -> int:
        """Clients blocked now (INFO blocked_clients)."""
        return len(self._by_client)

    def block(
        self, conn: ClientConnection, argv: list[bytes], db: int, done: Callable[[Any], None]
    ) -> None:
        """Park ``conn``'s validated blocking command (canonical lowercase name in argv[0]);
        ``done`` gets the reply (a value, Raw bytes from the leader, or an error)."""
        keys = BLOCKING_KEYS[argv[0]](argv)
        waiter = Waiter(conn.id, conn.protocol, argv, db, keys, done)
        timeout_ms = parse_timeout(argv[-1], time.time_ns() // 1_000_000)
        if isinstance(timeout_ms, ErrorReply):  # prepare_write checked it already
            done(timeout_ms)
            return
        self._attach()
        self._by_client[conn.id] = waiter
        for key in waiter.keys:
            self._queues.setdefault((db, key), deque()).append(waiter)
        if timeout_ms:
            loop = asyncio.get_running_loop()
            waiter.timer = loop.call_later(timeout_ms / 1000, self._timed_out, waiter)
        sm = self.server.state_machine
        assert sm is not None
        now = time.time_ns() // 1_000_000
        for key in waiter.keys:
            if isinstance(sm.read([b"llen", key], db, now), ErrorReply):
                # WRONGTYPE (or a pop from an earlier key): the state machine answers it.
                self._attempt(waiter)
                return
        self._wake((db, key) for key in waiter.keys)

    def client_gone(self, client_id: int) -> None:
        """The connection closed: forget its parked command (a pop in flight completes into
        the void, as a reply to a vanished Redis client does)."""
        waiter = self._by_client.get(client_id)
        if waiter is not None:
            self._finish(waiter, None, answer=False)

    # --- the apply hook ----------------------------------------------------------------------

    def _attach(self) -> None:
        if self._by_client:
            return
        sm, runtime = self.server.state_machine, self.server.runtime
        assert sm is not None and runtime is not None
        sm.list_writes = set()
        runtime.after_apply = self._after_apply

    def _detach(self) -> None:
        sm, runtime = self.server.state_machine, self.server.runtime
        if sm is not None:
            sm.list_writes = None
        if runtime is not None:
            runtime.after_apply = None
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        self._retry.clear()
        self._recheck.clear()

    def _after_apply(self) -> None:
        sm = self.server.state_machine
        assert sm is not None
        touched = sm.list_writes
        recheck, self._recheck = self._recheck, set()
        if not touched and not recheck:
            return
        sm.list_writes = set()
        pairs: list[tuple[int, bytes]] = [
            (w.db, key) for w in recheck if not w.finished for key in w.keys
        ]
        for db, key in touched or ():
            if key is None:  # SWAPDB: any key of that db
                pairs += [q for q in self._queues if q[0] == db]
            elif (db, key) in self._queues:
                pairs.append((db, key))
        if pairs:
            self._wake(pairs)

    # --- waking and popping ------------------------------------------------------------------

    def _wake(self, pairs: Iterable[tuple[int, bytes]]) -> None:
        """Send the first parked clients of each key to pop, up to the list's length in the
        applied state minus the pops in flight for it."""
        sm = self.server.state_machine
        assert sm is not None
        now = time.time_ns() // 1_000_000
        for db, key in pairs:
            queue = self._queues.get((db, key))
            if not queue:
                continue
            length = sm.read([b"llen", key], db, now)
            if not isinstance(length, int) or length <= 0:
                continue
            available = length - sum(1 for w in queue if w.in_flight)
            for waiter in list(queue):
                if available <= 0:
                    break
                if not waiter.in_flight and not waiter.finished:
                    available -= 1
                    self._attempt(waiter)

    def _attempt(self, waiter: Waiter) -> None:
        server = self.server
        runtime, sm = server.runtime, server.state_machine
        assert runtime is not None and sm is not None
        waiter.in_flight = True
        waiter.sent_at_applied = runtime.raft.log.applied
        self._retry.discard(waiter)

        def answered(reply: Any) -> None:
            self._answered(waiter, reply)

        if runtime.is_leader:
            payload = sm.prepare_write(waiter.argv, waiter.db, time.time_ns() // 1_000_000)
            if isinstance(payload, ErrorReply):
                answered(payload)
                return
            try:
                runtime.propose(payload, answered)
            except ClusterDown as e:
                answered(e)
        elif runtime.leader and server.cluster is not None:
            server.cluster.forward_write(waiter.argv, waiter.db, waiter.protocol, answered)
        else:
            answered(ClusterDown("no leader"))

    def _answered(self, waiter: Waiter, reply: Any) -> None:
        waiter.in_flight = False
        if waiter.finished:
            return
        if isinstance(reply, (ClusterDown, EntryLost)) or _retryable(reply):
            self._retry_later(waiter)
            return
        if isinstance(reply, BaseException):  # OutcomeUnknown: the pop may have happened
            self._finish(waiter, error_reply(reply))
            return
        if (
            reply is None
            or reply is NULL_ARRAY
            or (isinstance(reply, Raw) and reply.data in _NOTHING)
        ):
            runtime = self.server.runtime
            assert runtime is not None
            if waiter.expired:
                self._finish(waiter, waiter.nothing)
            elif runtime.is_leader or runtime.raft.log.applied > waiter.sent_at_applied:
                # Another client won: back to its place, and look again.
                self._wake((waiter.db, key) for key in waiter.keys)
            else:
                self._recheck.add(waiter)
            return
        self._finish(waiter, reply)
        # It no longer counts as a pop in flight for its other keys: their waiters may go.
        self._wake((waiter.db, key) for key in waiter.keys)

    def _retry_later(self, waiter: Waiter) -> None:
        if waiter.expired:
            self._finish(waiter, waiter.nothing)
            return
        self._retry.add(waiter)
        if self._retry_handle is None:
            loop = asyncio.get_running_loop()
            self._retry_handle = loop.call_later(RETRY_SECONDS, self._run_retries)

    def _run_retries(self) -> None:
        self._retry_handle = None
        waiting, self._retry = self._retry, set()
        self._wake({(w.db, key) for w in waiting if not w.finished for key in w.keys})
        # Those the wake did not send (their list is empty now) simply stay parked.

    def _timed_out(self, waiter: Waiter) -> None:
        waiter.timer = None
        if waiter.in_flight:
            waiter.expired = True  # decided by the pop's answer
        else:
            self._finish(waiter, waiter.nothing)

    def _finish(self, waiter: Waiter, reply: Any, *, answer: bool = True) -> None:
        if waiter.finished:
            return
        waiter.finished = True
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        self._retry.discard(waiter)
        self._recheck.discard(waiter)
        if self._by_client.get(waiter.client_id) is waiter:
            del self._by_client[waiter.client_id]
        for key in waiter.keys:
            queue = self._queues.get((waiter.db, key))
            if queue is not None:
                queue.remove(waiter)
                if not queue:
                    del self._queues[(waiter.db, key)]
        if not self._by_client:
            self._detach()
        if answer:
            waiter.done(reply)


def _retryable(reply: Any) -> bool:
    if isinstance(reply, ErrorReply):
        return reply.message.startswith(_RETRYABLE)
    if isinstance(reply, Raw):
        return reply.data.startswith((b"-CLUSTERDOWN", b"-TRYAGAIN"))
    return False
