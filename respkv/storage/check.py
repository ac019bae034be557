"""``respkv check``: verify a stopped node's data directory, read-only, and say what is wrong.

What is checked:

- the directory is a respkv store (RocksDB with the respkv column families and identity);
- hard state, snapshot meta (with its membership), applied index and active keyspace decode;
- the Raft log: every record decodes, indexes run without a gap from the first to the last,
  the first follows the snapshot index, terms never decrease (and start at or above the
  snapshot term), membership changes decode;
- snapshot index <= applied index <= last log index, commit index <= last log index;
- the keyspace: every key record decodes (known type, whole header), every expiry index entry
  points at a key with that expiry, each database's stored key count matches its records,
  and each hash's and set's size matches its member records.

The store keeps no digest of its own data, so these structural checks are the data check.
A running node holds the RocksDB LOCK: check refuses it instead of reading a moving target.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rocksdict import AccessType, Options, Rdict

from respkv.kv.layout import (
    DATA,
    EXPIRE_FLAG,
    EXPIRES,
    GARBAGE,
    I64,
    MEMBERS,
    META_COUNT,
    META_DBMAP,
    META_DEAD,
    META_VERSION,
    T_HASH,
    T_SET,
    TYPE_NAMES,
    U32,
    U64,
)
from respkv.raft.types import ConfChange, EntryType

from . import codec
from .errors import StorageError
from .keys import (
    CF_KEYSPACE,
    CF_RAFT_LOG,
    CF_RAFT_META,
    FORMAT_VERSION,
    KEYSPACE_CFS,
    META_APPLIED,
    META_HARD_STATE,
    META_IDENTITY,
    META_KEYSPACE_ACTIVE,
    META_SNAPSHOT,
)

_COLLECTION_FIXED = 24  # version, size, changes after the key header


class NodeRunning(StorageError):
    """The data directory is in use by a running node."""


@dataclass(slots=True)
class CheckReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.path),
            "healthy": self.healthy,
            "problems": self.problems,
            **self.facts,
        }


def resolve_data_dir(path: str | os.PathLike[str]) -> Path:
    """A node's data dir, or a ``db_root_dir`` holding exactly one ``node<id>`` data dir."""
    where = Path(path)
    if (where / "CURRENT").exists():
        return where
    if where.is_dir():
        nodes = [p for p in where.glob("node*") if (p / "CURRENT").exists()]
        if len(nodes) == 1:
            return nodes[0]
        if len(nodes) > 1:
            names = ", ".join(sorted(p.name for p in nodes))
            raise StorageError(f"{where} holds several node data dirs ({names}): name one")
    raise StorageError(f"{where} is not a respkv data dir (no RocksDB database in it)")


def check_data_dir(path: str | os.PathLike[str]) -> CheckReport:
    """Check a stopped node's data dir. Raises NodeRunning if a node holds it, StorageError
    if it cannot be read at all; every other problem is listed in the report."""
    where = resolve_data_dir(path)
    lock = _lock_or_refuse(where)
    try:
        report = CheckReport(where)
        families = Rdict.list_cf(str(where))
        missing = [n for n in (CF_RAFT_LOG, CF_RAFT_META) if n not in families]
        if missing:
            raise StorageError(f"{where} is not a respkv store (missing column families {missing})")
        try:
            db = Rdict(
                str(where),
                Options(raw_mode=True),
                column_families={name: Options(raw_mode=True) for name in families},
                access_type=AccessType.read_only(),
            )
        except Exception as e:
            raise StorageError(f"cannot open {where} read-only: {e}") from e
        try:
            _check(db, families, report)
        finally:
            db.close()
        return report
    finally:
        os.close(lock)


