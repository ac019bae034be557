"""ACL users on this node: the replicated users (``respkv.kv.acl``) plus ``requirepass``, the
ACL command, and how connections follow user changes.

Denied commands and keys and failed authentications go to ``AclLog`` (``ACL LOG``), kept per
node as in Redis (it is not replicated).

A connection carries ``restricted``: None for a user with every command on every key (the
dispatcher then checks nothing: one attribute test per command), else its ``User``, whose
``denied`` is asked before each command.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from respkv.kv import acl as kv_acl
from respkv.kv.acl import AclError, User
from respkv.resp.replies import OK, ErrorReply, SimpleString

from .commands import (
    Deferred,
    client_info_line,
    command,
    parse_int,
    subcommand_arity,
    unknown_subcommand,
)
from .transactions import submit

if TYPE_CHECKING:
    from .app import Server
    from .connection import ClientConnection

log = logging.getLogger(__name__)


#: As Redis: entries equal but for the time merge within this many seconds.
ACL_LOG_GROUPING_SECONDS = 60.0
ACL_LOG_SCAN = 10  # as Redis: how many recent entries a new one may merge with


@dataclass(slots=True)
class AclLogEntry:
    count: int
    reason: str  # "command", "key", "auth"
    context: str  # "toplevel", "multi"
    object: bytes  # the command, the key, or "AUTH"
    username: bytes
    created: float  # time.monotonic() of the latest occurrence
    client_info: bytes  # CLIENT LIST line of the latest occurrence

    def reply(self, now: float) -> dict[bytes, Any]:
        return {
            b"count": self.count,
            b"reason": self.reason.encode(),
            b"context": self.context.encode(),
            b"object": self.object,
            b"username": self.username,
            b"age-seconds": round(now - self.created, 3),
            b"client-info": self.client_info,
        }


class AclLog:
    """Redis 7.0's ACL LOG: newest first, at most ``max_len`` (``acllog-max-len``) entries; a
    refusal equal to one of the 10 newest entries (reason, context, object, user) within 60 s
    bumps its count and moves it to the front instead of adding one."""

    def __init__(self, max_len: int = 128) -> None:
        self.max_len = max_len
        self.entries: deque[AclLogEntry] = deque()

    def set_max_len(self, entries: int) -> None:
        self.max_len = entries
        while len(self.entries) > entries:
            self.entries.pop()

    def add(
        self,
        server: Server,
        conn: ClientConnection,
        reason: str,
        what: bytes,
        username: str | bytes | None = None,
    ) -> None:
        now = time.monotonic()
        name = username if username is not None else conn.user
        user = name.encode() if isinstance(name, str) else name
        context = "multi" if conn.multi is not None else "toplevel"
        info = client_info_line(server, conn)
        for position, entry in enumerate(self.entries):
            if position >= ACL_LOG_SCAN:
                break
            if (
                entry.reason == reason
                and entry.context == context
                and entry.object == what
                and entry.username == user
                and now - entry.created < ACL_LOG_GROUPING_SECONDS
            ):
                del self.entries[position]
                entry.count += 1
                entry.created = now
                entry.client_info = info
                self.entries.appendleft(entry)
                return
        self.entries.appendleft(AclLogEntry(1, reason, context, what, user, now, info))
        while len(self.entries) > self.max_len:
            self.entries.pop()


class AclTable:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.users: dict[str, User] = {"default": kv_acl.default_user(server.requirepass)}
        self.log = AclLog()

    def refresh(self) -> None:
        """Rebuild the users from the state machine's records and ``requirepass``; apply the
        change to every connection (a deleted user's connections are closed, as in Redis)."""
        sm = self.server.state_machine
        records = sm.acl_records if sm is not None else {}
        users: dict[str, User] = {}
        for name, description in records.items():
            try:
                users[name] = kv_acl.user_from_record(name, description)
            except AclError as e:  # only a record from another version could do this
                log.error("ACL user %r cannot be loaded: %s", name, e)
        if "default" not in users:
            users["default"] = kv_acl.default_user(self.server.requirepass)
        self.users = users
        for conn in list(self.server.clients.values()):
            user = users.get(conn.user)
            if user is None:
                if conn.authenticated:
                    conn.kill()
                continue
            conn.restricted = None if user.unrestricted else user

    @property
    def default_nopass(self) -> bool:
        """New connections start authenticated as ``default``."""
        user = self.users["default"]
        return user.enabled and user.nopass

    def authenticate(
        self, name: bytes, password: bytes, conn: ClientConnection | None = None
    ) -> User | None:
        """The user if ``password`` is one of its passwords; a failure of ``conn`` is logged
        (ACL LOG)."""
        user = self.users.get(name.decode(errors="replace"))
        if user is None or not user.check_password(password):
            if conn is not None:
                self.log.add(self.server, conn, "auth", b"AUTH", name)
            return None
        return user

    def refuse(self, conn: ClientConnection, reason: tuple[str, bytes]) -> ErrorReply:
        """``conn``'s command was refused for ``reason`` (``User.check``): log it, and the
        error to reply."""
        self.log.add(self.server, conn, reason[0], reason[1])
        return ErrorReply(kv_acl.denial_message(*reason))

    def login(self, conn: ClientConnection, user: User) -> None:
        conn.authenticated = True
        conn.parser.auth_required = False
        conn.user = user.name
        conn.restricted = None if user.unrestricted else user

    def start(self, conn: ClientConnection) -> None:
        """A new (or RESET) connection: the default user, authenticated if it needs none."""
        user = self.users["default"]
        conn.user = "default"
        conn.authenticated = user.enabled and user.nopass
        conn.parser.auth_required = not conn.authenticated
        conn.restricted = None if user.unrestricted else user


_ACL_HELP = [
    b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CAT [<category>]",
    b"DELUSER <username> [<username> ...]",
    b"GETUSER <username>",
    b"LIST",
    b"LOG [<count> | RESET]",
    b"SETUSER <username> <attribute> [<attribute> ...]",
    b"USERS",
    b"WHOAMI",
]


@command("acl")
def acl_command(server: Server, conn: ClientConnection, argv: list[bytes]) -> Any:
    table = server.acl
    sub = argv[1].lower()
    argc = len(argv)
    if sub == b"whoami" and argc == 2:
        return conn.user.encode()
    if sub == b"users" and argc == 2:
        return [name.encode() for name in sorted(table.users)]
    if sub == b"list" and argc == 2:
        return [
            f"user {name} {table.users[name].describe()}".encode() for name in sorted(table.users)
        ]
    if sub == b"getuser" and argc == 3:
        user = table.users.get(argv[2].decode(errors="replace"))
        if user is None:
            return None
        flags = [b"on" if user.enabled else b"off"] + ([b"nopass"] if user.nopass else [])
        flags += [user.payload_flag.encode()] if user.payload_flag else []
        return {
            b"flags": flags,
            b"passwords": [p.encode() for p in user.passwords],
            b"commands": user.describe_commands().encode(),
            b"keys": user.keys_text().encode(),
            b"channels": b""
            if user.channel_rules == ["resetchannels"]
            else " ".join(user.channel_rules).encode(),
            b"selectors": [],
        }
    if sub == b"cat" and argc in (2, 3):
        if argc == 2:
            return [c.encode() for c in kv_acl.CATEGORIES]
        names = kv_acl.commands_in_category(argv[2].decode(errors="replace"))
        if names is None:
            return ErrorReply(f"ERR Unknown category '{argv[2].decode(errors='replace')}'")
        return [n.encode() for n in names]
    if sub == b"setuser" and argc >= 3:
        name = argv[2].decode(errors="replace")
        try:  # validated here, so that only valid changes enter the log
            kv_acl.build_user(table.users.get(name), name, argv[3:])
        except AclError as e:
            return ErrorReply(f"ERR {e}")
        change = [b"#aclsetuser", argv[2], *kv_acl.hash_passwords(argv[3:])]
        return _replicate(server, change)
    if sub == b"deluser" and argc >= 3:
        if any(raw == b"default" for raw in argv[2:]):
            return ErrorReply("ERR The 'default' user cannot be removed")
        return _replicate(server, [b"#acldeluser", *argv[2:]])
    if sub == b"log":
        return _acl_log(table.log, argv)
    if sub == b"help" and argc == 2:
        return [SimpleString(line) for line in _ACL_HELP]
    if sub in (b"whoami", b"users", b"list", b"getuser", b"cat", b"setuser", b"deluser"):
        return subcommand_arity(argv)
    return unknown_subcommand(argv)


def _acl_log(acl_log: AclLog, argv: list[bytes]) -> Any:
    """ACL LOG [count | RESET]: this node's refusals, newest first (10 by default)."""
    count = 10
    if len(argv) == 3:
        if argv[2].lower() == b"reset":
            acl_log.entries.clear()
            return OK
        number = parse_int(argv[2])
        if number is None:
            return ErrorReply("ERR value is not an integer or out of range")
        count = max(number, 0)
    elif len(argv) > 3:
        return ErrorReply(
            f"ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode(errors='replace')}'. Try ACL HELP."
        )
    now = time.monotonic()
    return [entry.reply(now) for entry in list(acl_log.entries)[:count]]


def _replicate(server: Server, change: list[bytes]) -> Deferred:
    """An ACL change through the log: every node applies it (here, or via the leader)."""
    sm = server.state_machine
    assert sm is not None

    def build(now_ms: int) -> bytes:
        payload = sm.prepare_acl(change, now_ms)
        assert isinstance(payload, bytes)
        return payload

    return Deferred(lambda done: submit(server, build, change, done))


__all__ = ["OK", "AclTable", "acl_command"]
