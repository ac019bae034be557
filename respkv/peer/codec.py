"""Raft messages and peer frames <-> RESP arrays. Pure: bytes in, values out.

Theory of operation
-------------------
Every frame is one RESP array whose first element is a short bulk-string tag; the other
elements are integers (``:n``) for ids, terms, indexes, offsets and flag bits, and bulk strings
for opaque bytes. Booleans of one message share a single ``flags`` integer. Formats (``i`` an
integer, ``b`` a bulk string, ``...`` a variable tail)::

    AE   term sender to prev_index prev_term commit entry...    (entry: b, see below)
    AER  term sender to index hint_index hint_term flags        (flags: 1 reject)
    HB   term sender to commit context
    HBR  term sender to context
    RV   term sender to last_index last_term flags              (1 pre_vote, 2 transfer)
    RVR  term sender to flags                                   (1 granted, 2 pre_vote)
    IS   term sender to meta_index meta_term members offset data checksum flags (1 done)
    ISR  term sender to snapshot_index offset flags             (1 reject, 2 done)
    TN   term sender to
    RIQ  term sender to context
    RIR  term sender to context index flags                     (1 reject)

    HELLO    version cluster_id node_id to peer_address client_address initial nonce
             (initial: a nested array id1 addr1 id2 addr2 ...)
    WELCOME  version node_id nonce proof
    AUTH     proof
    OK
    REJECT   reason
    FWD      request_id db protocol argv...
    FWDR     request_id payload

An entry is one bulk string: a 17-byte big-endian header (term u64, index u64, type u8) followed
by the entry's data, so an AppendEntries with n entries is n + 7 RESP elements and decoding an
entry is one ``struct.unpack_from`` and one slice. ``members`` (a ConfState) is a nested array
with one bulk string per member: id u64, learner u8, then the member's context.

Encoding builds each frame with one ``%`` format for the fixed part and one ``b"".join``.
Decoding feeds a ``hiredis.Reader`` (C, many frames per read) and checks the shape of each
array against a precomputed signature of element types, so a peer that sends garbage gets a
:class:`PeerProtocolError` that says so, never a stray ``TypeError`` deep in the Raft core.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

import hiredis

from respkv.raft.types import (
    AppendEntries,
    AppendEntriesResponse,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Member,
    Message,
    NodeId,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)

from .frames import Auth, Forward, ForwardReply, Frame, HandshakeOk, Hello, Reject, Welcome

__all__ = [
    "FrameDecoder",
    "PeerProtocolError",
    "decode_frame",
    "encode",
    "encode_frame",
    "encode_message",
]


class PeerProtocolError(Exception):
    """The remote peer sent bytes that are not a valid peer-channel frame (its fault, not ours).

    The connection that carried them cannot be trusted any further and is closed."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"peer sent garbage: {detail}")
        self.detail = detail


_ENTRY = struct.Struct(">QQB")
_ENTRY_SIZE = _ENTRY.size
_MEMBER = struct.Struct(">QB")
_MEMBER_SIZE = _MEMBER.size
_ENTRY_TYPES: tuple[EntryType, ...] = tuple(EntryType)  # index == value (0, 1)
assert all(t.value == i for i, t in enumerate(_ENTRY_TYPES))


def _tag(name: bytes, count: int) -> bytes:
    """Array header plus the tag element, e.g. ``*6\\r\\n$2\\r\\nHB\\r\\n``."""
    return b"*%d\r\n$%d\r\n%b\r\n" % (count, len(name), name)


# --- encoding -------------------------------------------------------------------------------


def _encode_entries(parts: list[bytes], entries: Iterable[Entry]) -> None:
    pack = _ENTRY.pack
    append = parts.append
    for e in entries:
        data = e.data
        append(b"$%d\r\n" % (_ENTRY_SIZE + len(data)) + pack(e.term, e.index, e.type))
        append(data)
        append(b"\r\n")


def _encode_members(parts: list[bytes], conf: ConfState) -> None:
    parts.append(b"*%d\r\n" % len(conf.members))
    pack = _MEMBER.pack
    for m in conf.members:
        parts.append(
            b"$%d\r\n%b%b\r\n" % (_MEMBER_SIZE + len(m.context), pack(m.id, m.learner), m.context)
        )


