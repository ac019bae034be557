"""Configuration: defaults, the seed-doc layout, overrides, and clear errors (exit code 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from respkv.config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    config = load(None, env={})
    assert (config.server.bind, config.server.port) == ("127.0.0.1", 6379)
    assert config.single_node and config.data_dir == Path("data/node1")
    assert config.raft.fsync and config.raft.read_consistency == "linearizable"
    # Followers serve every client themselves unless configured like Redis Cluster replicas.
    assert (config.cluster.follower_writes, config.cluster.follower_reads) == ("forward", "serve")


@pytest.mark.parametrize("name", ["single-node", "node1", "node2", "node3", "n1", "n2", "n3"])
def test_shipped_configs_load(name: str) -> None:
    path = ROOT / "config" / f"{name}.toml"
    config = load(path, env={})
    assert config.cluster.node_id >= 1


def test_seed_doc_roles_and_statuses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[cluster]
node_id = 2
listen_address = "0.0.0.0:9082"
initial_cluster = [
{ id = 1, address = "0.0.0.0:9081", role = 2, status = 2 },
{ id = 2, address = "0.0.0.0:9082", role = "learner", status = "promotable" },
]
db_root_dir = "./db"
""",
    )
    config = load(path, env={})
    me = config.me()
    assert me is not None and me.learner and me.status == "promotable"
    assert config.cluster.initial_cluster[0].role == "leader"
    assert config.data_dir == Path("db/node2")


def test_env_then_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 7000\n")
    assert load(path, env={}).server.port == 7000
    assert load(path, env={"RESPKV_SERVER_PORT": "7001"}).server.port == 7001
    config = load(path, env={"RESPKV_SERVER_PORT": "7001"}, overrides={"server.port": 7002})
    assert config.server.port == 7002
    assert load(None, env={"RESPKV_RAFT_FSYNC": "false"}).raft.fsync is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nportt = 1\n", "unknown option [server] portt"),
        ("[sever]\nport = 1\n", "unknown section [sever]"),
        ('[server]\nport = "x"\n', "[server] port must be an integer"),
        ("[server]\nport = 70000\n", "port must be between 0 and 65535"),
        ("[raft]\nfsync = 1\n", "[raft] fsync must be a bool"),
        (
            '[cluster]\nnode_id = 4\ninitial_cluster = [{ id = 1, address = "h:1" }]\n',
            "does not list this node",
        ),
        (
            '[cluster]\ninitial_cluster = [{ id = 1, address = "h:1" }, { id = 1, address = "h:2" }]\n',
            "node id 1 is listed twice",
        ),
        ('[cluster]\ninitial_cluster = [{ id = 1, address = "nohost" }]\n', "host:port"),
        (
            '[cluster]\ninitial_cluster = [{ id = 1, address = "h:1", role = 9 }]\n',
            "role must be one of",
        ),
        (
            '[cluster]\ninitial_cluster = [{ id = 1, address = "h:1", colour = 1 }]\n',
            "unknown field 'colour'",
        ),
        ('[raft]\nread_consistency = "lease"\ncheck_quorum = false\n', "needs check_quorum"),
        ('[cluster]\nfollower_reads = "redirect"\n', 'follower_reads must be "serve" or "moved"'),
        ("[raft]\nelection_timeout_ms = 100\nheartbeat_interval_ms = 100\n", "at least twice"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert message in str(info.value) and str(path) in str(info.value)


def test_bad_environment_variable() -> None:
    with pytest.raises(ConfigError, match="RESPKV_SERVER_PORTT names no option"):
        load(None, env={"RESPKV_SERVER_PORTT": "1"})


def test_cli_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nportt = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "respkv.server.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "portt" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_help_explains_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "respkv.server.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in ("--config", "--port", "--data-dir", "--node-id"):
        assert flag in result.stdout
