"""The peer channel over real sockets on 127.0.0.1, several endpoints in one event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from respkv.peer.codec import FrameDecoder, encode
from respkv.peer.frames import Forward, Hello, Reject
from respkv.peer.handshake import PeerIdentity, make_hello
from respkv.peer.queue import QueueLimits
from respkv.peer.transport import (
    ForwardNotSent,
    ForwardOutcomeUnknown,
    ForwardResponder,
    PeerNetwork,
    PeerOptions,
)
from respkv.raft.types import (
    AppendEntries,
    Entry,
    EntryType,
    Heartbeat,
    Message,
    NodeId,
    RequestVote,
)

FAST = PeerOptions(
    reconnect_initial_s=0.01,
    reconnect_max_s=0.1,
    connect_timeout_s=1.0,
    handshake_timeout_s=2.0,
)


def run(coro: Coroutine[Any, Any, None], loop: str = "asyncio") -> None:
    if loop == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(asyncio.wait_for(coro, 30))
    else:
        asyncio.run(asyncio.wait_for(coro, 30))


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class Node:
    """One endpoint: a PeerNetwork plus what it received."""

    def __init__(
        self,
        node_id: int,
        cluster: dict[NodeId, str],
        *,
        cluster_id: str = "c1",
        secret: bytes | None = None,
        initial: dict[NodeId, str] | None = None,
        members: dict[NodeId, str] | None = None,
        options: PeerOptions = FAST,
        on_forward: Callable[[Forward, ForwardResponder], None] | None = None,
        accept_unknown: bool = False,
    ) -> None:
        self.id = NodeId(node_id)
        self.received: list[Message] = []
        self.identity = PeerIdentity(
            self.id,
            cluster_id,
            cluster[self.id],
            f"127.0.0.1:{6000 + node_id}",
            cluster if initial is None else initial,
            secret,
        )
        self.net = PeerNetwork(
            self.identity,
            cluster if members is None else members,
            self.received.append,
            on_forward,
            options=options,
            accept_unknown_peers=accept_unknown,
            rng=random.Random(node_id),
        )

    async def __aenter__(self) -> Node:
        await self.net.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.net.close()


def make_cluster(n: int) -> dict[NodeId, str]:
    return {NodeId(i + 1): f"127.0.0.1:{port}" for i, port in enumerate(free_ports(n))}


def hb(sender: int, to: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(1, NodeId(sender), NodeId(to), commit, b"")


# --- exchange -------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_three_nodes_exchange_messages(loop: str) -> None:
    async def main() -> None:
        cluster = make_cluster(3)
        nodes = [Node(i, cluster) for i in (1, 2, 3)]
        for node in nodes:
            await node.net.start()
        try:
            for node in nodes:
                others = [n.id for n in nodes if n is not node]
                node.net.send([hb(node.id, to, commit=i) for to in others for i in range(50)])
            await wait_until(lambda: all(len(n.received) == 100 for n in nodes))
            for node in nodes:
                for sender in (n.id for n in nodes if n is not node):
                    commits = [m.commit for m in node.received if m.sender == sender]  # type: ignore[union-attr]
                    assert commits == list(range(50))  # in order per sender
            await wait_until(lambda: all(len(n.net.reachable()) == 2 for n in nodes))
            status = nodes[0].net.status()
            assert [s.node_id for s in status] == [2, 3]
            assert all(s.connected and s.inbound and s.last_error is None for s in status)
            assert all(s.last_contact_s is not None and s.last_contact_s < 5 for s in status)
            assert "DOWN" not in nodes[0].net.describe()
        finally:
            for node in nodes:
                await node.net.close()

    run(main(), loop)


def test_appends_with_many_entries_arrive_intact() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster) as a, Node(2, cluster) as b:
            entries = tuple(Entry(3, i, EntryType.NORMAL, b"v%d" % i * 10) for i in range(1, 2001))
            msgs: list[Message] = [
                AppendEntries(3, a.id, b.id, i * 100, 3, entries[i * 100 : (i + 1) * 100], i)
                for i in range(20)
            ]
            a.net.send(msgs)
            await wait_until(lambda: len(b.received) == 20)
            assert b.received == msgs
            assert a.received == []

    run(main())


# --- handshake rejections -------------------------------------------------------------------


def reject_case(
    make_dialer: Callable[[dict[NodeId, str]], Node],
    make_listener: Callable[[dict[NodeId, str]], Node],
    expected: str,
    listener_id: int = 1,
) -> Callable[[], Awaitable[None]]:
    async def main() -> None:
        cluster = make_cluster(3)
        async with make_listener(cluster) as listener, make_dialer(cluster) as dialer:
            client = dialer.net.client(NodeId(listener_id))
            assert client is not None
            dialer.net.send([hb(dialer.id, listener_id)])
            await wait_until(
                lambda: client.last_error is not None and expected in client.last_error
            )
            await wait_until(lambda: any(expected in r for r in listener.net.server.rejections))
            assert not client.connected
            assert listener.received == []
            assert listener_id not in dialer.net.reachable()
            assert "DOWN" in dialer.net.describe()

    return main


def test_reject_wrong_cluster_id() -> None:
    run(
        reject_case(
            lambda c: Node(2, c, cluster_id="other"),
            lambda c: Node(1, c),
            "cluster id mismatch: peer belongs to cluster 'other', this node to 'c1'",
        )()
    )


def test_reject_wrong_node_at_address() -> None:
    # Node 2 believes node 1 lives at node 3's address: node 3 answers and refuses.
    def dialer(c: dict[NodeId, str]) -> Node:
        return Node(2, c, members={NodeId(1): c[NodeId(3)]}, initial={})

    run(reject_case(dialer, lambda c: Node(3, c), "expecting node 1, but this is node 3")())


def test_reject_unknown_node_id() -> None:
    def dialer(c: dict[NodeId, str]) -> Node:
        c = {**c, NodeId(9): c[NodeId(3)]}
        return Node(9, c, members={NodeId(1): c[NodeId(1)]}, initial={})

    def listener(c: dict[NodeId, str]) -> Node:
        return Node(1, c, members={NodeId(2): c[NodeId(2)]})

    run(reject_case(dialer, listener, "unknown node id 9")())


def test_accept_unknown_node_when_joining() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with (
            Node(1, cluster, members={}, initial={}, accept_unknown=True) as joiner,
            Node(2, cluster) as leader,
        ):
            leader.net.send([hb(2, 1)])
            await wait_until(lambda: len(joiner.received) == 1)
            hello = joiner.net.peer_hello(NodeId(2))
            assert hello is not None and hello.peer_address == cluster[NodeId(2)]
            assert hello.client_address == "127.0.0.1:6002"
            # The joiner learns the leader's address from it and can answer.
            joiner.net.update_members({NodeId(2): hello.peer_address})
            joiner.net.send([hb(1, 2)])
            await wait_until(lambda: len(leader.received) == 1)

    run(main())


def test_reject_mismatched_initial_cluster() -> None:
    def dialer(c: dict[NodeId, str]) -> Node:
        return Node(2, c, initial={**c, NodeId(3): "10.0.0.3:7000"})

    run(
        reject_case(
            dialer,
            lambda c: Node(1, c),
            "initial_cluster mismatch with node 2: node 3 is",
        )()
    )


def test_reject_wrong_secret() -> None:
    # The dialer checks the listener's proof first, so it is the one that refuses.
    run(
        reject_case(
            lambda c: Node(2, c, secret=b"right"),
            lambda c: Node(1, c, secret=b"wrong"),
            "node 1 failed to prove the cluster secret",
        )()
    )


def test_reject_missing_secret() -> None:
    run(
        reject_case(
            lambda c: Node(2, c),
            lambda c: Node(1, c, secret=b"s3cret"),
            "node 2 has no cluster secret configured but this node requires one",
        )()
    )


def test_reject_unexpected_secret() -> None:
    run(
        reject_case(
            lambda c: Node(2, c, secret=b"s3cret"),
            lambda c: Node(1, c),
            "node 2 uses a cluster secret but this node has none configured",
        )()
    )


def test_matching_secret_connects() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster, secret=b"k") as a, Node(2, cluster, secret=b"k") as b:
            a.net.send([hb(1, 2)])
            b.net.send([hb(2, 1)])
            await wait_until(lambda: len(a.received) == 1 and len(b.received) == 1)

    run(main())


async def raw_exchange(address: str, data: bytes) -> list[object]:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    received = await reader.read()  # until the listener closes
    writer.close()
    decoder = FrameDecoder()
    decoder.feed(received)
    return list(decoder)


def test_intruder_without_secret_cannot_inject() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster, secret=b"k") as a:
            # A Raft message instead of a handshake.
            frames = await raw_exchange(cluster[NodeId(1)], encode(hb(2, 1)))
            assert len(frames) == 1 and isinstance(frames[0], Reject)
            assert "unexpected Heartbeat frame in handshake" in frames[0].reason
            # A plausible Hello, then a forged Auth and a message right behind it.
            me = PeerIdentity(NodeId(2), "c1", cluster[NodeId(2)], "x:1", cluster, b"guess")
            hello = make_hello(me, NodeId(1), b"n" * 32)
            from respkv.peer.frames import Auth

            data = encode(hello) + encode(Auth(b"z" * 32)) + encode(hb(2, 1))
            frames = await raw_exchange(cluster[NodeId(1)], data)
            assert isinstance(frames[-1], Reject)
            assert "failed to prove the cluster secret" in frames[-1].reason
            # Plain garbage.
            frames = await raw_exchange(cluster[NodeId(1)], b"GET / HTTP/1.1\r\n\r\n")
            assert isinstance(frames[-1], Reject) and "peer sent garbage" in frames[-1].reason
            assert a.received == []

    run(main())


def test_handshake_size_and_time_are_bounded() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        options = dataclasses.replace(FAST, handshake_timeout_s=0.2, max_handshake_bytes=1000)
        async with Node(1, cluster, options=options):
            # A huge bulk string that never completes: refused once the byte bound is passed.
            frames = await raw_exchange(cluster[NodeId(1)], b"*9\r\n$100000\r\n" + b"x" * 5000)
            assert isinstance(frames[-1], Reject) and "handshake larger than" in frames[-1].reason
            # Silence: refused after the handshake timeout.
            frames = await raw_exchange(cluster[NodeId(1)], b"")
            assert isinstance(frames[-1], Reject) and "no complete handshake" in frames[-1].reason

    run(main())


def test_sender_must_match_the_authenticated_peer() -> None:
    async def main() -> None:
        cluster = make_cluster(3)
        async with Node(1, cluster) as a, Node(2, cluster) as b:
            client = b.net.client(NodeId(1))
            assert client is not None
            b.net.send([hb(2, 1)])
            await wait_until(lambda: len(a.received) == 1)
            client.send(hb(3, 1))  # node 2 pretends to be node 3
            await wait_until(lambda: any("from 3 to 1" in r for r in a.net.server.rejections))
            assert len(a.received) == 1
            b.net.send([hb(2, 1, commit=7)])  # it reconnects and carries on
            await wait_until(lambda: len(a.received) == 2)

    run(main())


def test_hello_carries_addresses() -> None:
    me = PeerIdentity(NodeId(2), "c1", "h:2", "h:6002", {NodeId(2): "h:2"}, None)
    hello = make_hello(me, NodeId(1), b"")
    assert hello == Hello(1, "c1", 2, 1, "h:2", "h:6002", ((2, "h:2"),), b"")


# --- reconnect, bounded queue -------------------------------------------------------------


def test_reconnect_after_remote_restarts() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster) as a:
            client = a.net.client(NodeId(2))
            assert client is not None
            b = Node(2, cluster)
            await b.net.start()
            a.net.send([hb(1, 2, commit=1)])
            await wait_until(lambda: len(b.received) == 1)
            await b.net.close()
            await wait_until(lambda: not client.connected)
            assert client.last_error is not None
            a.net.send([hb(1, 2, commit=2)])  # queued while node 2 is down
            await asyncio.sleep(0.2)  # several failed dials with backoff
            assert "DOWN" in a.net.describe()
            b2 = Node(2, cluster)
            await b2.net.start()
            try:
                await wait_until(lambda: len(b2.received) == 1)
                assert b2.received[0].commit == 2  # type: ignore[union-attr]
                assert client.connected and client.connects == 2 and client.last_error is None
            finally:
                await b2.net.close()

    run(main())


def test_queue_stays_bounded_while_peer_is_down() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        limits = QueueLimits(max_control_messages=100, max_bulk_messages=50, max_bulk_bytes=1 << 20)
        options = dataclasses.replace(FAST, queue=limits)
        async with Node(1, cluster, options=options) as a:
            client = a.net.client(NodeId(2))
            assert client is not None
            payload = b"p" * 10_000
            for i in range(2000):
                entry = Entry(1, i + 1, EntryType.NORMAL, payload)
                a.net.send([AppendEntries(1, a.id, NodeId(2), i, 1, (entry,), 0), hb(1, 2, i)])
                assert client.queue.bulk_bytes <= 1 << 20
            await asyncio.sleep(0.05)
            assert len(client.queue) <= 150
            assert client.queue.queued_bytes <= (1 << 20) + 100 * 64
            assert client.queue.dropped_messages == 2 * 2000 - len(client.queue)
            status = a.net.status()[0]
            assert not status.connected and status.dropped_messages > 0
            # When node 2 comes up it gets the newest messages, not the dropped ones.
            async with Node(2, cluster) as b:
                await wait_until(lambda: len(b.received) == 150)
                commits = [m.commit for m in b.received if isinstance(m, Heartbeat)]
                assert commits == list(range(1900, 2000))

    run(main())


def test_messages_to_non_members_are_dropped() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster) as a:
            a.net.send([hb(1, 7)])
            assert a.net.unknown_destination_drops == 1

    run(main())


def test_update_members_adds_and_removes_peers() -> None:
    async def main() -> None:
        cluster = make_cluster(3)
        two = {NodeId(1): cluster[NodeId(1)], NodeId(2): cluster[NodeId(2)]}
        async with (
            Node(1, cluster, members=two, initial=two) as a,
            Node(2, cluster, members=two, initial=two) as b,
            Node(3, cluster, members=cluster, initial={}) as c,
        ):
            a.net.send([hb(1, 3)])
            assert a.net.unknown_destination_drops == 1
            a.net.update_members(cluster)
            b.net.update_members(cluster)
            a.net.send([hb(1, 3), hb(1, 2)])
            c.net.send([hb(3, 1)])
            await wait_until(lambda: len(c.received) == 1 and len(a.received) == 1)
            await wait_until(lambda: len(b.received) == 1)
            # Remove node 2: node 1 hangs up both ways and refuses its redials.
            a.net.update_members({NodeId(3): cluster[NodeId(3)]})
            assert a.net.client(NodeId(2)) is None
            await wait_until(lambda: NodeId(2) not in a.net.server.inbound)
            b.net.send([hb(2, 1)])
            await wait_until(lambda: any("unknown node id 2" in r for r in a.net.server.rejections))
            assert len(a.received) == 1
            assert [s.node_id for s in a.net.status()] == [3]

    run(main())


# --- forwarding ---------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_forwarding_routes_replies_by_request_id(loop: str) -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        rng = random.Random(7)
        seen: list[Forward] = []

        def on_forward(request: Forward, responder: ForwardResponder) -> None:
            seen.append(request)
            assert responder.peer_id == 2
            payload = b"$%d\r\n%b\r\n" % (len(request.argv[1]), request.argv[1])
            # Answer out of order, after a random delay.
            asyncio.get_running_loop().call_later(
                rng.random() * 0.05, responder.reply, request.request_id, payload
            )

        async with Node(1, cluster, on_forward=on_forward), Node(2, cluster) as follower:
            keys = [b"key-%d" % i for i in range(500)]
            futures = [follower.net.forward(NodeId(1), 0, [b"GET", k], 3) for k in keys]
            replies = await asyncio.gather(*futures)
            assert replies == [b"$%d\r\n%b\r\n" % (len(k), k) for k in keys]
            assert len(seen) == 500 and len({r.request_id for r in seen}) == 500
            assert all(r.protocol == 3 and r.db == 0 for r in seen)

    run(main(), loop)


def test_forward_outcome_unknown_when_connection_is_lost() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        arrived: list[Forward] = []
        leader = Node(1, cluster, on_forward=lambda req, _: arrived.append(req))
        await leader.net.start()
        async with Node(2, cluster) as follower:
            future = follower.net.forward(NodeId(1), 0, [b"INCR", b"x"])
            await wait_until(lambda: len(arrived) == 1)
            await leader.net.close()  # never answers
            with pytest.raises(ForwardOutcomeUnknown):
                await future

    run(main())


def test_forward_abandoned_before_sending_is_never_sent() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        arrived: list[Forward] = []

        def on_forward(request: Forward, responder: ForwardResponder) -> None:
            arrived.append(request)
            responder.reply(request.request_id, b"+OK\r\n")

        async with Node(2, cluster) as follower:
            abandoned = follower.net.forward(NodeId(1), 0, [b"SET", b"a", b"1"])
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(abandoned, 0.1)  # leader is down: the caller gives up
            kept = follower.net.forward(NodeId(1), 0, [b"SET", b"b", b"2"])
            async with Node(1, cluster, on_forward=on_forward):
                assert await kept == b"+OK\r\n"
            assert [r.argv[1] for r in arrived] == [b"b"]
            failed = follower.net.forward(NodeId(5), 0, [b"PING"])
            with pytest.raises(ForwardNotSent):
                await failed

    run(main())


def test_forward_to_removed_peer_fails_retry_safe() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(2, cluster) as follower:
            future = follower.net.forward(NodeId(1), 0, [b"SET", b"a", b"1"])
            follower.net.update_members({})
            with pytest.raises(ForwardNotSent):
                await future

    run(main())


def test_forward_queue_full_is_refused_at_once() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        options = dataclasses.replace(FAST, queue=QueueLimits(max_forward_requests=3))
        async with Node(2, cluster, options=options) as follower:
            futures = [follower.net.forward(NodeId(1), 0, [b"PING"]) for _ in range(4)]
            with pytest.raises(ForwardNotSent, match="full"):
                await futures[3]
            assert not any(f.done() for f in futures[:3])
        # Closing the network fails what is still queued, retry-safe.
        for future in futures[:3]:
            with pytest.raises(ForwardNotSent, match="shutting down"):
                await future

    run(main())


def test_default_forward_handler_answers_with_an_error() -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster), Node(2, cluster) as follower:
            reply = await follower.net.forward(NodeId(1), 0, [b"PING"])
            assert reply.startswith(b"-ERR")

    run(main())


# --- priority -------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_heartbeat_not_stuck_behind_multi_megabyte_appends(loop: str) -> None:
    async def main() -> None:
        cluster = make_cluster(2)
        async with Node(1, cluster) as a, Node(2, cluster) as b:
            a.net.send([hb(1, 2)])
            await wait_until(lambda: len(b.received) == 1)
            big = b"z" * (2 << 20)
            appends: list[Message] = [
                AppendEntries(1, a.id, b.id, i, 1, (Entry(1, i + 1, EntryType.NORMAL, big),), 0)
                for i in range(16)
            ]
            a.net.send(appends)  # 32 MB of appends
            await asyncio.sleep(0)  # the first flush has started writing them
            a.net.send([hb(1, 2, commit=99), RequestVote(1, a.id, b.id, 0, 0)])
            await wait_until(lambda: len(b.received) == 19, timeout=20)
            kinds = [type(m).__name__ for m in b.received[1:]]
            position = kinds.index("Heartbeat")
            # The heartbeat overtook most of the backlog instead of waiting for all 32 MB.
            assert position < 8, kinds
            print("arrival order:", kinds)
            assert kinds.index("RequestVote") == position + 1
            assert [m for m in b.received if isinstance(m, AppendEntries)] == appends

    run(main(), loop)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_stalled_reader_costs_bounded_memory(loop: str) -> None:
    """A peer that completes the handshake and then stops reading: the socket buffer stops at
    the high-water mark (plus one frame) and the queue at its bounds; the loop stays free."""

    async def main() -> None:
        cluster = make_cluster(2)
        stalled: list[asyncio.Transport] = []

        class Stalled(asyncio.Protocol):
            def __init__(self) -> None:
                self.decoder = FrameDecoder()

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                from respkv.peer.frames import Auth, HandshakeOk, Welcome

                self.decoder.feed(data)
                for frame in self.decoder:
                    if isinstance(frame, Hello):
                        self.transport.write(encode(Welcome(1, NodeId(2), b"", b"")))  # type: ignore[attr-defined]
                    elif isinstance(frame, Auth):
                        self.transport.write(encode(HandshakeOk()))  # type: ignore[attr-defined]
                        self.transport.pause_reading()  # type: ignore[attr-defined]
                        stalled.append(self.transport)  # type: ignore[arg-type]

        host, port = cluster[NodeId(2)].rsplit(":", 1)
        server = await asyncio.get_running_loop().create_server(Stalled, host, int(port))
        limits = QueueLimits(max_bulk_messages=1000, max_bulk_bytes=8 << 20)
        options = dataclasses.replace(
            FAST, queue=limits, write_high_water_bytes=1 << 20, write_low_water_bytes=1 << 18
        )
        async with Node(1, cluster, options=options) as a:
            client = a.net.client(NodeId(2))
            assert client is not None
            await wait_until(lambda: client.connected and bool(stalled))
            chunk = b"s" * (256 << 10)
            ticks = 0
            for i in range(400):  # 100 MB offered
                entry = Entry(1, i + 1, EntryType.NORMAL, chunk)
                a.net.send([AppendEntries(1, a.id, NodeId(2), i, 1, (entry,), 0), hb(1, 2, i)])
                await asyncio.sleep(0)
                ticks += 1
            await asyncio.sleep(0.1)
            conn = client._conn
            assert conn is not None and conn.transport is not None
            assert conn.write_paused
            buffered = conn.transport.get_write_buffer_size()
            assert buffered <= (1 << 20) + len(chunk) + 1024
            assert client.queue.bulk_bytes <= 8 << 20
            assert client.queue.dropped_messages > 0
            assert ticks == 400
        server.close()
        await server.wait_closed()

    run(main(), loop)