_AE_TAG = b"$2\r\nAE\r\n"
_AE_FIXED = b":%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n"


def _enc_append(m: AppendEntries) -> bytes:
    entries = m.entries
    head = b"*%d\r\n" % (7 + len(entries)) + _AE_TAG
    fixed = _AE_FIXED % (m.term, m.sender, m.to, m.prev_index, m.prev_term, m.commit)
    if not entries:
        return head + fixed
    parts = [head, fixed]
    _encode_entries(parts, entries)
    return b"".join(parts)


_AER = _tag(b"AER", 8) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n"


def _enc_append_response(m: AppendEntriesResponse) -> bytes:
    return _AER % (m.term, m.sender, m.to, m.index, m.hint_index, m.hint_term, m.reject)


_HB = _tag(b"HB", 6) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n$%d\r\n%b\r\n"


def _enc_heartbeat(m: Heartbeat) -> bytes:
    return _HB % (m.term, m.sender, m.to, m.commit, len(m.context), m.context)


_HBR = _tag(b"HBR", 5) + b":%d\r\n:%d\r\n:%d\r\n$%d\r\n%b\r\n"


def _enc_heartbeat_response(m: HeartbeatResponse) -> bytes:
    return _HBR % (m.term, m.sender, m.to, len(m.context), m.context)


_RV = _tag(b"RV", 7) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n"


def _enc_vote(m: RequestVote) -> bytes:
    flags = m.pre_vote | (m.leadership_transfer << 1)
    return _RV % (m.term, m.sender, m.to, m.last_index, m.last_term, flags)


_RVR = _tag(b"RVR", 5) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n"


def _enc_vote_response(m: RequestVoteResponse) -> bytes:
    return _RVR % (m.term, m.sender, m.to, m.granted | (m.pre_vote << 1))


_IS_HEAD = _tag(b"IS", 11) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n"
_IS_TAIL = b":%d\r\n$%d\r\n"
_IS_END = b"\r\n:%d\r\n:%d\r\n"


def _enc_snapshot(m: InstallSnapshot) -> bytes:
    meta = m.meta
    parts = [_IS_HEAD % (m.term, m.sender, m.to, meta.index, meta.term)]
    _encode_members(parts, meta.conf_state)
    parts.append(_IS_TAIL % (m.offset, len(m.data)))
    parts.append(m.data)
    parts.append(_IS_END % (m.checksum, m.done))
    return b"".join(parts)


_ISR = _tag(b"ISR", 7) + b":%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n:%d\r\n"


def _enc_snapshot_response(m: InstallSnapshotResponse) -> bytes:
    flags = m.reject | (m.done << 1)
    return _ISR % (m.term, m.sender, m.to, m.snapshot_index, m.offset, flags)


_TN = _tag(b"TN", 4) + b":%d\r\n:%d\r\n:%d\r\n"


def _enc_timeout_now(m: TimeoutNow) -> bytes:
    return _TN % (m.term, m.sender, m.to)


_RIQ = _tag(b"RIQ", 5) + b":%d\r\n:%d\r\n:%d\r\n$%d\r\n%b\r\n"


def _enc_read_index(m: ReadIndexRequest) -> bytes:
    return _RIQ % (m.term, m.sender, m.to, len(m.context), m.context)


_RIR = _tag(b"RIR", 7) + b":%d\r\n:%d\r\n:%d\r\n$%d\r\n%b\r\n:%d\r\n:%d\r\n"


def _enc_read_index_response(m: ReadIndexResponse) -> bytes:
    return _RIR % (m.term, m.sender, m.to, len(m.context), m.context, m.index, m.reject)


