"""The command table: what every command is (arity, flags, keys, ACL categories) and who runs it.

The metadata of each command is Redis 7.0.15's own (``_redis_commands``, checked against a live
server by ``tests/test_kv_command_table.py``), so COMMAND, COMMAND INFO and COMMAND GETKEYS can
answer exactly what redis-cli and cluster-aware clients expect.

A ``CommandSpec`` with ``handler is None`` is handled by the server layer (PING, HELLO, SELECT,
CLIENT, CONFIG...): the table only describes it. The others run in the state machine:

* writes (``is_write``): the server calls ``StateMachine.prepare_write`` (validation, relative
  TTLs made absolute, see ``Prepare``), proposes the payload, and ``StateMachine.apply`` runs the
  handler when the entry is committed;
* reads: the server calls ``StateMachine.read``, which runs the handler on the local state.

Handlers share one signature, ``handler(sm, argv, db, now_ms)``: for a write ``now_ms`` is the
entry's stamp, for a read the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from respkv.resp.replies import ErrorReply, SetReply, SimpleString

from . import errors, hashes, keyspace, lists, sets, strings, zsets
from ._redis_commands import REDIS_COMMANDS

if TYPE_CHECKING:
    from .statemachine import Db, StateMachine

#: handler(sm, argv, db, now_ms) -> reply value
Handler = Callable[["StateMachine", list[bytes], "Db", int], Any]
#: prepare(sm, argv, db_index, now_ms, check_state) -> canonical argv (argv[0] ignored) or error
Prepare = Callable[["StateMachine", list[bytes], int, int, bool], "list[bytes] | ErrorReply"]


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key specification of COMMAND INFO (Redis 7 key specs)."""

    flags: tuple[str, ...]
    begin_search: tuple[str, tuple[tuple[str, Any], ...]]
    find_keys: tuple[str, tuple[tuple[str, Any], ...]]
    notes: str | None = None

    def reply(self) -> dict[bytes, object]:
        out: dict[bytes, object] = {}
        if self.notes is not None:
            out[b"notes"] = self.notes.encode()
        out[b"flags"] = SetReply([SimpleString(f.encode()) for f in self.flags])
        for label, (kind, spec) in (
            (b"begin_search", self.begin_search),
            (b"find_keys", self.find_keys),
        ):
            out[label] = {
                b"type": kind.encode(),
                b"spec": {k.encode(): _spec_value(v) for k, v in spec},
            }
        return out


def _spec_value(value: Any) -> object:
    return value.encode() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True, eq=False)
