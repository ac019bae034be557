"""The deterministic state machine: committed log entries in, keyspace changes and replies out.

Theory of operation
-------------------
``prepare_write`` turns a client's write into a log payload: it validates the command (arity,
syntax, numbers; errors never enter the log) and rewrites everything that depends on the clock
(relative TTLs become absolute PXAT times) using the leader's ``now_ms``, which the payload
carries as the entry's *stamp*. ``apply`` executes committed payloads in order; a handler sees
only the payload and the keyspace, never a clock or a random source, so every replica reaches
the same bytes. All changes of one ``apply`` call go to the backend in one ``write`` together
with the last applied index; until then they live in an overlay dict that later entries of the
same batch read through.

Expiry: a key whose expiry passed is absent for everyone (reads compare with the caller's
clock, writes with the entry's stamp; a key with expiry ``t`` is expired when ``now > t``, like
Redis). A write that meets an expired key deletes it first (deterministic: it uses the stamp).
Otherwise expired keys are removed only by replicated deletes: the leader asks
``expired_keys`` and proposes ``prepare_expire``'s payload, whose ``#expire`` commands delete a
key only if it is still expired at that entry's stamp, so a racing SET that extended it wins.

Reads (``read``) run on the applied state only and never write. SCAN cursors are local to this
object (a bounded table of cursor id -> last key returned), RANDOMKEY uses the injected
``random_bits``.

The record layout is described in ``respkv.kv.layout``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from respkv.resp.replies import NULL_ARRAY, ErrorReply

from . import acl, errors, layout
from .backend import Backend
from .commands import APPLIERS, CommandSpec, lookup
from .layout import DATA, EXPIRE_FLAG, EXPIRES, GARBAGE, I64, MEMBERS, U32, U64
from .payload import (
    ERROR_DB,
    decode,
    decode_single,
    encode_single,
    encode_transaction,
)

log = logging.getLogger(__name__)

_MISSING: Final = object()
_unpack_expire = I64.unpack_from


class Db:
    """A logical database as it is mapped now: its physical keyspace and record prefixes."""

    __slots__ = ("data", "data_end", "expires", "expires_end", "index", "phys", "phys_key")

    def __init__(self, index: int, phys: int) -> None:
        self.index = index
        self.phys = phys
        self.phys_key = layout.phys_bytes(phys)
        self.data = DATA + self.phys_key
        self.data_end = layout.prefix_end(self.data)
        self.expires = EXPIRES + self.phys_key
        self.expires_end = layout.prefix_end(self.expires)

    def __repr__(self) -> str:
        return f"Db(index={self.index}, phys={self.phys})"


def _xorshift_bits(seed: int = 0x9E3779B97F4A7C15) -> Callable[[int], int]:
    """A small deterministic bit source, the default for RANDOMKEY when none is injected."""
    state = seed

    def bits(k: int) -> int:
        nonlocal state
        out = 0
        produced = 0
        while produced < k:
            state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
            state ^= state >> 7
            state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
            out = (out << 64) | state
            produced += 64
        return out >> (produced - k)

    return bits


class StateMachine:
    """Redis string and key commands over an ordered byte map, numbered databases included.

    Methods without a leading underscore below ``# -- primitives`` are for the command
    handlers of this package (``strings``, ``keyspace``); the server uses the ones above.
    """

    def __init__(
        self,
        backend: Backend,
        databases: int = 16,
        *,
        random_bits: Callable[[int], int] | None = None,
        max_scan_cursors: int = 10_000,
    ) -> None:
        if not 1 <= databases <= 0xFFFE:
            raise ValueError(f"databases must be within 1..65534, got {databases}")
        self._backend = backend
        self._backend_get = backend.get
        self.databases = databases
        self.random_bits = random_bits or _xorshift_bits()
        self._overlay: dict[bytes, bytes | None] = {}
        self._in_apply = False
        self._max_scan_cursors = max_scan_cursors
        self._scan_cursors: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._next_cursor = 1
        self._expire_rr = 0
        #: Delivers a PUBLISH to this node's subscribers when its entry is applied; returns
        #: how many received it. The server sets it; the keyspace never sees the message.
        self.on_publish: Callable[[bytes, bytes], int] = lambda channel, message: 0
        #: ACL users as replicated (name -> description, ``respkv.kv.acl``); the server
        #: rebuilds its users whenever ``on_acl_change`` is called (apply, snapshot install).
        self.acl_records: dict[str, bytes] = {}
        self.on_acl_change: Callable[[], None] = lambda: None
        #: While not None (the server sets it when a client is blocked on a list), every
        #: write of a list's key record (``Collection.store``, RENAME/COPY/MOVE through
        #: ``list_written``) adds (db index, key) here, and SWAPDB and ``reload`` add
        #: (db index, None): the keys where a list may have data now. Strings never look.
        self.list_writes: set[tuple[int, bytes | None]] | None = None
        self.reload()

    # -- server API ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the cached metadata from the backend (after a snapshot was installed)."""
        self._backend_get = self._backend.get  # the backend may read another family now
        raw = self._backend_get(layout.META_DBMAP)
        if raw is None:
            mapping = list(range(self.databases))
            self._next_phys = self.databases
        else:
            count = (len(raw) - 4) // 4
            self._next_phys = U32.unpack_from(raw, 0)[0]
            mapping = [U32.unpack_from(raw, 4 + 4 * i)[0] for i in range(count)]
            while len(mapping) < self.databases:  # more databases configured than before
                mapping.append(self._next_phys)
                self._next_phys += 1
        self._dbs = [Db(i, phys) for i, phys in enumerate(mapping)]
        self._counts: dict[int, int] = {}
        self._dirty_counts: set[int] = set()
        raw_version = self._backend_get(layout.META_VERSION)
        self._version = U64.unpack(raw_version)[0] if raw_version else 0
        self._scan_cursors.clear()
        prefix = acl.RECORD_PREFIX
        self.acl_records = {
            rkey[len(prefix) :].decode(errors="replace"): value
            for rkey, value in self._backend.iterate(prefix, layout.prefix_end(prefix))
        }
        self.on_acl_change()
        if self.list_writes is not None:  # a new state (snapshot): any list may have data
            self.list_writes.update((i, None) for i in range(self.databases))

    def prepare_acl(self, argv: Sequence[bytes], now_ms: int) -> bytes | ErrorReply:
        """The payload of a replicated ACL change (``#aclsetuser``/``#acldeluser`` argv,
        passwords already hashed)."""
        if argv[0] not in (b"#aclsetuser", b"#acldeluser") or len(argv) < 2:
            return ErrorReply("ERR malformed ACL change")
        return encode_single(now_ms, 0, argv[0], argv)

    @property
    def applied_index(self) -> int:
        return self._backend.applied_index

    @staticmethod
    def is_write(name: bytes | str) -> bool:
        """True if the command goes through the log (``prepare_write`` + ``apply``)."""
        spec = lookup(name.encode() if isinstance(name, str) else name)
        return spec is not None and spec.is_write

    def prepare_write(
        self,
        argv: Sequence[bytes],
        db: int,
        now_ms: int,
        *,
        check_state: bool = False,
        spec: CommandSpec | None = None,
    ) -> bytes | ErrorReply:
        """Validate a client's write and encode it as a log payload stamped ``now_ms``.

        Returns the payload, or the error reply to send instead (the command must not be
        proposed). ``now_ms`` is the leader's wall clock: relative TTLs become absolute here.

        ``check_state=True`` also checks against the current applied state what Redis would
        reject before any effect (WRONGTYPE today). Only pass it when the applied state
        reflects every write this client may observe: on the leader, and when the client's
        connection has no write of its own still waiting to be applied (a pipelined
        ``DEL k`` then ``INCR k`` must not see the old ``k``). Without it such errors are
        found at apply time instead, which is always correct.

        ``spec``: ``lookup(argv[0])``, when the caller has it already.
        """
        if spec is None:
            spec = lookup(argv[0])
        if spec is None:
            return errors.unknown_command(argv)
        if not spec.is_write or spec.handler is None:
            return ErrorReply(f"ERR '{spec.name}' is not a write the state machine runs")
        arity = spec.arity
        argc = len(argv)
        if (argc != arity) if arity >= 0 else (argc < -arity):
            return spec.arity_error
        if not 0 <= db < self.databases:
            return errors.DB_OUT_OF_RANGE
        prepare = spec.prepare
        if prepare is None:
            return encode_single(now_ms, db, spec.name_bytes, argv)
        prepared = prepare(self, [spec.name_bytes, *argv[1:]], db, now_ms, check_state)
        if isinstance(prepared, ErrorReply):
            return prepared
        return encode_single(now_ms, db, prepared[0], prepared)

    def prepare_transaction(
        self,
        commands: Sequence[tuple[Sequence[bytes], int]],
        now_ms: int,
        watches: Sequence[tuple[int, bytes, bytes]] = (),
    ) -> bytes:
        """One payload for MULTI/EXEC: ``commands`` are (argv, db), reads and writes alike.

        ``apply`` answers it with the list of the commands' replies. A command that fails
        validation answers its error in place (like a runtime error inside EXEC); the server
        checks for unknown commands and arity when queueing, as Redis does. PUBLISH is
        accepted too (delivered on every node when the entry is applied).

        ``watches`` are (db, key, fingerprint) of WATCHed keys (``fingerprint``, taken by the
        client's node when it ran WATCH): ``apply`` answers ``NULL_ARRAY`` and changes nothing
        if any key's record differs at the entry's stamp. They travel as leading ``#watch``
        commands of the payload.
        """
        encoded: list[tuple[int, Sequence[bytes]]] = []
        for db, key, fingerprint in watches:
            if not 0 <= db < self.databases:
                return encode_transaction(now_ms, [(ERROR_DB, [b"ERR DB index is out of range"])])
            encoded.append((db, [b"#watch", key, fingerprint]))
        for argv, db in commands:
            spec = lookup(argv[0])
            result: list[bytes] | ErrorReply
            if spec is None:
                result = errors.unknown_command(argv)
            elif spec.name_bytes == b"publish" and spec.arity_ok(len(argv)):
                result = [b"#publish", *argv[1:]]
            elif spec.handler is None:
                result = ErrorReply(f"ERR '{spec.name}' is not run by the state machine")
            elif not spec.arity_ok(len(argv)):
                result = spec.arity_error
            elif not 0 <= db < self.databases:
                result = errors.DB_OUT_OF_RANGE
            elif spec.prepare is not None:
                result = spec.prepare(self, [spec.name_bytes, *argv[1:]], db, now_ms, False)
            else:
                result = [spec.name_bytes, *argv[1:]]
            if isinstance(result, ErrorReply):
                encoded.append((ERROR_DB, [errors.message_bytes(result)]))
            else:
                encoded.append((db, result))
        return encode_transaction(now_ms, encoded)

    def prepare_publish(self, channel: bytes, message: bytes, now_ms: int) -> bytes:
        """A PUBLISH as a log entry of its own: no keyspace change; every node delivers it
        to its subscribers (``on_publish``) when it applies the entry."""
        return encode_single(now_ms, 0, b"#publish", [b"#publish", channel, message])

    def fingerprint(self, db: int, key: bytes, now_ms: int) -> bytes:
        """What WATCH remembers of ``key``: b"" when absent (or expired at ``now_ms``), else a
        hash of its record (value, type and expiry; a collection's record changes with every
        change of its members). Reads the applied state (through the batch during apply)."""
        rec = self.lookup_read(self._dbs[db], key, now_ms)
        if rec is None:
            return b""
        return hashlib.blake2b(rec, digest_size=16).digest()

    def prepare_expire(self, keys: Iterable[tuple[int, bytes]], now_ms: int) -> bytes:
        """A payload deleting ``keys`` ((db, key) from ``expired_keys``) if still expired."""
        return encode_transaction(now_ms, [(db, [b"#expire", key]) for db, key in keys])

    def apply(self, entries: Iterable[tuple[int, bytes]]) -> list[Any]:
        """Apply committed (index, payload) entries in order; one reply per entry.

        An empty payload (Raft no-op) answers None. A transaction payload answers the list of
        its commands' replies. Every change is written with one ``backend.write`` stamped
        with the last index. Never reads a clock: time comes from each entry's stamp.
        """
        replies: list[Any] = []
        last_index = -1
        self._overlay = {}
        self._in_apply = True
        try:
            for index, payload in entries:
                last_index = index
                if not payload:
                    replies.append(None)
                    continue
                single = decode_single(payload)
                if single is not None:
                    stamp, db, argv = single
                    replies.append(self._execute(db, argv, stamp))
                    continue
                _, stamp, commands = decode(payload)
                replies.append(self._execute_transaction(commands, stamp))
            if last_index >= 0:
                self._flush_counts()
                self._backend.write(self._overlay, last_index)
        except BaseException:
            # Nothing of the batch reached the backend: drop the cached state it changed.
            self._overlay = {}
            self._in_apply = False
            self.reload()
            raise
        finally:
            self._overlay = {}
            self._in_apply = False
        return replies

    def read(self, argv: Sequence[bytes], db: int, now_ms: int) -> Any:
        """Run a readonly command on the applied state; ``now_ms`` is the local clock."""
        spec = lookup(argv[0])
        if spec is None:
            return errors.unknown_command(argv)
        handler = spec.handler
        if handler is None or spec.is_write:
            return ErrorReply(f"ERR '{spec.name}' is not a read the state machine runs")
        arity = spec.arity
        argc = len(argv)
        if (argc != arity) if arity >= 0 else (argc < -arity):
            return spec.arity_error
        if not 0 <= db < self.databases:
            return errors.DB_OUT_OF_RANGE
        return handler(self, argv if type(argv) is list else list(argv), self._dbs[db], now_ms)

    def read_spec(self, spec: CommandSpec, argv: list[bytes], db: int, now_ms: int) -> Any:
        """``read`` for a caller that looked up ``spec`` and checked its arity already."""
        handler = spec.handler
        if handler is None or spec.is_write:
            return ErrorReply(f"ERR '{spec.name}' is not a read the state machine runs")
        if not 0 <= db < self.databases:
            return errors.DB_OUT_OF_RANGE
        return handler(self, argv, self._dbs[db], now_ms)

    def expired_keys(self, now_ms: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` (db, key) whose expiry passed at ``now_ms``, from the expiry index.

        Databases are visited round-robin across calls so a busy db does not starve others.
        """
        found: list[tuple[int, bytes]] = []
        n = self.databases
        start = self._expire_rr
        self._expire_rr = (start + 1) % n
        bound = I64.pack(now_ms)  # expired: when < now_ms
        for k in range(n):
            if len(found) >= limit:
                break
            db = self._dbs[(start + k) % n]
            prefix = db.expires
            for rkey, _ in self._backend.iterate(prefix, prefix + bound):
                found.append((db.index, rkey[len(prefix) + 8 :]))
                if len(found) >= limit:
                    break
        return found

    def collect_garbage(self, limit: int = 1000) -> bool:
        """Delete up to ``limit`` unreachable records; True if garbage is left.

        Unreachable: keyspaces of flushed databases and members of deleted collections. Not
        replicated and not observable: run it on any node whenever it is idle (between apply
        batches, never during one).
        """
        if self._in_apply:
            raise RuntimeError("collect_garbage during apply")
        changes: dict[bytes, bytes | None] = {}
        budget = limit
        for dead_key, _ in self._backend.iterate(
            layout.META_DEAD, layout.prefix_end(layout.META_DEAD)
        ):
            phys_key = dead_key[len(layout.META_DEAD) :]
            finished = True
            for prefix in (DATA + phys_key, EXPIRES + phys_key):
                is_data = prefix[0] == DATA[0]
                for rkey, value in self._backend.iterate(prefix, layout.prefix_end(prefix)):
                    if budget <= 0:
                        finished = False
                        break
                    changes[rkey] = None
                    budget -= 1
                    if is_data and value[0] & 0x7F != layout.T_STRING:
                        changes[GARBAGE + self._collection_version(value)] = b""
                if not finished:
                    break
            if not finished:
                self._backend.write(changes, self._backend.applied_index)
                return True
            changes[dead_key] = None
            changes[layout.META_COUNT + phys_key] = None
        queued = any(k[:1] == GARBAGE for k in changes)
        for gkey, _ in self._backend.iterate(GARBAGE, layout.prefix_end(GARBAGE)):
            prefix = MEMBERS + gkey[1:]
            finished = True
            for rkey, _ in self._backend.iterate(prefix, layout.prefix_end(prefix)):
                if budget <= 0:
                    finished = False
                    break
                changes[rkey] = None
                budget -= 1
            if not finished:
                self._backend.write(changes, self._backend.applied_index)
                return True
            changes[gkey] = None
        if changes:
            self._backend.write(changes, self._backend.applied_index)
        return queued

    # -- execution ----------------------------------------------------------------------------

    def _execute(self, db: int, argv: list[bytes], stamp: int) -> Any:
        if db == ERROR_DB:
            return errors.message_reply(argv[0])
        handler = APPLIERS.get(argv[0])
        if handler is None:
            # Only a payload from another version could name a command we do not run.
            log.error("log entry names an unknown command %r; skipped", argv[0][:64])
            return ErrorReply("ERR unknown command in log entry")
        return handler(self, argv, self._dbs[db], stamp)

    def _execute_transaction(self, commands: list[tuple[int, list[bytes]]], stamp: int) -> Any:
        """All of a transaction's commands, or none when a watched key changed (nil)."""
        first = 0
        for db, argv in commands:
            if argv[0] != b"#watch":
                break
            if self.fingerprint(db, argv[1], stamp) != argv[2]:
                return NULL_ARRAY
            first += 1
        return [self._execute(db, argv, stamp) for db, argv in commands[first:]]

    def _flush_counts(self) -> None:
        for phys in self._dirty_counts:
            self._overlay[layout.META_COUNT + layout.phys_bytes(phys)] = U64.pack(
                self._counts[phys]
            )
        self._dirty_counts.clear()

    @staticmethod
    def _collection_version(record: bytes) -> bytes:
        start = 9 if record[0] & EXPIRE_FLAG else 1
        return record[start : start + 8]

    # -- primitives for handlers ----------------------------------------------------------------

    def db(self, index: int) -> Db:
        return self._dbs[index]

    def get_raw(self, rkey: bytes) -> bytes | None:
        """A record by its full backend key, through the batch overlay."""
        value = self._overlay.get(rkey, _MISSING)
        if value is _MISSING:
            return self._backend_get(rkey)
        return value  # type: ignore[return-value]

    def lookup_read(self, db: Db, key: bytes, now_ms: int) -> bytes | None:
        """The key's record, or None if absent or expired at ``now_ms``."""
        rkey = db.data + key
        rec = self._overlay.get(rkey, _MISSING) if self._in_apply else _MISSING
        if rec is _MISSING:
            rec = self._backend_get(rkey)
        if rec is None:
            return None
        if rec[0] & EXPIRE_FLAG and now_ms > _unpack_expire(rec, 1)[0]:  # type: ignore[index, arg-type]
            return None
        return rec  # type: ignore[return-value]

    def lookup_write(self, db: Db, key: bytes, stamp: int) -> bytes | None:
        """Like ``lookup_read`` at the entry's stamp, deleting the key if it has expired."""
        rkey = db.data + key
        rec = self._overlay.get(rkey, _MISSING)
        if rec is _MISSING:
            rec = self._backend_get(rkey)
        if rec is None:
            return None
        if rec[0] & EXPIRE_FLAG and stamp > _unpack_expire(rec, 1)[0]:  # type: ignore[index, arg-type]
            self.delete(db, key, rec)  # type: ignore[arg-type]
            return None
        return rec  # type: ignore[return-value]

    def put(self, db: Db, key: bytes, record: bytes, old: bytes | None) -> None:
        """Store ``record`` for ``key``; ``old`` is its current record (None: a new key)."""
        overlay = self._overlay
        overlay[db.data + key] = record
        old_exp = 0
        if old is None:
            self._add_count(db.phys, 1)
        else:
            if old[0] & EXPIRE_FLAG:
                old_exp = _unpack_expire(old, 1)[0]
            if old[0] & 0x7F != layout.T_STRING:
                self._drop_members(old, record)
        new_exp = _unpack_expire(record, 1)[0] if record[0] & EXPIRE_FLAG else 0
        if old_exp != new_exp:
            if old_exp:
                overlay[db.expires + I64.pack(old_exp) + key] = None
            if new_exp:
                overlay[db.expires + I64.pack(new_exp) + key] = b""

    def list_written(self, db: Db, key: bytes, record: bytes) -> None:
        """``record`` was just stored at ``key`` by a command that moves any type (RENAME,
        COPY, MOVE): note it in ``list_writes`` if it is a list."""
        if self.list_writes is not None and record[0] & 0x7F == layout.T_LIST:
            self.list_writes.add((db.index, key))

    def delete(self, db: Db, key: bytes, old: bytes, *, keep_members: bool = False) -> None:
        """Remove ``key`` whose current record is ``old``.

        ``keep_members``: the record moves elsewhere (RENAME, MOVE), so a collection's members
        stay alive.
        """
        overlay = self._overlay
        overlay[db.data + key] = None
        if old[0] & EXPIRE_FLAG:
            overlay[db.expires + old[1:9] + key] = None
        self._add_count(db.phys, -1)
        if not keep_members and old[0] & 0x7F != layout.T_STRING:
            self._drop_members(old, None)

    def _drop_members(self, old: bytes, new: bytes | None) -> None:
        version = self._collection_version(old)
        if (
            new is not None
            and new[0] & 0x7F != layout.T_STRING
            and self._collection_version(new) == version
        ):
            return  # the same collection, rewritten in place
        self._overlay[GARBAGE + version] = b""

    def _add_count(self, phys: int, delta: int) -> None:
        counts = self._counts
        count = counts.get(phys)
        if count is None:
            raw = self.get_raw(layout.META_COUNT + layout.phys_bytes(phys))
            count = U64.unpack(raw)[0] if raw else 0
        counts[phys] = count + delta
        self._dirty_counts.add(phys)

    def key_count(self, db: Db) -> int:
        """Keys stored in ``db`` (DBSIZE), expired-but-not-deleted ones included."""
        count = self._counts.get(db.phys)
        if count is None:
            raw = self.get_raw(layout.META_COUNT + db.phys_key)
            count = U64.unpack(raw)[0] if raw else 0
            if not self._in_apply:
                self._counts[db.phys] = count
        return count

    def new_version(self) -> bytes:
        """A fresh collection version (8 bytes), unique across the store."""
        self._version += 1
        packed = U64.pack(self._version)
        self._overlay[layout.META_VERSION] = packed
        return packed

    def put_raw(self, rkey: bytes, value: bytes | None) -> None:
        """Write (None: delete) one record by its full backend key, in the batch overlay.

        For a collection's member records; key records go through ``put``/``delete``.
        """
        if not self._in_apply:
            raise RuntimeError("put_raw outside apply")
        self._overlay[rkey] = value

    def iterate_raw(
        self, lo: bytes, hi: bytes | None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """(backend key, value) with lo <= key < hi (hi None: no bound), in key order
        (descending if ``reverse``), the batch overlay merged in: reads inside a batch or a
        transaction see its earlier writes, deleted records included.
        """
        items = self._backend.iterate(lo, hi, reverse=reverse)
        if not self._overlay:
            yield from items
            return
        pending = sorted(
            ((k, v) for k, v in self._overlay.items() if k >= lo and (hi is None or k < hi)),
            reverse=reverse,
        )
        if not pending:
            yield from items
            return
        i = 0
        n = len(pending)
        for rkey, rec in items:
            while i < n and (pending[i][0] > rkey if reverse else pending[i][0] < rkey):
                k, v = pending[i]
                i += 1
                if v is not None:
                    yield k, v
            if i < n and pending[i][0] == rkey:
                v = pending[i][1]
                i += 1
                if v is not None:
                    yield rkey, v
                continue
            yield rkey, rec
        for k, v in pending[i:]:
            if v is not None:
                yield k, v

    def iterate_keys(
        self, db: Db, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, record) of ``db`` with start <= key < stop in key order, expired included."""
        lo = db.data + start
        hi = db.data_end if stop is None else db.data + stop
        cut = len(db.data)
        for rkey, rec in self.iterate_raw(lo, hi):
            yield rkey[cut:], rec

    def iterate_keys_reverse(self, db: Db) -> Iterator[tuple[bytes, bytes]]:
        """(key, record) of ``db`` in descending key order, expired included."""
        cut = len(db.data)
        for rkey, rec in self.iterate_raw(db.data, db.data_end, reverse=True):
            yield rkey[cut:], rec

    # -- databases ------------------------------------------------------------------------------

    def _store_dbmap(self) -> None:
        raw = U32.pack(self._next_phys) + b"".join(U32.pack(db.phys) for db in self._dbs)
        self._overlay[layout.META_DBMAP] = raw

    def flush_db(self, index: int) -> None:
        """Point logical db ``index`` at a fresh, empty keyspace; the old one becomes garbage."""
        old = self._dbs[index]
        self._overlay[layout.META_DEAD + old.phys_key] = b""
        self._overlay[layout.META_COUNT + old.phys_key] = None
        self._counts.pop(old.phys, None)
        self._dirty_counts.discard(old.phys)
        fresh = Db(index, self._next_phys)
        self._next_phys += 1
        self._dbs[index] = fresh
        self._counts[fresh.phys] = 0
        self._store_dbmap()

    def swap_dbs(self, a: int, b: int) -> None:
        if a == b:
            return
        da, dbb = self._dbs[a], self._dbs[b]
        self._dbs[a] = Db(a, dbb.phys)
        self._dbs[b] = Db(b, da.phys)
        self._store_dbmap()
        if self.list_writes is not None:
            self.list_writes.update(((a, None), (b, None)))

    # -- SCAN cursors (local, not replicated) -----------------------------------------------------

    def cursor_position(self, cursor: int, db: Db) -> bytes:
        """The key to resume after for ``cursor`` (b"" = from the start).

        An unknown cursor (evicted, from before a restart, or from another node) restarts the
        scan: keys may repeat but none present throughout is missed.
        """
        if cursor == 0:
            return b""
        entry = self._scan_cursors.get(cursor)
        if entry is None:
            return b""
        self._scan_cursors.move_to_end(cursor)
        return entry[1] + b"\x00"  # the smallest key after the last one returned

    def new_cursor(self, db: Db, last_key: bytes) -> int:
        cursor = self._next_cursor
        self._next_cursor = cursor + 1 if cursor < (1 << 63) else 1
        self._scan_cursors[cursor] = (db.index, last_key)
        if len(self._scan_cursors) > self._max_scan_cursors:
            self._scan_cursors.popitem(last=False)
        return cursor

    # -- introspection for tests and tools --------------------------------------------------------

    def db_mapping(self) -> list[int]:
        """Physical keyspace id of each logical db."""
        return [db.phys for db in self._dbs[: self.databases]]

    def spec(self, name: bytes) -> CommandSpec | None:
        return lookup(name)