_MESSAGE_ENCODERS: dict[type, Callable[[object], bytes]] = {
    AppendEntries: _enc_append,  # type: ignore[dict-item]
    AppendEntriesResponse: _enc_append_response,  # type: ignore[dict-item]
    Heartbeat: _enc_heartbeat,  # type: ignore[dict-item]
    HeartbeatResponse: _enc_heartbeat_response,  # type: ignore[dict-item]
    RequestVote: _enc_vote,  # type: ignore[dict-item]
    RequestVoteResponse: _enc_vote_response,  # type: ignore[dict-item]
    InstallSnapshot: _enc_snapshot,  # type: ignore[dict-item]
    InstallSnapshotResponse: _enc_snapshot_response,  # type: ignore[dict-item]
    TimeoutNow: _enc_timeout_now,  # type: ignore[dict-item]
    ReadIndexRequest: _enc_read_index,  # type: ignore[dict-item]
    ReadIndexResponse: _enc_read_index_response,  # type: ignore[dict-item]
}


def encode_message(msg: Message) -> bytes:
    """One Raft message as one RESP array."""
    return _MESSAGE_ENCODERS[type(msg)](msg)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _enc_hello(f: Hello) -> bytes:
    parts = [
        _tag(b"HELLO", 9),
        b":%d\r\n" % f.version,
        _bulk(f.cluster_id.encode()),
        b":%d\r\n:%d\r\n" % (f.node_id, f.to),
        _bulk(f.peer_address.encode()),
        _bulk(f.client_address.encode()),
        b"*%d\r\n" % (2 * len(f.initial_cluster)),
    ]
    for node_id, address in f.initial_cluster:
        parts.append(b":%d\r\n" % node_id)
        parts.append(_bulk(address.encode()))
    parts.append(_bulk(f.nonce))
    return b"".join(parts)


_WELCOME = _tag(b"WELCOME", 5) + b":%d\r\n:%d\r\n"


def _enc_welcome(f: Welcome) -> bytes:
    return _WELCOME % (f.version, f.node_id) + _bulk(f.nonce) + _bulk(f.proof)


def _enc_auth(f: Auth) -> bytes:
    return _tag(b"AUTH", 2) + _bulk(f.proof)


_OK = _tag(b"OK", 1)


def _enc_ok(f: HandshakeOk) -> bytes:
    return _OK


def _enc_reject(f: Reject) -> bytes:
    return _tag(b"REJECT", 2) + _bulk(f.reason.encode())


_FWD_TAG = b"$3\r\nFWD\r\n"


def _enc_forward(f: Forward) -> bytes:
    parts = [
        b"*%d\r\n" % (4 + len(f.argv)) + _FWD_TAG,
        b":%d\r\n:%d\r\n:%d\r\n" % (f.request_id, f.db, f.protocol),
    ]
    for arg in f.argv:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


_FWDR = _tag(b"FWDR", 3) + b":%d\r\n$%d\r\n"


def _enc_forward_reply(f: ForwardReply) -> bytes:
    return b"".join((_FWDR % (f.request_id, len(f.payload)), f.payload, b"\r\n"))


_FRAME_ENCODERS: dict[type, Callable[[object], bytes]] = {
    Hello: _enc_hello,  # type: ignore[dict-item]
    Welcome: _enc_welcome,  # type: ignore[dict-item]
    Auth: _enc_auth,  # type: ignore[dict-item]
    HandshakeOk: _enc_ok,  # type: ignore[dict-item]
    Reject: _enc_reject,  # type: ignore[dict-item]
    Forward: _enc_forward,  # type: ignore[dict-item]
    ForwardReply: _enc_forward_reply,  # type: ignore[dict-item]
}


def encode_frame(frame: Frame) -> bytes:
    """One non-Raft frame (handshake, forwarding) as one RESP array."""
    return _FRAME_ENCODERS[type(frame)](frame)


_ALL_ENCODERS = {**_MESSAGE_ENCODERS, **_FRAME_ENCODERS}


def encode(item: Message | Frame) -> bytes:
    """Any Raft message or peer frame as one RESP array."""
    try:
        encoder = _ALL_ENCODERS[type(item)]
    except KeyError:
        raise TypeError(f"not a peer-channel message or frame: {item!r}") from None
    return encoder(item)


# --- decoding -------------------------------------------------------------------------------
# Each decoder gets the whole array (tag included) and may assume nothing about it; it checks
# the element types against a signature tuple first. Any exception that still escapes (a struct
# error, a bad enum value) is turned into PeerProtocolError by decode_frame.

_I = int
_B = bytes


def _sig(*types: type) -> tuple[type, ...]:
    return (bytes, *types)


