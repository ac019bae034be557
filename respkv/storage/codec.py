"""Byte encodings of everything storage keeps: compact ``struct`` layouts, never pickle.

All integers are big-endian, so encoded log indexes sort in index order.

    raft_log key        index u64
    raft_log value      term u64, type u8, data
    hard state          term u64, vote u64, commit u64
    conf state          count u32, then per member: id u64, learner u8, context_len u32, context
    snapshot meta       index u64, term u64, conf state
    applied index       index u64
    identity            format_version u32, node_id u64, cluster_id (utf-8, the rest)
"""

from __future__ import annotations

import struct

from respkv.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Index,
    Member,
    NodeId,
    SnapshotMeta,
    Term,
)

from .errors import StorageError

_U64 = struct.Struct(">Q")
_ENTRY_HEADER = struct.Struct(">QB")
_HARD_STATE = struct.Struct(">QQQ")
_COUNT = struct.Struct(">I")
_MEMBER = struct.Struct(">QBI")
_SNAPSHOT_HEADER = struct.Struct(">QQ")
_IDENTITY_HEADER = struct.Struct(">IQ")

#: Larger than every index key: the exclusive end of a range covering the whole log.
LOG_END_KEY = b"\xff" * 9

encode_index = _U64.pack


def decode_index(data: bytes) -> Index:
    return Index(_U64.unpack(data)[0])


def encode_entry_value(entry: Entry) -> bytes:
    return _ENTRY_HEADER.pack(entry.term, entry.type) + entry.data


def decode_entry(key: bytes, value: bytes) -> Entry:
    try:
        (index,) = _U64.unpack(key)
        term, kind = _ENTRY_HEADER.unpack_from(value)
        return Entry(Term(term), Index(index), EntryType(kind), value[_ENTRY_HEADER.size :])
    except (struct.error, ValueError) as e:
        raise StorageError(f"corrupt raft log record {key!r}: {e}") from e


def encode_hard_state(hs: HardState) -> bytes:
    return _HARD_STATE.pack(hs.term, hs.vote, hs.commit)


def decode_hard_state(data: bytes) -> HardState:
    try:
        term, vote, commit = _HARD_STATE.unpack(data)
    except struct.error as e:
        raise StorageError(f"corrupt hard state record: {e}") from e
    return HardState(Term(term), NodeId(vote), Index(commit))


def encode_conf_state(cs: ConfState) -> bytes:
    parts = [_COUNT.pack(len(cs.members))]
    for m in cs.members:
        parts.append(_MEMBER.pack(m.id, m.learner, len(m.context)))
        parts.append(m.context)
    return b"".join(parts)


def _decode_conf_state(data: bytes, offset: int) -> tuple[ConfState, int]:
    (count,) = _COUNT.unpack_from(data, offset)
    offset += _COUNT.size
    members = []
    for _ in range(count):
        node_id, learner, context_len = _MEMBER.unpack_from(data, offset)
        offset += _MEMBER.size
        context = data[offset : offset + context_len]
        if len(context) != context_len:
            raise struct.error("member context truncated")
        offset += context_len
        members.append(Member(NodeId(node_id), bool(learner), context))
    return ConfState(tuple(members)), offset


def decode_conf_state(data: bytes) -> ConfState:
    try:
        cs, end = _decode_conf_state(data, 0)
    except struct.error as e:
        raise StorageError(f"corrupt conf state record: {e}") from e
    if end != len(data):
        raise StorageError(f"corrupt conf state record: {len(data) - end} trailing bytes")
    return cs


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    return _SNAPSHOT_HEADER.pack(meta.index, meta.term) + encode_conf_state(meta.conf_state)


def decode_snapshot_meta(data: bytes) -> SnapshotMeta:
    try:
        index, term = _SNAPSHOT_HEADER.unpack_from(data)
        cs, end = _decode_conf_state(data, _SNAPSHOT_HEADER.size)
    except struct.error as e:
        raise StorageError(f"corrupt snapshot meta record: {e}") from e
    if end != len(data):
        raise StorageError(f"corrupt snapshot meta record: {len(data) - end} trailing bytes")
    return SnapshotMeta(Index(index), Term(term), cs)


def encode_identity(format_version: int, node_id: int, cluster_id: str) -> bytes:
    return _IDENTITY_HEADER.pack(format_version, node_id) + cluster_id.encode()


def decode_identity(data: bytes) -> tuple[int, NodeId, str]:
    """(format_version, node_id, cluster_id)."""
    try:
        version, node_id = _IDENTITY_HEADER.unpack_from(data)
        cluster_id = data[_IDENTITY_HEADER.size :].decode()
    except (struct.error, UnicodeDecodeError) as e:
        raise StorageError(f"corrupt identity record: {e}") from e
    return version, NodeId(node_id), cluster_id
