"""Deployment files: the Dockerfile's command line really starts a node with the container's
paths (a temp dir stands in for /data and /etc/respkv), docker-compose.yml and its configs
load, and the systemd unit verifies. No Docker engine is needed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from respkv_proc import free_port

from respkv.config import load, parse_address

REPO = Path(__file__).resolve().parent.parent


def dockerfile() -> dict[str, list[str]]:
    """Instruction -> its argument texts, continuation lines joined (final stage only)."""
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    stages = text.split("\nFROM ")
    out: dict[str, list[str]] = {"FROM": [stages[-1].split("\n", 1)[0]]}
    for line in stages[-1].splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def exec_form(text: str) -> list[str]:
    assert text.startswith("["), f"use the exec form: {text}"
    return [part.strip().strip('"') for part in text.strip("[]").split(",")]


def test_dockerfile_basics() -> None:
    d = dockerfile()
    assert d["FROM"][0].startswith("python:3.11-slim")
    assert d["USER"] == ["respkv"]
    assert exec_form(d["VOLUME"][0]) == ["/data"]
    exposed = {p for line in d["EXPOSE"] for p in line.split()}
    assert {"6379", "9081", "9121"} <= exposed
    assert "respkv" in d["HEALTHCHECK"][0] and '"health"' in d["HEALTHCHECK"][0]
    assert "RESPKV_CONFIG=/etc/respkv/respkv.toml" in d["ENV"][0]
    assert "config/docker/ /etc/respkv/" in d["COPY"][-1]


def test_the_dockerfile_command_starts_a_node(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD, with the image's ENV and config files; /data and /etc/respkv mapped
    to temp dirs, and the ports moved to free ones (the machine is shared)."""
    d = dockerfile()
    argv = exec_form(d["ENTRYPOINT"][0]) + exec_form(d["CMD"][0])
    assert argv[0] == "respkv"
    env_line = shlex.split(d["ENV"][0])
    image_env = dict(item.split("=", 1) for item in env_line)
    etc, data = tmp_path / "etc", tmp_path / "data"
    shutil.copytree(REPO / "config" / "docker", etc)
    port, peer, metrics = free_port(), free_port(), free_port()
    config_file = Path(image_env["RESPKV_CONFIG"].replace("/etc/respkv", str(etc)))
    text = config_file.read_text().replace('"/data"', f'"{data}"')
    text = text.replace("port = 6379", f"port = {port}").replace("port = 9121", f"port = {metrics}")
    config_file.write_text(text.replace("0.0.0.0:9081", f"127.0.0.1:{peer}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESPKV_")}
    env.update(image_env, RESPKV_CONFIG=str(config_file), PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "respkv.server.cli", *argv[1:]]
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=tmp_path)
    try:
        health = [sys.executable, "-m", "respkv.server.cli", "health"]
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(health, env=env, capture_output=True, text=True, cwd=tmp_path)
            if result.returncode == 0:
                break
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, result.stderr + log.read_text()
            time.sleep(0.3)
        assert (data / "node1").is_dir()  # the data lives in the volume
        assert '"msg": "ready to accept connections on 0.0.0.0:' in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_compose_cluster_configs_load() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert sorted(services) == ["respkv1", "respkv2", "respkv3"]
    configs = {}
    for name, service in services.items():
        assert service["build"] == "." and service["stop_grace_period"] == "30s"
        path = service["environment"]["RESPKV_CONFIG"]
        mounts = {}
        for volume in service["volumes"]:
            host, inside = volume.split(":")[:2]
            mounts[inside] = host
        source = mounts[path]
        assert any(v.endswith(":/data") for v in service["volumes"])
        config = load(REPO / source, env={})
        configs[name] = (config, service)
    lists = {c.cluster.initial_cluster for c, _ in configs.values()}
    assert len(lists) == 1  # identical initial_cluster everywhere
    members = {m.id: m for m in lists.pop()}
    for name, (config, service) in configs.items():
        me = members[config.cluster.node_id]
        assert name == service["hostname"] == parse_address(me.address)[0]
        assert parse_address(config.cluster.listen_address)[1] == parse_address(me.address)[1]
        assert f"{name}:{config.server.port}" == me.client_address
        assert config.cluster.db_root_dir == "/data" and config.server.bind == "0.0.0.0"
        published = {p.split(":")[0] for p in service["ports"]}
        assert {str(config.server.port), str(config.metrics.port)} <= published
    assert sorted(c.cluster.node_id for c, _ in configs.values()) == [1, 2, 3]
    # The seed docs' peer ports.
    assert sorted(parse_address(m.address)[1] for m in members.values()) == [9081, 9082, 9083]


def test_systemd_unit(tmp_path: Path) -> None:
    text = (REPO / "deploy" / "respkv.service").read_text()
    options = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert options["ProtectSystem"] == "strict"
    assert options["ReadWritePaths"] == "/var/lib/respkv"
    assert options["NoNewPrivileges"] == options["PrivateTmp"] == options["ProtectHome"] == "yes"
    assert options["CapabilityBoundingSet"] == ""
    assert options["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert options["Restart"] == "on-failure" and int(options["LimitNOFILE"]) >= 65536
    # Leadership handover (5 s) plus draining forwards (3 s) must fit in the stop timeout.
    assert int(options["TimeoutStopSec"]) >= 10
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "respkv.service"
    unit.write_text(text.replace("/usr/local/bin/respkv", sys.executable))
    result = subprocess.run([binary, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "respkv.service" not in result.stderr, result.stderr