def _bad(name: str, items: list[object]) -> PeerProtocolError:
    shape = ", ".join(type(x).__name__ for x in items[1:])
    return PeerProtocolError(f"malformed {name} frame ({len(items)} elements: tag, {shape})")


def _nonneg(name: str, *values: int) -> None:
    if min(values) < 0:
        raise PeerProtocolError(f"negative field in {name} frame: {values}")


def _flags(name: str, flags: int, limit: int) -> int:
    if not 0 <= flags < limit:
        raise PeerProtocolError(f"bad flags {flags} in {name} frame")
    return flags


_AE_SIG = _sig(_I, _I, _I, _I, _I, _I)


def _dec_append(f: list) -> AppendEntries:  # type: ignore[type-arg]
    if tuple(map(type, f[:7])) != _AE_SIG:
        raise _bad("AE", f)
    _, term, sender, to, prev_index, prev_term, commit = f[:7]
    _nonneg("AE", term, sender, to, prev_index, prev_term, commit)
    unpack = _ENTRY.unpack_from
    types = _ENTRY_TYPES
    entries = []
    for raw in f[7:]:
        if type(raw) is not bytes:
            raise _bad("AE", f)
        e_term, e_index, e_type = unpack(raw)
        entries.append(Entry(e_term, e_index, types[e_type], raw[_ENTRY_SIZE:]))
    return AppendEntries(term, sender, to, prev_index, prev_term, tuple(entries), commit)


_AER_SIG = _sig(_I, _I, _I, _I, _I, _I, _I)


def _dec_append_response(f: list) -> AppendEntriesResponse:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _AER_SIG:
        raise _bad("AER", f)
    _, term, sender, to, index, hint_index, hint_term, flags = f
    _nonneg("AER", term, sender, to, index, hint_index, hint_term)
    reject = bool(_flags("AER", flags, 2))
    return AppendEntriesResponse(term, sender, to, index, reject, hint_index, hint_term)


_HB_SIG = _sig(_I, _I, _I, _I, _B)


def _dec_heartbeat(f: list) -> Heartbeat:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _HB_SIG:
        raise _bad("HB", f)
    _, term, sender, to, commit, context = f
    _nonneg("HB", term, sender, to, commit)
    return Heartbeat(term, sender, to, commit, context)


_HBR_SIG = _sig(_I, _I, _I, _B)


def _dec_heartbeat_response(f: list) -> HeartbeatResponse:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _HBR_SIG:
        raise _bad("HBR", f)
    _, term, sender, to, context = f
    _nonneg("HBR", term, sender, to)
    return HeartbeatResponse(term, sender, to, context)


_RV_SIG = _sig(_I, _I, _I, _I, _I, _I)


def _dec_vote(f: list) -> RequestVote:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _RV_SIG:
        raise _bad("RV", f)
    _, term, sender, to, last_index, last_term, flags = f
    _nonneg("RV", term, sender, to, last_index, last_term)
    _flags("RV", flags, 4)
    return RequestVote(term, sender, to, last_index, last_term, bool(flags & 1), bool(flags & 2))


_RVR_SIG = _sig(_I, _I, _I, _I)


def _dec_vote_response(f: list) -> RequestVoteResponse:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _RVR_SIG:
        raise _bad("RVR", f)
    _, term, sender, to, flags = f
    _nonneg("RVR", term, sender, to)
    _flags("RVR", flags, 4)
    return RequestVoteResponse(term, sender, to, bool(flags & 1), bool(flags & 2))


_IS_SIG = _sig(_I, _I, _I, _I, _I, list, _I, _B, _I, _I)


def _decode_members(name: str, raw_members: list) -> ConfState:  # type: ignore[type-arg]
    members = []
    unpack = _MEMBER.unpack_from
    for raw in raw_members:
        if type(raw) is not bytes:
            raise PeerProtocolError(f"malformed member in {name} frame: {raw!r}")
        node_id, learner = unpack(raw)
        if learner > 1:
            raise PeerProtocolError(f"bad learner flag {learner} in {name} frame")
        members.append(Member(NodeId(node_id), bool(learner), raw[_MEMBER_SIZE:]))
    return ConfState(tuple(members))