class CommandSpec:
    name: str  # lowercase; "container|sub" for subcommands
    arity: int  # Redis convention: -n means at least n (the name counts)
    flags: tuple[str, ...]
    first_key: int
    last_key: int
    step: int
    acl_categories: tuple[str, ...]
    tips: tuple[str, ...] = ()
    key_specs: tuple[KeySpec, ...] = ()
    subcommands: tuple[CommandSpec, ...] = ()
    handler: Handler | None = None
    prepare: Prepare | None = None
    name_bytes: bytes = field(init=False)
    is_write: bool = field(init=False)
    #: A blocking command the server parks (``BLOCKING_KEYS``); its handler is the
    #: non-blocking form.
    blocking: bool = field(init=False)
    arity_error: ErrorReply = field(init=False)
    movable_keys: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name_bytes", self.name.encode())
        object.__setattr__(self, "is_write", "write" in self.flags)
        object.__setattr__(
            self,
            "blocking",
            self.handler is not None
            and "blocking" in self.flags
            and self.name_bytes in BLOCKING_KEYS,
        )
        object.__setattr__(self, "arity_error", errors.wrong_arity(self.name))
        object.__setattr__(self, "movable_keys", "movablekeys" in self.flags)

    @property
    def server_side(self) -> bool:
        """True when the server layer, not the state machine, executes this command."""
        return self.handler is None

    def arity_ok(self, argc: int) -> bool:
        arity = self.arity
        return argc == arity if arity >= 0 else argc >= -arity

    def key_positions(self, argc: int) -> list[int]:
        """argv indexes of the keys by first/last/step (COMMAND GETKEYS for simple commands)."""
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return list(range(self.first_key, min(last, argc - 1) + 1, self.step or 1))

    def key_indexes(self, argv: Sequence[bytes]) -> list[int]:
        """argv indexes of the keys, movable ones included (ZUNIONSTORE's numkeys, XREAD's
        STREAMS): the key specs walked as Redis's getKeysUsingKeySpecs does."""
        if not self.movable_keys:
            return self.key_positions(len(argv))
        argc = len(argv)
        out: list[int] = []
        for ks in self.key_specs:
            first = _begin_search(ks, argv)
            if first <= 0:
                continue
            kind, params = ks.find_keys
            p = dict(params)
            if kind == "range":
                step, lastkey, limit = p["keystep"], p["lastkey"], p["limit"]
                if lastkey >= 0:
                    last = first + lastkey
                elif not limit:
                    last = argc + lastkey
                else:
                    last = first + ((argc - first) // limit + lastkey)
            elif kind == "keynum":
                step = p["keystep"]
                if p["keynumidx"] >= argc - first:
                    continue
                count = _keynum(argv[first + p["keynumidx"]])
                if count is None:
                    continue
                first += p["firstkey"]
                last = first + (count - 1) * step
            else:
                continue
            i = first
            while i <= last and step > 0:
                if i >= argc:
                    break
                out.append(i)
                i += step
        return out

    def info(self) -> list[object]:
        """This command's COMMAND INFO entry as reply values (RESP2 arrays, RESP3 maps/sets)."""
        return [
            self.name.encode(),
            self.arity,
            SetReply([SimpleString(f.encode()) for f in self.flags]),
            self.first_key,
            self.last_key,
            self.step,
            SetReply([SimpleString(c.encode()) for c in self.acl_categories]),
            SetReply([t.encode() for t in self.tips]),
            SetReply([k.reply() for k in self.key_specs]),  # Redis sends these as RESP3 sets
            SetReply([s.info() for s in self.subcommands]),
        ]


def _begin_search(ks: KeySpec, argv: Sequence[bytes]) -> int:
    """Where a key spec's keys start in argv (0: not found, or a search we cannot do)."""
    kind, params = ks.begin_search
    p = dict(params)
    if kind == "index":
        return int(p["index"])
    if kind != "keyword":
        return 0
    keyword = str(p["keyword"]).encode().lower()
    argc, start = len(argv), int(p["startfrom"])
    indexes = range(start, argc) if start > 0 else range(argc + start, 0, -1)
    for i in indexes:
        if i < 1 or i >= argc:
            break
        if argv[i].lower() == keyword:
            return i + 1
    return 0


def _keynum(arg: bytes) -> int | None:
    try:
        count = int(arg)
    except ValueError:
        return None
    return count if count > 0 else None


def _spec_from_row(row: tuple[Any, ...]) -> CommandSpec:
    name, arity, flags, first, last, step, acl, tips, key_specs, subs = row
    impl = _IMPLEMENTATIONS.get(name)
    return CommandSpec(
        name=name,
        arity=arity,
        flags=tuple(flags),
        first_key=first,
        last_key=last,
        step=step,
        acl_categories=tuple(acl),
        tips=tuple(tips),
        key_specs=tuple(
            KeySpec(
                flags=tuple(k["flags"]),
                begin_search=k["begin_search"],
                find_keys=k["find_keys"],
                notes=k.get("notes"),
            )
            for k in key_specs
        ),
        subcommands=tuple(_spec_from_row(s) for s in subs),
        handler=impl[0] if impl else None,
        prepare=impl[1] if impl else None,
    )


_IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    **strings.IMPLEMENTATIONS,
    **keyspace.IMPLEMENTATIONS,
    **hashes.IMPLEMENTATIONS,
    **sets.IMPLEMENTATIONS,
    **zsets.IMPLEMENTATIONS,
    **lists.IMPLEMENTATIONS,
}

#: Blocking commands the server parks: name -> the keys (from argv) whose data wakes them.
BLOCKING_KEYS: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {**lists.BLOCKING_KEYS}

#: respkv's own commands (not Redis's), described the way Redis describes its own. The server
#: layer runs them: ``RESPKV BACKUP`` (respkv/server/backup.py).
OWN_COMMANDS: tuple[tuple[Any, ...], ...] = (
    ("respkv", -2, ("admin", "noscript"), 0, 0, 0, ("@admin", "@slow", "@dangerous"), (), (), ()),
)

#: Every command respkv knows, by lowercase name.
COMMANDS: dict[str, CommandSpec] = {
    row[0]: _spec_from_row(row) for row in (*REDIS_COMMANDS, *OWN_COMMANDS)
}

# Lookup by the bytes a client sends: lowercase and uppercase spellings are direct hits.
_BY_BYTES: dict[bytes, CommandSpec] = {}
for _spec in COMMANDS.values():
    _BY_BYTES[_spec.name_bytes] = _spec
    _BY_BYTES[_spec.name_bytes.upper()] = _spec

#: Internal commands: only ever built by the state machine itself, never looked up from a
#: client's argv (a client's "#expire" is an unknown command).
INTERNAL: dict[bytes, Handler] = dict(keyspace.INTERNAL)


def _publish(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> int:
    """#publish channel message: delivered by the node (``sm.on_publish``), no keyspace change."""
    return sm.on_publish(argv[1], argv[2])


INTERNAL[b"#publish"] = _publish

#: What ``apply`` dispatches on: canonical (lowercase) names as payloads carry them.
APPLIERS: dict[bytes, Handler] = {
    **{s.name_bytes: s.handler for s in COMMANDS.values() if s.handler is not None},
    **INTERNAL,
}


def lookup(name: bytes) -> CommandSpec | None:
    """The spec for a command name as sent by a client (any letter case), or None."""
    return _BY_BYTES.get(name) or _BY_BYTES.get(name.lower())


def is_write(name: bytes | str) -> bool:
    """True if the named command changes the keyspace (goes through the log)."""
    spec = lookup(name.encode() if isinstance(name, str) else name)
    return spec is not None and spec.is_write


def all_commands() -> Iterator[CommandSpec]:
    return iter(COMMANDS.values())
