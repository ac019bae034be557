"""ACL users, pure: Redis 7.0's rules, the permission check, and the replicated records.

A user is built by applying rules in order (``User.apply``), as ``ACL SETUSER`` does. Users are
replicated: ``ACL SETUSER name rules...`` becomes the log entry ``#aclsetuser name rules...``
(passwords already hashed by ``hash_passwords``, so no clear password enters the log), and
``ACL DELUSER`` becomes ``#acldeluser names...``. Applying an entry stores each user as one
record ``\\x00acl<name>`` -> its canonical description (``User.describe``, the ``ACL LIST``
line without ``user <name>``), so users travel with snapshots and never show in KEYS or SCAN.

Commands are allowed as a set of names ("get", "config|get"), computed eagerly from the rules,
so the check is two set lookups; key patterns are checked against the key positions of the
command table (first key, last key, step).

The command rules are not kept: like Redis 7.0 (``ACLDescribeSelectorCommandRules``),
``describe_commands`` regenerates them from the allowed set: ``+@all`` or ``-@all``, then
categories chosen greedily (the one leaving the fewest commands to fix, in ACL CAT order on a
tie), then single commands. Redis lists the single commands in the order of its command hash
table, which is seeded at random per process; respkv lists them in command-table order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from respkv.resp.replies import OK, ErrorReply

from .commands import APPLIERS, CommandSpec, all_commands, lookup
from .glob import stringmatch

if TYPE_CHECKING:
    from .statemachine import Db, StateMachine

RECORD_PREFIX = b"\x00acl"

#: Redis 7.0.15's categories, in ACL CAT order.
CATEGORIES = (
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
)


class AclError(ValueError):
    """A rule that cannot be applied; the message is Redis's reason."""


def _every_spec() -> Iterable[CommandSpec]:
    for spec in all_commands():
        yield spec
        yield from spec.subcommands


def _names_in(category: str) -> set[str]:
    if category == "all":
        return {spec.name for spec in _every_spec()}
    tag = "@" + category
    found = set()
    for spec in all_commands():
        if tag in spec.acl_categories:
            found.add(spec.name)
            found.update(sub.name for sub in spec.subcommands)
        else:
            found.update(sub.name for sub in spec.subcommands if tag in sub.acl_categories)
    return found


def commands_in_category(category: str) -> list[str] | None:
    """ACL CAT <category>: the command names (None: no such category)."""
    if category.lower() not in CATEGORIES:
        return None
    return sorted(_names_in(category.lower()))