def _lock_or_refuse(where: Path) -> int:
    """Hold RocksDB's LOCK file (POSIX lock, as RocksDB takes it) while checking."""
    fd = os.open(where / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise NodeRunning(
            f"data dir {where} is in use (its RocksDB LOCK is held): stop the node first; "
            "check reads only a stopped node's data"
        ) from None
    return fd


def _items(cf: Rdict) -> Iterator[tuple[bytes, bytes]]:
    return cast(Iterator[tuple[bytes, bytes]], cf.items())


def _check(db: Rdict, families: list[str], report: CheckReport) -> None:
    problems = report.problems
    meta = db.get_column_family(CF_RAFT_META)
    raw = meta.get(META_IDENTITY)
    if raw is None:
        problems.append("no identity record: this is not a respkv store (or never started)")
    else:
        try:
            version, node_id, cluster_id = codec.decode_identity(raw)
            report.facts.update(node_id=node_id, cluster_id=cluster_id)
            if version > FORMAT_VERSION:
                problems.append(
                    f"store format version {version} is newer than this respkv ({FORMAT_VERSION})"
                )
        except StorageError as e:
            problems.append(f"the identity record is damaged: {e}")

    hard_state = snapshot = None
    applied = 0
    try:
        raw = meta.get(META_HARD_STATE)
        hard_state = None if raw is None else codec.decode_hard_state(raw)
    except StorageError as e:
        problems.append(f"the hard state (term, vote, commit) is damaged: {e}")
    try:
        raw = meta.get(META_SNAPSHOT)
        snapshot = None if raw is None else codec.decode_snapshot_meta(raw)
    except StorageError as e:
        problems.append(f"the snapshot record (index, term, membership) is damaged: {e}")
    try:
        raw = meta.get(META_APPLIED)
        applied = 0 if raw is None else codec.decode_index(raw)
    except Exception as e:
        problems.append(f"the applied index record is damaged: {e}")
    snapshot_index = snapshot.index if snapshot else 0
    snapshot_term = snapshot.term if snapshot else 0

    first, last = _check_log(
        db.get_column_family(CF_RAFT_LOG), snapshot_index, snapshot_term, report
    )
    last_index = max(last, snapshot_index)
    report.facts.update(
        snapshot_index=snapshot_index,
        log_first_index=first,
        log_last_index=last_index,
        applied_index=applied,
    )
    if snapshot is not None:
        report.facts["members"] = [
            {"id": m.id, "learner": m.learner} for m in snapshot.conf_state.members
        ]
    if applied < snapshot_index:
        problems.append(
            f"the applied index {applied} is below the snapshot index {snapshot_index}: "
            "entries the log no longer holds were never applied"
        )
    if applied > last_index:
        problems.append(
            f"the applied index {applied} is beyond the last log index {last_index}: the "
            "keyspace reflects entries the log does not have"
        )
    if hard_state is not None:
        report.facts.update(term=hard_state.term, commit_index=hard_state.commit)
        if hard_state.commit > last_index:
            problems.append(
                f"the commit index {hard_state.commit} is beyond the last log index {last_index}"
            )
        if hard_state.term < snapshot_term:
            problems.append(
                f"the current term {hard_state.term} is below the snapshot's term {snapshot_term}"
            )

    active = (meta.get(META_KEYSPACE_ACTIVE) or CF_KEYSPACE.encode()).decode(errors="replace")
    if active not in KEYSPACE_CFS:
        problems.append(f"the active keyspace family {active!r} is unknown")
    elif active not in families:
        problems.append(f"the active keyspace family {active!r} is missing")
    else:
        _check_keyspace(db.get_column_family(active), report)


def _check_log(
    cf: Rdict, snapshot_index: int, snapshot_term: int, report: CheckReport
) -> tuple[int, int]:
    """(first, last) index of the stored log, (0, 0) when empty; problems go to the report."""
    problems = report.problems
    first = last = 0
    previous_index = previous_term = 0
    gaps = 0
    for key, value in _items(cf):
        if len(key) != 8:
            problems.append(f"the raft log holds a record with a malformed key {key!r}")
            continue
        index = codec.decode_index(key)
        try:
            entry = codec.decode_entry(key, value)
        except StorageError:
            problems.append(f"log entry {index} is corrupt (its record does not decode)")
            previous_index = index
            last = index
            first = first or index
            continue
        if entry.type is EntryType.CONF_CHANGE:
            try:
                ConfChange.decode(entry.data)
            except (struct.error, ValueError) as e:
                problems.append(f"log entry {index}: its membership change does not decode: {e}")
        if not first:
            first = index
            if index <= snapshot_index:
                problems.append(
                    f"the log still holds entry {index}, at or below the snapshot index "
                    f"{snapshot_index}"
                )
            elif index != snapshot_index + 1:
                problems.append(
                    f"the log starts at entry {index}, but the snapshot ends at "
                    f"{snapshot_index}: entries {snapshot_index + 1}..{index - 1} are missing"
                )
            if entry.term < snapshot_term:
                problems.append(
                    f"log entry {index} has term {entry.term}, below the snapshot's term "
                    f"{snapshot_term}"
                )
        elif index != previous_index + 1:
            gaps += 1
            if gaps <= 20:
                missing = (
                    f"entry {previous_index + 1}"
                    if index == previous_index + 2
                    else f"entries {previous_index + 1}..{index - 1}"
                )
                problems.append(f"the log has a hole: {missing} missing")
        if previous_term and entry.term < previous_term:
            problems.append(
                f"log entry {index} has term {entry.term}, lower than the term {previous_term} "
                "of the entry before it"
            )
        previous_index, previous_term = index, entry.term
        last = index
    if gaps > 20:
        problems.append(f"... {gaps - 20} more holes in the log")
    return first, last


def _check_keyspace(cf: Rdict, report: CheckReport) -> None:
    problems = report.problems
    stored_counts: dict[int, int] = {}
    dead: set[int] = set()
    record_counts: dict[int, int] = {}
    expiries: dict[tuple[int, bytes], int] = {}
    collections: dict[bytes, tuple[int, bytes, int]] = {}  # version -> (phys, key, size)
    member_counts: dict[bytes, int] = {}
    garbage: set[bytes] = set()
    damaged = 0
    expected_expiries: dict[tuple[int, bytes], int] = {}
    keys = 0

    def bad(message: str) -> None:
        nonlocal damaged
        damaged += 1
        if damaged <= 20:
            problems.append(message)

    for rkey, value in _items(cf):
        kind = rkey[:1]
        try:
            if kind == DATA:
                phys = U32.unpack_from(rkey, 1)[0]
                key = rkey[5:]
                keys += 1
                record_counts[phys] = record_counts.get(phys, 0) + 1
                _check_key_record(phys, key, value, expected_expiries, collections, bad)
            elif kind == EXPIRES:
                phys = U32.unpack_from(rkey, 1)[0]
                when = I64.unpack_from(rkey, 5)[0]
                expiries[(phys, rkey[13:])] = when
            elif kind == MEMBERS:
                version = rkey[1:9]
                if len(version) != 8:
                    raise struct.error("short member key")
                member_counts[version] = member_counts.get(version, 0) + 1
            elif kind == GARBAGE:
                garbage.add(rkey[1:9])
            elif rkey.startswith(META_COUNT):
                stored_counts[U32.unpack(rkey[len(META_COUNT) :])[0]] = U64.unpack(value)[0]
            elif rkey.startswith(META_DEAD):
                dead.add(U32.unpack(rkey[len(META_DEAD) :])[0])
            elif rkey == META_DBMAP:
                if len(value) < 4 or len(value) % 4:
                    bad(f"the database map record is damaged ({len(value)} bytes)")
            elif rkey == META_VERSION:
                U64.unpack(value)
            else:
                bad(f"unknown keyspace record {rkey[:40]!r}")
        except struct.error as e:
            bad(f"keyspace record {rkey[:40]!r} does not decode: {e}")

    for phys in sorted(set(stored_counts) | set(record_counts)):
        if phys in dead:
            continue  # being garbage collected
        stored, found = stored_counts.get(phys, 0), record_counts.get(phys, 0)
        if stored != found:
            bad(
                f"keyspace {phys} has {found} key records but its stored key count is "
                f"{stored} (DBSIZE would be wrong)"
            )
    for (phys, key), when in expected_expiries.items():
        if phys not in dead and expiries.get((phys, key)) != when:
            bad(f"key {key[:40]!r} (keyspace {phys}) has an expiry but no expiry index entry")
    for (phys, key), when in expiries.items():
        if phys not in dead and expected_expiries.get((phys, key)) != when:
            bad(
                f"the expiry index names key {key[:40]!r} (keyspace {phys}), which has no such expiry"
            )
    for version, (phys, key, size) in collections.items():
        if phys in dead or version in garbage:
            continue
        found = member_counts.get(version, 0)
        if found != size:
            bad(
                f"key {key[:40]!r} (keyspace {phys}) says it has {size} members, "
                f"{found} member records exist"
            )
    if damaged > 20:
        problems.append(f"... and {damaged - 20} more keyspace problems")
    report.facts["keys"] = keys
    report.facts["key_counts"] = {
        str(phys): n for phys, n in sorted(stored_counts.items()) if phys not in dead
    }


def _check_key_record(
    phys: int,
    key: bytes,
    value: bytes,
    expected_expiries: dict[tuple[int, bytes], int],
    collections: dict[bytes, tuple[int, bytes, int]],
    bad: Any,
) -> None:
    if not value:
        bad(f"key {key[:40]!r} (keyspace {phys}) has an empty record")
        return
    code = value[0] & 0x7F
    if code not in TYPE_NAMES:
        bad(f"key {key[:40]!r} (keyspace {phys}) has an unknown type code {value[0]:#x}")
        return
    start = 1
    if value[0] & EXPIRE_FLAG:
        if len(value) < 9:
            bad(f"key {key[:40]!r} (keyspace {phys}) has a truncated expiry")
            return
        when = I64.unpack_from(value, 1)[0]
        if when <= 0:
            bad(f"key {key[:40]!r} (keyspace {phys}) has an impossible expiry {when}")
        expected_expiries[(phys, key)] = when
        start = 9
    if TYPE_NAMES[code] == b"string":
        return
    if len(value) < start + _COLLECTION_FIXED:
        bad(f"key {key[:40]!r} (keyspace {phys}) has a truncated collection header")
        return
    if code in (T_HASH, T_SET):
        version = value[start : start + 8]
        size = U64.unpack_from(value, start + 8)[0]
        collections[version] = (phys, key, size)
