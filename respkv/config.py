"""Configuration: TOML file, then environment, then command-line flags -> frozen dataclasses.

Every problem is reported as a ConfigError naming the file and the field, so the CLI can print
one clear line and exit with status 2. See docs/configuration.md for every option.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):  # noqa: UP036 - tomli stays the documented fallback
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The seed docs' numeric codes (NodeRole and NodeStatus) and readable names for them.
ROLES = {0: "follower", 1: "candidate", 2: "leader", 3: "learner"}
STATUSES = {0: "promotable", 1: "read-only", 2: "active"}


class ConfigError(ValueError):
    """Bad configuration: the message names the source and the field."""


@dataclass(frozen=True, slots=True)
class MemberConfig:
    id: int
    address: str  # the peer (Raft) address
    role: str = "follower"  # for another member only a hint: any non-learner role means voter
    status: str = "active"
    client_address: str = ""  # RESP address, for MOVED and CLUSTER SLOTS (learned if empty)

    @property
    def learner(self) -> bool:
        return self.role == "learner"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    node_id: int = 1
    listen_address: str = "127.0.0.1:9081"
    initial_cluster: tuple[MemberConfig, ...] = ()
    db_root_dir: str = "./data"
    cluster_secret: str = ""
    # "forward": a follower forwards writes to the leader; "moved": it answers -MOVED.
    follower_writes: str = "forward"
    # "serve": a follower answers reads (linearizable); "moved": it answers -MOVED to
    # connections that did not send READONLY, as a Redis Cluster replica does.
    follower_reads: str = "serve"
    auto_promote: bool = True
    # Peer address of any member of a running cluster: a new node joins it as a learner.
    join: str = ""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    bind: str = "127.0.0.1"
    port: int = 6379
    requirepass: str = ""
    databases: int = 16
    maxclients: int = 10000
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_query_buffer_limit: int = 1024 * 1024 * 1024
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line
    expiry_cycle_ms: int = 100  # how often the leader looks for expired keys to delete
    # Where BGSAVE writes backups ("": <db_root_dir>/backups, beside the node data dirs).
    backup_dir: str = ""


@dataclass(frozen=True, slots=True)
class RaftSettings:
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000  # randomized in [this, 2 * this)
    pre_vote: bool = True
    check_quorum: bool = True
    read_consistency: str = "linearizable"  # or "lease"
    fsync: bool = True  # False: faster, but an acknowledged write can be lost on power failure
    snapshot_threshold: int = 10000  # applied entries between log compactions
    snapshot_tail: int = 1000  # entries kept after compaction for slow followers
    max_log_hold: int = 500_000  # entries kept beyond that for a live follower catching up
    max_inflight_messages: int = 256
    max_message_bytes: int = 1024 * 1024
    snapshot_chunk_bytes: int = 1024 * 1024
    snapshot_rate_mb_s: int = 0  # snapshot streaming from this node, MB/s (0: no limit)
    max_apply_bytes: int = 64 << 20  # committed entries applied in one batch on the event loop
    request_timeout_ms: int = 5000  # a write or read that gets no answer fails after this


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    port: int = 0  # Prometheus metrics over HTTP on this port; 0: no metrics endpoint
    bind: str = ""  # empty: the same address as [server] bind


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: str = ""  # this node's certificate chain (PEM), for both ports
    key_file: str = ""  # its private key (PEM, unencrypted)
    ca_file: str = ""  # CA bundle that client certificates and peer certificates must chain to
    port: int = -1  # the TLS client port, beside the plain [server] port (-1: none, 0: any)
    client_auth: str = "no"  # TLS clients must present a certificate: "no", "optional", "yes"
    peer: bool = False  # mutual TLS on the peer channel (cert_file, key_file and ca_file)

    @property
    def client_port_enabled(self) -> bool:
        return self.port >= 0


@dataclass(frozen=True, slots=True)
class Config:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    raft: RaftSettings = field(default_factory=RaftSettings)
    source: str = "<defaults>"
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.cluster.db_root_dir) / f"node{self.cluster.node_id}"

    def join_target(self) -> str:
        """Where a new node asks to join, if it joins: ``join``, or, when this node's own
        initial_cluster entry is a learner (the seed docs' layout), the first other member."""
        if self.cluster.join:
            return self.cluster.join
        me = self.me()
        if me is not None and me.learner:
            for m in self.cluster.initial_cluster:
                if m.id != me.id and not m.learner:
                    return m.address
            for m in self.cluster.initial_cluster:
                if m.id != me.id:
                    return m.address
        return ""

    @property
    def backup_dir(self) -> Path:
        """Where BGSAVE puts backups: ``[server] backup_dir`` or ``<db_root_dir>/backups``."""
        return Path(self.server.backup_dir or Path(self.cluster.db_root_dir) / "backups")

    @property
    def single_node(self) -> bool:
        return not self.cluster.initial_cluster or [m.id for m in self.cluster.initial_cluster] == [
            self.cluster.node_id
        ]

    def me(self) -> MemberConfig | None:
        for m in self.cluster.initial_cluster:
            if m.id == self.cluster.node_id:
                return m
        return None


_SECTIONS: dict[str, type] = {
    "cluster": ClusterConfig,
    "server": ServerConfig,
    "raft": RaftSettings,
    "metrics": MetricsConfig,
    "tls": TlsConfig,
}


def load(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults, then the TOML file, then RESPKV_<SECTION>_<FIELD> variables, then overrides
    given as {"section.field": value} (the command-line flags)."""
    raw: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
        for section, values in document.items():
            if section not in _SECTIONS:
                raise ConfigError(f"{source}: unknown section [{section}]")
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section}] must be a table")
            raw[section].update(values)
    env = os.environ if env is None else env
    for name, value in env.items():
        if not name.startswith("RESPKV_") or name == "RESPKV_CONFIG":
            continue
        section, _, key = name[len("RESPKV_") :].lower().partition("_")
        if section in _SECTIONS and key:
            raw[section][key] = _from_env(section, key, value, name)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        raw[section][key] = value
    return _build(raw, source)


def _from_env(section: str, key: str, value: str, name: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(_SECTIONS[section])}
    if key not in fields:
        raise ConfigError(f"environment: {name} names no option [{section}] {key}")
    kind = fields[key].type
    if kind == "bool":
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment: {name} must be true or false, not {value!r}")
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"environment: {name} must be an integer, not {value!r}") from None
    return value


def _build(raw: dict[str, dict[str, Any]], source: str) -> Config:
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values = dict(raw[name])
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ConfigError(f"{source}: unknown option [{name}] {key}")
        if name == "cluster" and "initial_cluster" in values:
            values["initial_cluster"] = _members(values["initial_cluster"], source)
        for key, value in values.items():
            _check_type(source, name, key, fields[key].type, value)
        sections[name] = cls(**values)
    config = Config(
        sections["cluster"],
        sections["server"],
        sections["raft"],
        source,
        metrics=sections["metrics"],
        tls=sections["tls"],
    )
    _validate(config)
    return config


def _check_type(source: str, section: str, key: str, kind: Any, value: Any) -> None:
    expected = {"int": int, "str": str, "bool": bool}.get(str(kind))
    if expected is None:
        return
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{source}: [{section}] {key} must be an integer, not {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(
            f"{source}: [{section}] {key} must be a {expected.__name__}, not {value!r}"
        )


def _members(items: Any, source: str) -> tuple[MemberConfig, ...]:
    where = f"{source}: [cluster] initial_cluster"
    if not isinstance(items, list):
        raise ConfigError(f"{where} must be a list of {{ id = ..., address = ... }}")
    members = []
    known = {"id", "address", "role", "status", "client_address"}
    for position, item in enumerate(items):
        here = f"{where}[{position}]"
        if not isinstance(item, dict):
            raise ConfigError(f'{here} must be a table like {{ id = 1, address = "host:port" }}')
        unknown = set(item) - known
        if unknown:
            raise ConfigError(f"{here}: unknown field {sorted(unknown)[0]!r}")
        if (
            not isinstance(item.get("id"), int)
            or isinstance(item.get("id"), bool)
            or item["id"] < 1
        ):
            raise ConfigError(f"{here}: id must be an integer >= 1")
        if not isinstance(item.get("address"), str):
            raise ConfigError(f'{here}: address must be a "host:port" string')
        _parse_address(item["address"], f"{here} address")
        role = _code(item.get("role", "follower"), ROLES, f"{here} role")
        status = _code(item.get("status", "active"), STATUSES, f"{here} status")
        client = item.get("client_address", "")
        if not isinstance(client, str):
            raise ConfigError(f'{here}: client_address must be a "host:port" string')
        if client:
            _parse_address(client, f"{here} client_address")
        members.append(MemberConfig(item["id"], item["address"], role, status, client))
    ids = [m.id for m in members]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{where}: node id {duplicates[0]} is listed twice")
    return tuple(members)


def _code(value: Any, names: dict[int, str], where: str) -> str:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be one of {_choices(names)}")
    if isinstance(value, int) and value in names:
        return names[value]
    if isinstance(value, str) and value.lower().replace("_", "-") in names.values():
        return value.lower().replace("_", "-")
    raise ConfigError(f"{where} must be one of {_choices(names)}, not {value!r}")


def _choices(names: dict[int, str]) -> str:
    return ", ".join(f"{code} ({name})" for code, name in names.items())


def _parse_address(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'{where} must be "host:port", not {text!r}')
    return host.strip("[]"), int(port)


def parse_address(text: str) -> tuple[str, int]:
    return _parse_address(text, "address")


def _validate(config: Config) -> None:
    source, c, s, r = config.source, config.cluster, config.server, config.raft
    if c.node_id < 1:
        raise ConfigError(f"{source}: [cluster] node_id must be >= 1")
    _parse_address(c.listen_address, f"{source}: [cluster] listen_address")
    if c.initial_cluster and config.me() is None:
        raise ConfigError(
            f"{source}: [cluster] initial_cluster does not list this node (node_id = {c.node_id})"
        )
    if c.join:
        _parse_address(c.join, f"{source}: [cluster] join")
    if c.follower_writes not in ("forward", "moved"):
        raise ConfigError(f'{source}: [cluster] follower_writes must be "forward" or "moved"')
    if c.follower_reads not in ("serve", "moved"):
        raise ConfigError(f'{source}: [cluster] follower_reads must be "serve" or "moved"')
    if not 0 <= s.port < 65536:
        raise ConfigError(f"{source}: [server] port must be between 0 and 65535")
    if not 1 <= s.databases <= 1024:
        raise ConfigError(f"{source}: [server] databases must be between 1 and 1024")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: [server] log_level must be debug, info, warning or error")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f'{source}: [server] log_format must be "text" or "json"')
    if not 0 <= config.metrics.port < 65536:
        raise ConfigError(f"{source}: [metrics] port must be between 0 (off) and 65535")
    for key in ("maxclients", "proto_max_bulk_len", "client_query_buffer_limit", "expiry_cycle_ms"):
        if getattr(s, key) < 1:
            raise ConfigError(f"{source}: [server] {key} must be >= 1")
    if r.heartbeat_interval_ms < 1:
        raise ConfigError(f"{source}: [raft] heartbeat_interval_ms must be >= 1")
    if r.election_timeout_ms < 2 * r.heartbeat_interval_ms:
        raise ConfigError(
            f"{source}: [raft] election_timeout_ms must be at least twice heartbeat_interval_ms"
        )
    if r.read_consistency not in ("linearizable", "lease"):
        raise ConfigError(f'{source}: [raft] read_consistency must be "linearizable" or "lease"')
    if r.read_consistency == "lease" and not r.check_quorum:
        raise ConfigError(f'{source}: [raft] read_consistency = "lease" needs check_quorum = true')
    for key in (
        "snapshot_threshold",
        "max_inflight_messages",
        "max_message_bytes",
        "snapshot_chunk_bytes",
        "max_apply_bytes",
        "request_timeout_ms",
    ):
        if getattr(r, key) < 1:
            raise ConfigError(f"{source}: [raft] {key} must be >= 1")
    if r.snapshot_rate_mb_s < 0:
        raise ConfigError(f"{source}: [raft] snapshot_rate_mb_s must be >= 0 (0: no limit)")
    for key in ("snapshot_tail", "max_log_hold"):
        if getattr(r, key) < 0:
            raise ConfigError(f"{source}: [raft] {key} must be >= 0")
    _validate_tls(config)


def _validate_tls(config: Config) -> None:
    source, t = config.source, config.tls
    if not -1 <= t.port < 65536:
        raise ConfigError(f"{source}: [tls] port must be between -1 (none) and 65535")
    if t.client_auth not in ("no", "optional", "yes"):
        raise ConfigError(f'{source}: [tls] client_auth must be "no", "optional" or "yes"')
    uses = []
    if t.client_port_enabled:
        uses.append("port")
    if t.peer:
        uses.append("peer")
    if not uses:
        return
    needed = ["cert_file", "key_file"]
    if t.peer or t.client_auth != "no":
        needed.append("ca_file")
    for key in needed:
        path = getattr(t, key)
        if not path:
            raise ConfigError(f"{source}: [tls] {key} is required with [tls] {uses[0]}")
        if not Path(path).is_file():
            raise ConfigError(f"{source}: [tls] {key}: no such file {path!r}")