def _dec_snapshot(f: list) -> InstallSnapshot:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _IS_SIG:
        raise _bad("IS", f)
    _, term, sender, to, meta_index, meta_term, members, offset, data, checksum, flags = f
    _nonneg("IS", term, sender, to, meta_index, meta_term, offset, checksum)
    _flags("IS", flags, 2)
    meta = SnapshotMeta(meta_index, meta_term, _decode_members("IS", members))
    return InstallSnapshot(term, sender, to, meta, offset, data, checksum, bool(flags))


_ISR_SIG = _sig(_I, _I, _I, _I, _I, _I)


def _dec_snapshot_response(f: list) -> InstallSnapshotResponse:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _ISR_SIG:
        raise _bad("ISR", f)
    _, term, sender, to, snapshot_index, offset, flags = f
    _nonneg("ISR", term, sender, to, snapshot_index, offset)
    _flags("ISR", flags, 4)
    return InstallSnapshotResponse(
        term, sender, to, snapshot_index, offset, bool(flags & 1), bool(flags & 2)
    )


_TN_SIG = _sig(_I, _I, _I)


def _dec_timeout_now(f: list) -> TimeoutNow:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _TN_SIG:
        raise _bad("TN", f)
    _, term, sender, to = f
    _nonneg("TN", term, sender, to)
    return TimeoutNow(term, sender, to)


_RIQ_SIG = _sig(_I, _I, _I, _B)


def _dec_read_index(f: list) -> ReadIndexRequest:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _RIQ_SIG:
        raise _bad("RIQ", f)
    _, term, sender, to, context = f
    _nonneg("RIQ", term, sender, to)
    return ReadIndexRequest(term, sender, to, context)


_RIR_SIG = _sig(_I, _I, _I, _B, _I, _I)


def _dec_read_index_response(f: list) -> ReadIndexResponse:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _RIR_SIG:
        raise _bad("RIR", f)
    _, term, sender, to, context, index, flags = f
    _nonneg("RIR", term, sender, to, index)
    reject = bool(_flags("RIR", flags, 2))
    return ReadIndexResponse(term, sender, to, context, index, reject)


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise PeerProtocolError(f"non-UTF-8 text in {name} frame: {raw[:64]!r}") from None


_HELLO_SIG = _sig(_I, _B, _I, _I, _B, _B, list, _B)


def _dec_hello(f: list) -> Hello:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _HELLO_SIG:
        raise _bad("HELLO", f)
    _, version, cluster_id, node_id, to, peer_address, client_address, initial, nonce = f
    _nonneg("HELLO", version, node_id, to)
    if len(initial) % 2:
        raise PeerProtocolError("odd-length initial_cluster in HELLO frame")
    pairs = []
    for i in range(0, len(initial), 2):
        member_id, address = initial[i], initial[i + 1]
        if type(member_id) is not int or type(address) is not bytes or member_id < 0:
            raise PeerProtocolError(f"malformed initial_cluster in HELLO frame: {initial!r}")
        pairs.append((NodeId(member_id), _text("HELLO", address)))
    return Hello(
        version,
        _text("HELLO", cluster_id),
        NodeId(node_id),
        NodeId(to),
        _text("HELLO", peer_address),
        _text("HELLO", client_address),
        tuple(pairs),
        nonce,
    )


_WELCOME_SIG = _sig(_I, _I, _B, _B)


def _dec_welcome(f: list) -> Welcome:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _WELCOME_SIG:
        raise _bad("WELCOME", f)
    _, version, node_id, nonce, proof = f
    _nonneg("WELCOME", version, node_id)
    return Welcome(version, NodeId(node_id), nonce, proof)


_AUTH_SIG = _sig(_B)


def _dec_auth(f: list) -> Auth:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _AUTH_SIG:
        raise _bad("AUTH", f)
    return Auth(f[1])


def _dec_ok(f: list) -> HandshakeOk:  # type: ignore[type-arg]
    if len(f) != 1:
        raise _bad("OK", f)
    return HandshakeOk()


_REJECT_SIG = _sig(_B)


def _dec_reject(f: list) -> Reject:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _REJECT_SIG:
        raise _bad("REJECT", f)
    return Reject(f[1].decode(errors="replace"))


