"""The peer codec: every Raft message and peer frame round-trips; garbage is PeerProtocolError."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.peer.codec import FrameDecoder, PeerProtocolError, decode_frame, encode
from respkv.peer.frames import (
    Auth,
    Forward,
    ForwardReply,
    HandshakeOk,
    Hello,
    Reject,
    Welcome,
)
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
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)

u63 = st.integers(min_value=0, max_value=2**63 - 1)
small = st.integers(min_value=0, max_value=1000)
num = st.one_of(small, u63)
blob = st.binary(max_size=64)
text = st.text(max_size=30)

entries = st.builds(Entry, num, num, st.sampled_from(list(EntryType)), blob)
members = st.builds(Member, num, st.booleans(), blob)
conf_states = st.builds(ConfState, st.lists(members, max_size=5).map(tuple))
metas = st.builds(SnapshotMeta, num, num, conf_states)

raft_messages = st.one_of(
    st.builds(
        AppendEntries, num, num, num, num, num, st.lists(entries, max_size=6).map(tuple), num
    ),
    st.builds(AppendEntriesResponse, num, num, num, num, st.booleans(), num, num),
    st.builds(Heartbeat, num, num, num, num, blob),
    st.builds(HeartbeatResponse, num, num, num, blob),
    st.builds(RequestVote, num, num, num, num, num, st.booleans(), st.booleans()),
    st.builds(RequestVoteResponse, num, num, num, st.booleans(), st.booleans()),
    st.builds(
        InstallSnapshot,
        num,
        num,
        num,
        metas,
        num,
        blob,
        st.integers(min_value=0, max_value=2**32 - 1),
        st.booleans(),
    ),
    st.builds(InstallSnapshotResponse, num, num, num, num, num, st.booleans(), st.booleans()),
    st.builds(TimeoutNow, num, num, num),
    st.builds(ReadIndexRequest, num, num, num, blob),
    st.builds(ReadIndexResponse, num, num, num, blob, num, st.booleans()),
)

peer_frames = st.one_of(
    st.builds(
        Hello,
        small,
        text,
        num,
        num,
        text,
        text,
        st.lists(st.tuples(num, text), max_size=5).map(tuple),
        blob,
    ),
    st.builds(Welcome, small, num, blob, blob),
    st.builds(Auth, blob),
    st.just(HandshakeOk()),
    st.builds(Reject, text),
    st.builds(Forward, num, small, st.sampled_from([2, 3]), st.lists(blob, max_size=6).map(tuple)),
    st.builds(ForwardReply, num, blob),
)

anything = st.one_of(raft_messages, peer_frames)


def decode_all(data: bytes, chunk: int | None = None) -> list[object]:
    decoder = FrameDecoder()
    out: list[object] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step])
        out.extend(decoder)
    return out


@given(anything)
def test_round_trip(item: object) -> None:
    data = encode(item)  # type: ignore[arg-type]
    assert decode_all(data) == [item]


@given(st.lists(anything, max_size=12), st.integers(min_value=1, max_value=97))
def test_stream_round_trip_in_any_chunking(items: list[object], chunk: int) -> None:
    data = b"".join(encode(i) for i in items)  # type: ignore[arg-type]
    assert decode_all(data, chunk) == items


@pytest.mark.parametrize(
    "item",
    [
        AppendEntries(1, 2, 3, 0, 0, (), 0),
        AppendEntries(
            7, 1, 2, 9, 6, tuple(Entry(7, 10 + i, EntryType.NORMAL, b"x" * i) for i in range(50)), 9
        ),
        InstallSnapshot(
            3,
            1,
            2,
            SnapshotMeta(100, 3, ConfState((Member(1, False, b"a:1"), Member(4, True)))),
            1 << 20,
            b"chunk",
            zlib.crc32(b"chunk"),
            True,
        ),
        Hello(1, "c1", 1, 2, "127.0.0.1:7001", "127.0.0.1:6379", ((1, "a"), (2, "b")), b""),
        Forward(1, 0, 2, ()),
        ForwardReply(2**63 - 1, b"$-1\r\n"),
    ],
)
def test_examples_round_trip(item: object) -> None:
    assert decode_all(encode(item)) == [item]  # type: ignore[arg-type]


def test_large_append_round_trip() -> None:
    big = AppendEntries(
        5, 1, 2, 0, 0, (Entry(5, 1, EntryType.NORMAL, bytes(range(256)) * 16384),), 0
    )
    data = encode(big)
    assert len(data) > 4 << 20
    assert decode_all(data, 65536) == [big]


def test_entry_header_is_compact() -> None:
    one = encode(AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, EntryType.NORMAL, b""),), 0))
    none = encode(AppendEntries(1, 1, 2, 0, 0, (), 0))
    assert len(one) - len(none) == len(b"$17\r\n") + 17 + 2


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        encode("hello")  # type: ignore[arg-type]


GARBAGE = [
    b"+OK\r\n",  # not an array
    b"-ERR nope\r\n",
    b":1\r\n",
    b"*0\r\n",  # empty array
    b"*1\r\n:5\r\n",  # tag not a bulk string
    b"*1\r\n$4\r\nNOPE\r\n",  # unknown tag
    b"*2\r\n$2\r\nHB\r\n:1\r\n",  # too short
    b"*6\r\n$2\r\nHB\r\n:1\r\n:1\r\n:2\r\n:3\r\n:4\r\n",  # context not bulk
    b"*6\r\n$2\r\nHB\r\n:1\r\n$1\r\nx\r\n:2\r\n:3\r\n$0\r\n\r\n",  # sender not int
    b"*6\r\n$2\r\nHB\r\n:-1\r\n:1\r\n:2\r\n:3\r\n$0\r\n\r\n",  # negative term
    b"*8\r\n$2\r\nAE\r\n:1\r\n:1\r\n:2\r\n:0\r\n:0\r\n:0\r\n$3\r\nabc\r\n",  # short entry
    b"*8\r\n$2\r\nAE\r\n:1\r\n:1\r\n:2\r\n:0\r\n:0\r\n:0\r\n:7\r\n",  # entry not bulk
    b"*8\r\n$2\r\nAE\r\n:1\r\n:1\r\n:2\r\n:0\r\n:0\r\n:0\r\n$17\r\n"
    + b"\0" * 16
    + b"\x09\r\n",  # bad entry type
    b"*5\r\n$3\r\nRVR\r\n:1\r\n:1\r\n:2\r\n:9\r\n",  # bad flags
    b"*8\r\n$3\r\nAER\r\n:1\r\n:1\r\n:2\r\n:0\r\n:0\r\n:0\r\n:2\r\n",  # bad flags
    b"*11\r\n$2\r\nIS\r\n:1\r\n:1\r\n:2\r\n:0\r\n:0\r\n*1\r\n$2\r\nab\r\n"
    + b":0\r\n$0\r\n\r\n:0\r\n:1\r\n",  # short member
    b"*9\r\n$5\r\nHELLO\r\n:1\r\n$1\r\nc\r\n:1\r\n:2\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n:1\r\n"
    + b"$0\r\n\r\n",  # odd initial_cluster
    b"*9\r\n$5\r\nHELLO\r\n:1\r\n$1\r\n\xff\r\n:1\r\n:2\r\n$1\r\na\r\n$1\r\nb\r\n*0\r\n"
    + b"$0\r\n\r\n",  # cluster id not UTF-8
    b"*5\r\n$3\r\nFWD\r\n:1\r\n:0\r\n:2\r\n:7\r\n",  # argv element not bulk
    b"*2\r\n$2\r\nOK\r\n:1\r\n",
    b"#t\r\n",  # RESP3 boolean
    b"#f\r\n",  # RESP3 false (must not look like "need more data")
    b"%1\r\n:1\r\n:2\r\n",  # RESP3 map
    b"?what\r\n",  # not RESP at all
    b"*1\r\n:99999999999999999999999\r\n",  # integer overflow
]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_is_a_peer_protocol_error(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    with pytest.raises(PeerProtocolError, match="peer sent garbage"):
        list(decoder)


def test_decode_frame_rejects_non_arrays() -> None:
    with pytest.raises(PeerProtocolError):
        decode_frame(b"AE")
    with pytest.raises(PeerProtocolError):
        decode_frame([])


def test_incomplete_frame_waits_for_more() -> None:
    data = encode(Heartbeat(1, 1, 2, 3, b"ctx"))
    decoder = FrameDecoder()
    decoder.feed(data[:-1])
    assert decoder.next_frame() is None
    decoder.feed(data[-1:])
    assert decoder.next_frame() == Heartbeat(1, 1, 2, 3, b"ctx")
    assert decoder.bytes_fed == len(data)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    with contextlib.suppress(PeerProtocolError):
        list(decoder)


@settings(max_examples=300)
@given(anything, st.data())
def test_corrupted_frames_decode_or_fail_cleanly(item: object, data: st.DataObject) -> None:
    raw = bytearray(encode(item))  # type: ignore[arg-type]
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[position] = data.draw(st.integers(min_value=0, max_value=255))
    decoder = FrameDecoder()
    decoder.feed(bytes(raw))
    with contextlib.suppress(PeerProtocolError):
        list(decoder)
