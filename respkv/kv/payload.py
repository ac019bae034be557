"""The Raft log payload of a write: the leader's stamp plus one or more commands.

Layout (all integers big-endian)::

    single:       0x01  stamp:i64  db:u16  argc:u16  len:u32 * argc  arg bytes...
    transaction:  0x02  stamp:i64  count:u32  then count times:
                                   db:u16  argc:u16  len:u32 * argc  arg bytes...

``argv[0]`` is the command's canonical lowercase name (internal commands start with '#', which
the client table never contains). In a transaction a command that failed validation is stored
as ``db = 0xFFFF`` with one argument, the error message, so EXEC can answer it in place.
An empty payload is a Raft no-op and never reaches this module.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

SINGLE: Final = 1
TRANSACTION: Final = 2
ERROR_DB: Final = 0xFFFF

_SINGLE_HEAD = struct.Struct(">BqHH")
_TXN_HEAD = struct.Struct(">BqI")
_CMD_HEAD = struct.Struct(">HH")
_KIND_STAMP = struct.Struct(">Bq")
_LENS: dict[int, struct.Struct] = {}


def _lens(argc: int) -> struct.Struct:
    s = _LENS.get(argc)
    if s is None:
        s = _LENS[argc] = struct.Struct(f">{argc}I")
    return s


class PayloadError(ValueError):
    """The payload is not one this module wrote (a corrupt or foreign log entry)."""


def encode_single(stamp_ms: int, db: int, name: bytes, argv: Sequence[bytes]) -> bytes:
    """One command; ``argv[0]`` is replaced by ``name`` (the canonical name)."""
    argc = len(argv)
    return b"".join(
        (
            _SINGLE_HEAD.pack(SINGLE, stamp_ms, db, argc),
            _lens(argc).pack(len(name), *map(len, argv[1:])),
            name,
            *argv[1:],
        )
    )


def encode_transaction(stamp_ms: int, commands: Sequence[tuple[int, Sequence[bytes]]]) -> bytes:
    """Several commands applied atomically; each argv already carries its canonical name."""
    parts = [_TXN_HEAD.pack(TRANSACTION, stamp_ms, len(commands))]
    for db, argv in commands:
        argc = len(argv)
        parts.append(_CMD_HEAD.pack(db, argc))
        parts.append(_lens(argc).pack(*map(len, argv)))
        parts.extend(argv)
    return b"".join(parts)


def _read_command(payload: bytes, pos: int, argc: int) -> tuple[list[bytes], int]:
    lens = _lens(argc).unpack_from(payload, pos)
    pos += 4 * argc
    argv = []
    for n in lens:
        argv.append(payload[pos : pos + n])
        pos += n
    return argv, pos


def decode(payload: bytes) -> tuple[int, int, list[tuple[int, list[bytes]]]]:
    """(kind, stamp_ms, [(db, argv), ...])."""
    try:
        kind, stamp = _KIND_STAMP.unpack_from(payload, 0)
        if kind == SINGLE:
            _, _, db, argc = _SINGLE_HEAD.unpack_from(payload, 0)
            argv, end = _read_command(payload, _SINGLE_HEAD.size, argc)
            commands = [(db, argv)]
        elif kind == TRANSACTION:
            _, _, count = _TXN_HEAD.unpack_from(payload, 0)
            pos = _TXN_HEAD.size
            commands = []
            for _ in range(count):
                db, argc = _CMD_HEAD.unpack_from(payload, pos)
                argv, pos = _read_command(payload, pos + _CMD_HEAD.size, argc)
                commands.append((db, argv))
            end = pos
        else:
            raise PayloadError(f"unknown payload kind {kind}")
    except struct.error as exc:
        raise PayloadError(f"truncated payload: {exc}") from None
    if end != len(payload):
        raise PayloadError("trailing bytes after the payload's commands")
    return kind, stamp, commands


def decode_single(payload: bytes) -> tuple[int, int, list[bytes]] | None:
    """(stamp_ms, db, argv) for a single-command payload, None for other kinds (fast path)."""
    if payload[0] != SINGLE:
        return None
    try:
        _, stamp, db, argc = _SINGLE_HEAD.unpack_from(payload, 0)
        argv, end = _read_command(payload, _SINGLE_HEAD.size, argc)
    except struct.error as exc:
        raise PayloadError(f"truncated payload: {exc}") from None
    if end != len(payload):
        raise PayloadError("trailing bytes after the payload's command")
    return stamp, db, argv
