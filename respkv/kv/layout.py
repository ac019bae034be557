"""How the keyspace is laid out in the ordered byte map (``Backend``).

Every record of the state machine lives in one ordered map; the first byte says what it is.

Logical and physical databases
    A client's db number (0..databases-1) is *logical*. Each logical db points at a *physical*
    keyspace id (u32, never reused). SWAPDB swaps two pointers; FLUSHDB/FLUSHALL point the db
    at a fresh id and mark the old one dead. Both are O(1); the dead keyspace is deleted later,
    a bounded slice at a time, by ``StateMachine.collect_garbage``. ``P`` below is the physical
    id as 4 big-endian bytes.

Records (key -> value)
    ``d P key``               -> the key's record (below). All keys of a db are contiguous and
                                 in byte order, so KEYS/SCAN are range scans and a glob's
                                 literal prefix is a seek.
    ``e P when key``          -> b"" : the expiry index; ``when`` is the absolute expiry in
                                 unix ms as 8 big-endian bytes (always > 0), so an
                                 active-expiry cycle reads the keys with ``when < now`` of each
                                 db from the front of one range, never scanning all keys.
    ``c version member``      -> member data of a collection (hash, list, set, zset; see
                                 ``respkv.kv.collection``). ``version`` (u64) is unique for
                                 the whole store and kept in the collection's key record, so
                                 RENAME/MOVE/SWAPDB move only the key record, and
                                 DEL/overwrite/expiry drop the key record and leave the
                                 members to the garbage collector. ``member`` is the type's
                                 member key (a hash's field, a set's member), so a
                                 collection's members are contiguous and in byte order.
    ``g version``             -> b"" : members of this version are garbage.
    ``\\x00dbmap``             -> u32 next physical id, then u32 physical id per logical db.
                                 Absent until the first SWAPDB/FLUSH: db i -> physical id i.
    ``\\x00count P``           -> u64 number of keys of physical keyspace P (DBSIZE in O(1);
                                 like Redis it includes keys whose expiry passed but that have
                                 not been deleted yet).
    ``\\x00dead P``            -> b"" : physical keyspace P is garbage.
    ``\\x00version``           -> u64 last collection version handed out.
    ``\\x00acl name``          -> an ACL user's description (``respkv.kv.acl``): replicated
                                 and in snapshots like the keys, but never a key.

Key record value
    byte 0: type code, with bit 0x80 set when an expiry follows;
    [8 bytes: absolute expiry, unix ms, signed big-endian] when bit 0x80 is set;
    then, for a string, the raw bytes of the value; for a collection:

        version:u64  size:u64  changes:u64  type-specific metadata...

    A list's metadata is ``head:i64``, the position of its first element; its members are
    ``pos(position) -> element`` with pos = u64 big-endian of position + 2**63, so member
    order is list order (``respkv.kv.lists``).

    ``size`` is the number of members (HLEN, SCARD, LLEN); ``changes`` counts the modifying
    commands applied to the collection, so a changed member always changes the key record's
    bytes (WATCH compares them). An empty collection has no key record: like Redis, removing
    the last member deletes the key.

A string without expiry is therefore ``b"s" + value``: GET is one lookup, one comparison and one
slice.
"""

from __future__ import annotations

import struct
from typing import Final

U32: Final = struct.Struct(">I")
U64: Final = struct.Struct(">Q")
I64: Final = struct.Struct(">q")

DATA: Final = b"d"
EXPIRES: Final = b"e"
MEMBERS: Final = b"c"
GARBAGE: Final = b"g"
META_DBMAP: Final = b"\x00dbmap"
META_COUNT: Final = b"\x00count"
META_DEAD: Final = b"\x00dead"
META_VERSION: Final = b"\x00version"

EXPIRE_FLAG: Final = 0x80
T_STRING: Final = 0x73  # 's'
T_HASH: Final = 0x68  # 'h'
T_LIST: Final = 0x6C  # 'l'
T_SET: Final = 0x53  # 'S'
T_ZSET: Final = 0x7A  # 'z'
T_STREAM: Final = 0x78  # 'x'

TYPE_NAMES: Final = {
    T_STRING: b"string",
    T_HASH: b"hash",
    T_LIST: b"list",
    T_SET: b"set",
    T_ZSET: b"zset",
    T_STREAM: b"stream",
}
TYPE_BY_NAME: Final = {name: code for code, name in TYPE_NAMES.items()}

STRING_NO_EXPIRE: Final = bytes([T_STRING])
STRING_EXPIRE: Final = bytes([T_STRING | EXPIRE_FLAG])


def phys_bytes(phys: int) -> bytes:
    return U32.pack(phys)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def encode_string(value: bytes, expire_at: int) -> bytes:
    if expire_at:
        return STRING_EXPIRE + I64.pack(expire_at) + value
    return STRING_NO_EXPIRE + value


def record_type(record: bytes) -> int:
    return record[0] & 0x7F


def record_expire(record: bytes) -> int:
    """The absolute expiry in ms, or 0 for none."""
    if record[0] & EXPIRE_FLAG:
        return int(I64.unpack_from(record, 1)[0])
    return 0


def record_body(record: bytes) -> bytes:
    """What follows the header: a string's value."""
    return record[9:] if record[0] & EXPIRE_FLAG else record[1:]


def with_expire(record: bytes, expire_at: int) -> bytes:
    """The same record with its expiry replaced (0 removes it)."""
    code = record[0] & 0x7F
    body = record_body(record)
    if expire_at:
        return bytes([code | EXPIRE_FLAG]) + I64.pack(expire_at) + body
    return bytes([code]) + body