_FWD_SIG = _sig(_I, _I, _I)


def _dec_forward(f: list) -> Forward:  # type: ignore[type-arg]
    if tuple(map(type, f[:4])) != _FWD_SIG:
        raise _bad("FWD", f)
    _, request_id, db, protocol = f[:4]
    _nonneg("FWD", request_id, db, protocol)
    argv = tuple(f[4:])
    for arg in argv:
        if type(arg) is not bytes:
            raise _bad("FWD", f)
    return Forward(request_id, db, protocol, argv)


_FWDR_SIG = _sig(_I, _B)


def _dec_forward_reply(f: list) -> ForwardReply:  # type: ignore[type-arg]
    if tuple(map(type, f)) != _FWDR_SIG:
        raise _bad("FWDR", f)
    _, request_id, payload = f
    _nonneg("FWDR", request_id)
    return ForwardReply(request_id, payload)


_DECODERS: dict[bytes, Callable[[list], Message | Frame]] = {  # type: ignore[type-arg]
    b"AE": _dec_append,
    b"AER": _dec_append_response,
    b"HB": _dec_heartbeat,
    b"HBR": _dec_heartbeat_response,
    b"RV": _dec_vote,
    b"RVR": _dec_vote_response,
    b"IS": _dec_snapshot,
    b"ISR": _dec_snapshot_response,
    b"TN": _dec_timeout_now,
    b"RIQ": _dec_read_index,
    b"RIR": _dec_read_index_response,
    b"HELLO": _dec_hello,
    b"WELCOME": _dec_welcome,
    b"AUTH": _dec_auth,
    b"OK": _dec_ok,
    b"REJECT": _dec_reject,
    b"FWD": _dec_forward,
    b"FWDR": _dec_forward_reply,
}


def decode_frame(items: object) -> Message | Frame:
    """One parsed RESP value (as hiredis returns it) -> a Raft message or a peer frame."""
    if type(items) is not list or not items:
        raise PeerProtocolError(f"expected a non-empty array, got {_preview(items)}")
    decoder = _DECODERS.get(items[0]) if type(items[0]) is bytes else None
    if decoder is None:
        raise PeerProtocolError(f"unknown frame tag {_preview(items[0])}")
    try:
        return decoder(items)
    except PeerProtocolError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as exc:
        raise PeerProtocolError(f"malformed {items[0].decode()} frame: {exc}") from None


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _NeedMore:
    """hiredis's 'no complete reply yet' marker (a RESP3 false must not look like it)."""


_NEED_MORE = _NeedMore()


def _protocol_error(detail: str) -> Exception:
    return PeerProtocolError(f"not RESP: {detail}")


def _reply_error(detail: str) -> Exception:
    # A RESP error line where a frame was expected; decode_frame rejects it as a non-array.
    return PeerProtocolError(f"unexpected RESP error {detail!r}")


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, iterate the complete frames.

    >>> d = FrameDecoder(); d.feed(encode(Reject("x"))); list(d)
    [Reject(reason='x')]
    """

    __slots__ = ("_reader", "bytes_fed")

    def __init__(self) -> None:
        self._reader = hiredis.Reader(
            protocolError=_protocol_error, replyError=_reply_error, notEnoughData=_NEED_MORE
        )
        self.bytes_fed = 0  # total, so a handshake can be bounded before the peer is trusted

    def feed(self, data: bytes | bytearray | memoryview, length: int = -1) -> None:
        """Add ``data`` (or its first ``length`` bytes) to the parse buffer."""
        n = len(data) if length < 0 else length
        self.bytes_fed += n
        self._reader.feed(data, 0, n)  # type: ignore[arg-type]  # any buffer works

    def __iter__(self) -> Iterator[Message | Frame]:
        gets = self._reader.gets
        while True:
            try:
                items = gets()
            except PeerProtocolError:
                raise
            except Exception as exc:  # hiredis.ProtocolError for e.g. an oversized integer
                raise PeerProtocolError(f"not RESP: {exc}") from None
            if items is _NEED_MORE:
                return
            yield decode_frame(items)

    def next_frame(self) -> Message | Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        return next(iter(self), None)
