"""Pub/Sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.

Subscriptions are local to a node (a client subscribes where it is connected). PUBLISH goes
through the Raft log as a non-keyspace entry (``#publish``, see
``StateMachine.prepare_publish``): every node delivers the message to its own subscribers when
it applies the entry, so a message published on any node reaches subscribers on every node,
and all nodes deliver all messages in the same (log) order. Chosen over a broadcast to the
peers because it reuses the write path as it is (forwarding from followers, waiting out a
leader change, one fsync shared with the writes of the same turn), because PUBLISH inside
MULTI/EXEC then needs nothing special, and because a node that was briefly cut off still
delivers what it missed when it catches up from the log (a node that catches up from a
snapshot skips those messages: pub/sub stays at-most-once, as in Redis). The cost: a PUBLISH
needs a majority, like a write. The keyspace is never changed by it.

PUBLISH answers the number of clients that received the message on the node that answers, as
Redis Cluster does. On the leader that count is taken when the entry is applied; on a follower
(which forwards the PUBLISH to the leader) it is the number of its local receivers when the
leader's answer arrives; inside MULTI/EXEC it is the count on the leader.

Every node also publishes to its local subscribers of ``LEADER_CHANNEL`` the message
``"<leader id> <leader client address> <term>"`` whenever it sees a new leader or term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from respkv.kv.commands import lookup
from respkv.kv.glob import stringmatch
from respkv.resp.encoder import encode, encode_into
from respkv.resp.replies import ErrorReply, Push, Raw, SimpleString

from .commands import Deferred, command, subcommand_arity, unknown_subcommand
from .connection import WRITE
from .transactions import submit

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection

LEADER_CHANNEL = b"__respkv__:leader"

_SUBSCRIBED_ALLOWED = frozenset(
    (
        b"subscribe",
        b"psubscribe",
        b"unsubscribe",
        b"punsubscribe",
        b"ssubscribe",
        b"sunsubscribe",
        b"ping",
        b"quit",
        b"reset",
    )
)


class PubSub:
    """This node's subscriptions: channel or pattern -> {client id: connection}."""

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[int, ClientConnection]] = {}
        self.patterns: dict[bytes, dict[int, ClientConnection]] = {}

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver to the local subscribers; how many received it (a client subscribed to
        the channel and to two matching patterns counts three times, as in Redis)."""
        count = 0
        subscribers = self.channels.get(channel)
        if subscribers:
            count += _deliver(subscribers, Push([b"message", channel, message]))
        for pattern, subscribers in list(self.patterns.items()):
            if stringmatch(pattern, channel):
                count += _deliver(subscribers, Push([b"pmessage", pattern, channel, message]))
        return count

    def receivers(self, channel: bytes) -> int:
        """How many would receive a message on ``channel`` now."""
        count = len(self.channels.get(channel, ()))
        for pattern, subscribers in self.patterns.items():
            if stringmatch(pattern, channel):
                count += len(subscribers)
        return count

    def remove(self, conn: ClientConnection) -> None:
        """Drop every subscription of ``conn`` (disconnect, RESET)."""
        for table, names in ((self.channels, conn.channels), (self.patterns, conn.patterns)):
            for name in names:
                subscribers = table.get(name)
                if subscribers is not None:
                    subscribers.pop(conn.id, None)
                    if not subscribers:
                        del table[name]
            names.clear()


def _deliver(subscribers: dict[int, ClientConnection], message: Push) -> int:
    encoded: dict[int, bytes] = {}
    for conn in list(subscribers.values()):
        data = encoded.get(conn.protocol)
        if data is None:
            data = encoded[conn.protocol] = encode(message, conn.protocol)
        conn.push(data)
    return len(subscribers)


def subscribed_intercept(conn: ClientConnection, argv: list[bytes]) -> bool:
    """RESP2 subscribed mode: only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET run; PING answers
    ``["pong", message]``. Unknown commands and arity errors are answered as usual."""
    spec = lookup(argv[0])
    if spec is None or not spec.arity_ok(len(argv)):
        return False
    if spec.name_bytes in _SUBSCRIBED_ALLOWED:
        if spec.name_bytes == b"ping" and len(argv) <= 2:
            conn.reply_now([b"pong", argv[1] if len(argv) == 2 else b""])
            return True
        return False
    conn.reply_now(
        ErrorReply(
            f"ERR Can't execute '{spec.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
            "QUIT / RESET are allowed in this context"
        )
    )
    return True


def _count(conn: ClientConnection) -> int:
    return len(conn.channels) + len(conn.patterns)


def _subscribe(server: Server, conn: ClientConnection, argv: list[bytes], pattern: bool) -> Raw:
    table = server.pubsub.patterns if pattern else server.pubsub.channels
    mine = conn.patterns if pattern else conn.channels
    kind = b"psubscribe" if pattern else b"subscribe"
    out = bytearray()
    for name in argv[1:]:
        if name not in mine:
            mine[name] = None
            table.setdefault(name, {})[conn.id] = conn
        encode_into(out, Push([kind, name, _count(conn)]), conn.protocol)
    conn.update_intercept()
    return Raw(bytes(out))


def _unsubscribe(server: Server, conn: ClientConnection, argv: list[bytes], pattern: bool) -> Raw:
    table = server.pubsub.patterns if pattern else server.pubsub.channels
    mine = conn.patterns if pattern else conn.channels
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    names = argv[1:] or list(mine)
    out = bytearray()
    for name in names:
        if name in mine:
            del mine[name]
            subscribers = table.get(name)
            if subscribers is not None:
                subscribers.pop(conn.id, None)
                if not subscribers:
                    del table[name]
        encode_into(out, Push([kind, name, _count(conn)]), conn.protocol)
    if not names:
        encode_into(out, Push([kind, None, _count(conn)]), conn.protocol)
    conn.update_intercept()
    return Raw(bytes(out))


@command("subscribe")
def subscribe(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return _subscribe(server, conn, argv, pattern=False)


@command("psubscribe")
def psubscribe(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return _subscribe(server, conn, argv, pattern=True)


@command("unsubscribe")
def unsubscribe(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return _unsubscribe(server, conn, argv, pattern=False)


@command("punsubscribe")
def punsubscribe(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    return _unsubscribe(server, conn, argv, pattern=True)


@command("publish")
def publish(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    channel, message = argv[1], argv[2]
    sm = server.state_machine
    assert sm is not None

    def start(done: Any) -> None:
        def answered(reply: Any) -> None:
            if isinstance(reply, Raw) and reply.data[:1] != b"-":
                reply = server.pubsub.receivers(channel)  # the leader's count came back
            done(reply)

        submit(
            server,
            lambda now_ms: sm.prepare_publish(channel, message, now_ms),
            [b"#publish", channel, message],
            answered,
        )

    return Deferred(start, WRITE)


_PUBSUB_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


@command("pubsub")
def pubsub(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    spec = lookup(b"pubsub")
    assert spec is not None
    found = next((s for s in spec.subcommands if s.name_bytes == b"pubsub|" + sub), None)
    if found is None:
        return unknown_subcommand(argv)
    if not found.arity_ok(len(argv)):
        return subcommand_arity(argv)
    channels = server.pubsub.channels
    if sub in (b"channels", b"shardchannels"):
        if len(argv) > 3:
            return ErrorReply(
                "ERR unknown subcommand or wrong number of arguments for "
                f"'{argv[1].decode(errors='replace')}'. Try PUBSUB HELP."
            )
        if sub == b"shardchannels":
            return []
        pattern = argv[2] if len(argv) == 3 else None
        return [c for c in channels if pattern is None or stringmatch(pattern, c)]
    if sub == b"numsub":
        return [x for c in argv[2:] for x in (c, len(channels.get(c, ())))]
    if sub == b"shardnumsub":
        return [x for c in argv[2:] for x in (c, 0)]
    if sub == b"numpat":
        return len(server.pubsub.patterns)
    return [SimpleString(line.encode()) for line in _PUBSUB_HELP]