def password_hash(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _valid_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def hash_passwords(rules: Sequence[bytes]) -> list[bytes]:
    """The rules with ``>clear`` as ``#hash`` and ``<clear`` as ``!hash``: what the log holds."""
    out = []
    for rule in rules:
        if rule[:1] == b">":
            out.append(b"#" + password_hash(rule[1:]).encode())
        elif rule[:1] == b"<":
            out.append(b"!" + password_hash(rule[1:]).encode())
        else:
            out.append(rule)
    return out


@dataclass(slots=True)
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: list[str] = field(default_factory=list)  # SHA-256 hex, in order of addition
    allowed: set[str] = field(default_factory=set)  # command names, "container|sub" included
    # +@all was the last of +@all/-@all: describe() starts from +@all (Redis: "can execute
    # future commands").
    all_commands_base: bool = False
    all_keys: bool = False
    key_patterns: list[bytes] = field(default_factory=list)
    channel_rules: list[str] = field(default_factory=lambda: ["resetchannels"])  # not enforced
    payload_flag: str = ""  # "sanitize-payload" / "skip-sanitize-payload" (shown, no effect)

    @property
    def unrestricted(self) -> bool:
        """Every command on every key: the permission check can be skipped."""
        return self.all_keys and self.allowed >= _ALL

    # --- rules -----------------------------------------------------------------------------

    def apply(self, rule: bytes) -> None:
        """One ACL SETUSER rule; AclError says why it cannot apply (nothing changed then)."""
        text = rule.decode(errors="replace")
        lower = text.lower()
        if lower == "on":
            self.enabled = True
        elif lower == "off":
            self.enabled = False
        elif lower == "nopass":
            self.nopass = True
            self.passwords.clear()
        elif lower == "resetpass":
            self.nopass = False
            self.passwords.clear()
        elif text[:1] in (">", "<"):
            self.apply(hash_passwords([rule])[0])
        elif text[:1] in ("#", "!"):
            digest = text[1:]
            if not _valid_hash(digest):
                raise AclError(
                    "The password hash must be exactly 64 characters and contain only "
                    "lowercase hexadecimal characters"
                )
            if text[0] == "#":
                if digest not in self.passwords:
                    self.passwords.append(digest)
                self.nopass = False
            else:
                if digest not in self.passwords:
                    raise AclError(
                        "The password you are trying to remove from the user does not exist"
                    )
                self.passwords.remove(digest)
        elif lower in ("allkeys", "~*"):
            self.all_keys = True
            self.key_patterns = []
        elif lower == "resetkeys":
            self.all_keys = False
            self.key_patterns = []
        elif text[:1] == "~":
            if self.all_keys:
                raise AclError(
                    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid "
                    "and does not have any effect. Try 'resetkeys' to start with an empty list "
                    "of patterns"
                )
            self.key_patterns.append(rule[1:])
        elif lower in ("allchannels", "&*"):
            self.channel_rules = ["&*"]
        elif lower == "resetchannels":
            self.channel_rules = ["resetchannels"]
        elif text[:1] == "&":
            if self.channel_rules == ["&*"]:
                raise AclError(
                    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not "
                    "valid and does not have any effect. Try 'resetchannels' to start with an "
                    "empty list of channels"
                )
            self.channel_rules.append(text)
        elif lower in ("allcommands", "+@all"):
            self.allowed = set(_ALL)
            self.all_commands_base = True
        elif lower in ("nocommands", "-@all"):
            self.allowed = set()
            self.all_commands_base = False
        elif lower in ("sanitize-payload", "skip-sanitize-payload"):
            self.payload_flag = lower
        elif lower == "reset":
            fresh = User(self.name)
            for name in User.__slots__:
                setattr(self, name, getattr(fresh, name))
            self.payload_flag = "sanitize-payload"
        elif text[:1] in ("+", "-") and len(text) > 1:
            self._command_rule(text[0] == "+", lower[1:])
        else:
            raise AclError("Syntax error")

    def _command_rule(self, add: bool, what: str) -> None:
        if what.startswith("@"):
            if what[1:] not in CATEGORIES:
                raise AclError("Unknown command or category name in ACL")
            names = _names_in(what[1:])
        elif "|" not in what:
            spec = lookup(what.encode())
            if spec is None:
                raise AclError("Unknown command or category name in ACL")
            names = {spec.name, *(s.name for s in spec.subcommands)}
        else:  # as Redis: the part after the last "|" is a subcommand or a first argument
            container, _, sub = what.rpartition("|")
            spec = lookup(container.partition("|")[0].encode())
            subcommands = {s.name for s in spec.subcommands} if spec is not None else set()
            if spec is None or ("|" in container and container not in subcommands):
                raise AclError("Unknown command or category name in ACL")
            if "|" in container:
                raise AclError("Allowing first-arg of a subcommand is not supported")
            if not sub:
                raise AclError("Syntax error")
            # A subcommand must exist; a first argument may only be added, never removed.
            if (subcommands or not add) and what not in subcommands:
                raise AclError("Unknown command or category name in ACL")
            # A first argument of a command already allowed whole adds nothing.
            names = set() if what not in subcommands and container in self.allowed else {what}
        if "|" not in what:
            # As Redis: a rule on whole commands resets their first-argument rules (get|x).
            self.allowed = {
                a for a in self.allowed if "|" not in a or a.partition("|")[0] not in names
            } | (self.allowed & names)
        if add:
            self.allowed |= names
        else:
            self.allowed -= names

    def describe(self) -> str:
        """The ACL LIST line after ``user <name>``; applying it to a fresh user rebuilds this."""
        parts = ["on" if self.enabled else "off"]
        if self.nopass:
            parts.append("nopass")
        if self.payload_flag:
            parts.append(self.payload_flag)
        parts += ["#" + p for p in self.passwords]
        if self.all_keys:
            parts.append("~*")
        else:
            parts += ["~" + p.decode(errors="replace") for p in self.key_patterns]
        parts += self.channel_rules
        parts.append(self.describe_commands())
        return " ".join(parts)

    def describe_commands(self) -> str:
        """The command rules that rebuild ``allowed``, as Redis 7.0 generates them."""
        additive = not self.all_commands_base
        rules = ["-@all" if additive else "+@all"]
        fake = set() if additive else set(_ALL)  # what the rules so far allow
        remaining = set(self.allowed)  # the user's set, with each chosen category undone
        chosen: set[str] = set()
        while True:
            best, fewest_to_fix, most_covered = "", 1 << 62, 0
            for category in CATEGORIES:
                if category in chosen:
                    continue
                counted = _COUNTED[category]
                on = len(counted & remaining)
                off = len(counted) - on
                to_fix, covered = (off, on) if additive else (on, off)
                if covered > to_fix and (
                    to_fix < fewest_to_fix or (to_fix == fewest_to_fix and covered > most_covered)
                ):
                    best, fewest_to_fix, most_covered = category, to_fix, covered
            if not best:
                break
            chosen.add(best)
            names = _names_in(best)
            if additive:
                fake |= names
                remaining -= names
            else:
                fake -= names
                remaining |= names
            rules.append(("+@" if additive else "-@") + best)
        allowed = self.allowed
        first_args = []
        for spec in all_commands():
            name = spec.name
            if (name in allowed) != (name in fake):
                rules.append(("+" if name in allowed else "-") + name)
                family = {name, *(sub.name for sub in spec.subcommands)}
                if name in allowed:
                    fake |= family
                else:
                    fake -= family
            for sub in spec.subcommands:
                if (sub.name in allowed) != (sub.name in fake):
                    rules.append(("+" if sub.name in allowed else "-") + sub.name)
                    (fake.add if sub.name in allowed else fake.discard)(sub.name)
            if not spec.subcommands and name not in allowed:
                first_args += [f"+{a}" for a in sorted(allowed) if a.startswith(name + "|")]
        return " ".join(rules + first_args)

    def keys_text(self) -> str:
        if self.all_keys:
            return "~*"
        return " ".join("~" + p.decode(errors="replace") for p in self.key_patterns)

    # --- checks ----------------------------------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        return self.nopass or password_hash(password) in self.passwords

    def denied(self, spec: CommandSpec, argv: Sequence[bytes]) -> str | None:
        """None if this user may run ``argv``; else the NOPERM error message."""
        found = self.check(spec, argv)
        return None if found is None else denial_message(*found)

    def check(self, spec: CommandSpec, argv: Sequence[bytes]) -> tuple[str, bytes] | None:
        """None if this user may run ``argv``; else why not, as ACL LOG says it: ("command",
        the command's name) or ("key", the first key refused)."""
        name = spec.name
        if spec.subcommands and len(argv) > 1:
            sub = f"{name}|{argv[1].decode(errors='replace').lower()}"
            if sub in self.allowed or name in self.allowed:
                name = sub if sub in _ALL else name
            else:
                return "command", (sub if sub in _ALL else name).encode()
        elif name not in self.allowed:
            return "command", name.encode()
        if not self.all_keys:
            patterns = self.key_patterns
            for position in spec.key_indexes(argv):
                key = argv[position]
                if not any(stringmatch(p, key) for p in patterns):
                    return "key", key
        return None


def denial_message(reason: str, what: bytes) -> str:
    """Redis's NOPERM error for a ``User.check`` refusal."""
    if reason == "command":
        return f"NOPERM this user has no permissions to run the '{what.decode()}' command"
    return "NOPERM this user has no permissions to access one of the keys used as arguments"


_ALL: frozenset[str] = frozenset(_names_in("all"))


def _counted_in(category: str) -> frozenset[str]:
    """What Redis counts as a category's commands when describing: the commands tagged with it
    and the subcommands tagged with it (adding the category also adds every subcommand of a
    tagged command)."""
    tag = "@" + category
    found = set()
    for spec in all_commands():
        if tag in spec.acl_categories:
            found.add(spec.name)
        found.update(sub.name for sub in spec.subcommands if tag in sub.acl_categories)
    return frozenset(found)


_COUNTED = {category: _counted_in(category) for category in CATEGORIES}


def user_from_record(name: str, description: bytes) -> User:
    user = User(name)
    for rule in description.split():
        user.apply(rule)
    return user


def build_user(existing: User | None, name: str, rules: Sequence[bytes]) -> User:
    """``existing`` (or a new user) with ``rules`` applied; AclError for the first bad one,
    with Redis's message."""
    user = user_from_record(name, existing.describe().encode()) if existing else User(name)
    for rule in rules:
        try:
            user.apply(rule)
        except AclError as e:
            raise AclError(
                f"Error in ACL SETUSER modifier '{rule.decode(errors='replace')}': {e}"
            ) from None
    return user


def default_user(password: str = "") -> User:
    """The ``default`` user while no ``ACL SETUSER default`` was replicated: Redis's default
    (on, nopass, every command and key), with ``requirepass`` as its password if set."""
    user = User("default", enabled=True, nopass=not password, all_keys=True)
    user.allowed = set(_ALL)
    user.all_commands_base = True
    user.channel_rules = ["&*"]
    if password:
        user.passwords = [password_hash(password.encode())]
    return user


# --- the replicated records (applied by the state machine) --------------------------------


def _stored_user(sm: StateMachine, name: str) -> User | None:
    description = sm.acl_records.get(name)
    if description is not None:
        return user_from_record(name, description)
    return default_user() if name == "default" else None


def apply_setuser(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """#aclsetuser name rules... (passwords hashed)."""
    name = argv[1].decode(errors="replace")
    try:
        user = build_user(_stored_user(sm, name), name, argv[2:])
    except AclError as e:
        return ErrorReply(f"ERR {e}")
    description = user.describe().encode()
    sm.put_raw(RECORD_PREFIX + argv[1], description)
    sm.acl_records[name] = description
    sm.on_acl_change()
    return OK


def apply_deluser(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """#acldeluser names...: how many existed."""
    removed = 0
    for raw in argv[1:]:
        name = raw.decode(errors="replace")
        if name != "default" and name in sm.acl_records:
            del sm.acl_records[name]
            sm.put_raw(RECORD_PREFIX + raw, None)
            removed += 1
    if removed:
        sm.on_acl_change()
    return removed


APPLIERS[b"#aclsetuser"] = apply_setuser
APPLIERS[b"#acldeluser"] = apply_deluser
