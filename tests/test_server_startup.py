"""Start-up and shutdown as an operator sees them: help, config errors, logs, SIGTERM, restart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests._server_util import FAST_RAFT, RawConn, start_node, wait_until
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


def test_help_exits_0() -> None:
    commands = [[sys.executable, "-m", "respkv.server.cli", "--help"]]
    if shutil.which("respkv"):  # the installed console script, when there is one
        commands.append(["respkv", "--help"])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: respkv" in result.stdout and "--config" in result.stdout


def test_bad_config_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    """(test_config.py checks an unknown option; here a wrong type, and that it is ONE line.)"""
    path = tmp_path / "bad.toml"
    path.write_text('[raft]\nheartbeat_interval_ms = "fast"\n')
    result = subprocess.run(
        [sys.executable, "-m", "respkv.server.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "heartbeat_interval_ms" in lines[0]
    assert result.stdout == ""


def test_logs_sigterm_and_restart_keep_data(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    try:
        log = node.log()
        assert "Leader elected: node 1 (term" in log
        assert "ready to accept connections" in log
        client = node.client()
        client.set("kept", "yes")
        client.set("kept-ttl", "yes", ex=1000)
        node.client(db=7).set("in7", "seven")
        client.close()
        assert node.stop() == 0
        assert "shut down cleanly" in node.log()
        assert "Traceback" not in node.log()
        node.start()
        wait_until(
            lambda: "ready to accept connections" in node.log().split("shut down cleanly")[-1]
        )
        client = node.client()
        assert client.get("kept") == b"yes"
        assert 900 < client.ttl("kept-ttl") <= 1000
        assert node.client(db=7).get("in7") == b"seven"
        client.close()
        assert node.stop() == 0
    finally:
        node.kill()


def test_data_dir_of_another_node_is_refused(tmp_path: Path) -> None:
    first = start_node(tmp_path / "one")
    first.client().set("k", "v")
    assert first.stop() == 0
    # Node 2's data dir holds node 1's store.
    data = tmp_path / "one" / "data"
    shutil.copytree(data / "node1", tmp_path / "two-data" / "node2")
    second = RespkvProcess(tmp_path, node_id=2, raft_extra=FAST_RAFT)
    second.config_path.write_text(
        second.config_path.read_text().replace(str(tmp_path / "data"), str(tmp_path / "two-data"))
    )
    second.start(wait=False)
    assert second.proc is not None
    code = second.proc.wait(60)
    log = second.log()
    assert code != 0, log
    assert "belongs to node 1, not node 2" in log
    assert "Traceback" not in log
    with pytest.raises(OSError):
        RawConn(second.port, timeout=1)


@pytest.mark.integration
def test_port_0_advertises_the_port_it_got(tmp_path: Path) -> None:
    node = RespkvProcess(tmp_path)
    text = node.config_path.read_text()
    node.config_path.write_text(text.replace(f"port = {node.port}\n", "port = 0\n"))
    node.start(wait=False)
    try:
        found: list[str] = []

        def ready() -> bool:
            found[:] = re.findall(r"ready to accept connections on 127\.0\.0\.1:(\d+)", node.log())
            return bool(found)

        wait_until(ready, timeout=20)
        port = int(found[0])
        assert port != 0
        client = redis.Redis(port=port, socket_timeout=10)
        (start, end, master) = client.execute_command("CLUSTER", "SLOTS")[0][:3]
        assert (start, end) == (0, 16383)
        assert master[:2] == [b"127.0.0.1", port]
        client.close()
    finally:
        node.kill()


@pytest.mark.integration
def test_shutdown_command_stops_the_node_cleanly(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    try:
        node.client().set("kept", "yes")
        cli = subprocess.run(
            ["redis-cli", "-p", str(node.port), "SHUTDOWN", "NOSAVE"],
            capture_output=True,
            timeout=30,
        )
        assert cli.stdout == b""  # no reply: the connection just closes, as with redis-server
        assert node.proc is not None and node.proc.wait(30) == 0
        assert "SHUTDOWN from client" in node.log() and "shut down cleanly" in node.log()
        node.start()
        assert node.client().get("kept") == b"yes"
    finally:
        node.kill()
