"""Operating respkv: Prometheus metrics, JSON logs, SLOWLOG, LATENCY, CLIENT LIST, and the
``respkv health`` command, on real processes (shapes compared with Redis 7.0.15)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families
from respkv_proc import Cluster, RespkvProcess, free_port, wait_until

from respkv.kv.commands import lookup
from respkv.server.metrics import Observer
from tests._server_util import FAST_RAFT, RawConn, RealRedis, bare, call, real_redis, start_node

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of http://127.0.0.1:port/metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RespkvProcess, int]]:
    metrics_port = free_port()
    proc = start_node(
        tmp_path_factory.mktemp("ops"),
        extra=f"\n[metrics]\nport = {metrics_port}\n",
        server_extra='log_format = "json"\n',
    )
    try:
        yield proc, metrics_port
    finally:
        proc.kill()


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_count_commands_and_bytes(node: tuple[RespkvProcess, int]) -> None:
    proc, metrics_port = node
    before = scrape(metrics_port)
    sets = ("respkv_commands_total", (("cmd", "set"),))
    r = proc.client()
    for i in range(25):
        r.set(f"m{i}", "v")
    after = scrape(metrics_port)
    assert after[sets] - before.get(sets, 0.0) == 25
    count = ("respkv_command_duration_seconds_count", (("cmd", "set"),))
    inf = ("respkv_command_duration_seconds_bucket", (("cmd", "set"), ("le", "+Inf")))
    assert after[count] == after[inf] == after[sets]
    assert after[("respkv_command_duration_seconds_sum", (("cmd", "set"),))] > 0
    assert (
        after[("respkv_net_input_bytes_total", ())] > before[("respkv_net_input_bytes_total", ())]
    )
    assert after[("respkv_connected_clients", ())] >= 1
    # A single node leads, has applied its writes, and has fsynced them.
    assert after[("respkv_raft_is_leader", ())] == 1
    assert after[("respkv_raft_role", (("role", "leader"),))] == 1
    assert after[("respkv_raft_role", (("role", "follower"),))] == 0
    assert after[("respkv_raft_applied_index", ())] >= 25
    assert after[("respkv_raft_log_last_index", ())] >= after[("respkv_raft_commit_index", ())]
    assert after[("respkv_fsync_duration_seconds_count", ())] >= 1
    assert after[("respkv_node_info", (("node_id", "1"), ("version", "0.1.0")))] == 1


def test_metrics_on_a_three_node_cluster(tmp_path: Path) -> None:
    ports = {i: free_port() for i in (1, 2, 3)}
    extra = {i: f"\n[metrics]\nport = {ports[i]}\n" for i in ports}
    with Cluster(
        tmp_path,
        3,
        cluster_extra=extra,
        raft_extra="heartbeat_interval_ms = 50\nelection_timeout_ms = 500\n",
    ) as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        cluster.client(leader).set("k", "v")
        follower = next(i for i in cluster.ids if i != leader)
        cluster.client(follower).set("k2", "v")  # forwarded to the leader
        cluster.wait_caught_up()
        samples = {i: scrape(ports[i]) for i in cluster.ids}
        terms = {s[("respkv_raft_term", ())] for s in samples.values()}
        assert len(terms) == 1 and terms.pop() >= 1
        for i, s in samples.items():
            assert s[("respkv_raft_is_leader", ())] == (1 if i == leader else 0)
            assert s[("respkv_raft_leader_id", ())] == leader
            role = "leader" if i == leader else "follower"
            assert s[("respkv_raft_role", (("role", role),))] == 1
            assert s[("respkv_raft_voters", ())] == 3
        assert samples[follower][("respkv_forwarded_requests_total", ())] >= 1
        assert samples[leader][("respkv_forwarded_requests_served_total", ())] >= 1
        applied = samples[leader][("respkv_raft_applied_index", ())]
        for other in cluster.ids:
            if other != leader:
                match = ("respkv_raft_follower_match_index", (("member", str(other)),))
                assert samples[leader][match] == applied


# --- JSON logs -------------------------------------------------------------------------------


def test_json_log_lines_parse(node: tuple[RespkvProcess, int]) -> None:
    proc, _ = node
    lines = [line for line in proc.log().splitlines() if line.strip()]
    assert lines
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    for doc in documents:
        assert {"ts", "level", "node", "logger", "msg"} <= set(doc)
        assert doc["node"] == 1
        assert doc["ts"].endswith("Z")
    assert any("Leader elected" in doc["msg"] for doc in documents)
    assert any(doc["level"] == "info" and doc["logger"].startswith("respkv.") for doc in documents)


def test_json_formatter_keeps_extra_fields() -> None:
    import logging

    from respkv.server.logs import JsonFormatter

    record = logging.LogRecord("respkv.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.follower = 3
    doc = json.loads(JsonFormatter(7).format(record))
    assert doc["msg"] == "a b" and doc["level"] == "warning" and doc["node"] == 7
    assert doc["follower"] == 3


# --- SLOWLOG, LATENCY, CLIENT LIST -----------------------------------------------------------


def _slowlog_run(port: int) -> list[list[object]]:
    r = bare(port)
    call(r, "SLOWLOG", "RESET")
    call(r, "CONFIG", "SET", "slowlog-log-slower-than", "0")
    call(r, "CLIENT", "SETNAME", "slowpoke")
    call(r, "SET", "k", "x" * 200)
    call(r, "MSET", *[str(i) for i in range(40)])
    call(r, "GET", "k")
    entries = call(r, "SLOWLOG", "GET", "3")
    assert call(r, "SLOWLOG", "LEN") >= 5
    call(r, "CONFIG", "SET", "slowlog-log-slower-than", "10000")
    return entries


def test_slowlog_entries_have_redis_shape(node: tuple[RespkvProcess, int], real: RealRedis) -> None:
    ours = _slowlog_run(node[0].port)
    theirs = _slowlog_run(real.port)
    assert len(ours) == len(theirs) == 3

    def shape(entries: list[list[object]]) -> list[object]:
        return [
            [type(v).__name__ for v in e[:3]] + [e[3], type(e[4]).__name__, e[5]] for e in entries
        ]

    assert shape(ours) == shape(theirs)
    get, mset, set_ = ours
    assert get[3] == [b"GET", b"k"]
    assert set_[3] == [b"SET", b"k", b"x" * 128 + b"... (72 more bytes)"]
    assert len(mset[3]) == 32 and mset[3][-1] == b"... (10 more arguments)"
    assert get[5] == b"slowpoke" and get[4].startswith(b"127.0.0.1:")  # type: ignore[union-attr]
    assert get[0] > mset[0] > set_[0]  # newest first, increasing ids


def test_slowlog_config_and_errors(node: tuple[RespkvProcess, int], real: RealRedis) -> None:
    for port in (node[0].port, real.port):
        r = bare(port)
        assert call(r, "CONFIG", "GET", "slowlog-*") in (
            [b"slowlog-max-len", b"128", b"slowlog-log-slower-than", b"10000"],
            [b"slowlog-log-slower-than", b"10000", b"slowlog-max-len", b"128"],
        )
        call(r, "CONFIG", "SET", "slowlog-max-len", "2")
        call(r, "CONFIG", "SET", "slowlog-log-slower-than", "0")
        for _ in range(5):
            call(r, "PING")
        assert call(r, "SLOWLOG", "LEN") == 2
        call(r, "CONFIG", "SET", "slowlog-log-slower-than", "-1")
        call(r, "SLOWLOG", "RESET")
        call(r, "PING")
        assert call(r, "SLOWLOG", "LEN") == 0
        with pytest.raises(Exception, match="count should be greater than or equal to -1"):
            call(r, "SLOWLOG", "GET", "-2")
        call(r, "CONFIG", "SET", "slowlog-max-len", "128")
        call(r, "CONFIG", "SET", "slowlog-log-slower-than", "10000")


def test_latency_monitor(node: tuple[RespkvProcess, int]) -> None:
    r = bare(node[0].port)
    assert call(r, "LATENCY", "RESET") >= 0
    assert b"disabled" in call(r, "LATENCY", "DOCTOR")
    call(r, "CONFIG", "SET", "latency-monitor-threshold", "1")
    # A write waits for an fsync: with fsync on it often takes >= 1 ms, but not surely; make
    # sure with many writes, and accept that a very fast disk gives no sample.
    for i in range(200):
        call(r, "SET", f"lat{i}", "v")
    latest = call(r, "LATENCY", "LATEST")
    call(r, "CONFIG", "SET", "latency-monitor-threshold", "0")
    for name, ts, last_ms, max_ms in latest:
        assert name in (b"command", b"fast-command", b"aof-fsync-always")
        assert isinstance(ts, int) and 1 <= last_ms <= max_ms
        history = call(r, "LATENCY", "HISTORY", name)
        assert history and all(len(sample) == 2 for sample in history)
    assert call(r, "LATENCY", "RESET") == len(latest)
    assert call(r, "LATENCY", "LATEST") == []


def _client_list_fields(port: int) -> list[str]:
    r = bare(port)
    call(r, "CLIENT", "SETNAME", "lister")
    line = call(r, "CLIENT", "LIST", "ID", call(r, "CLIENT", "ID")).decode().strip()
    return line.split(" ")


def test_client_list_fields_match_redis(node: tuple[RespkvProcess, int], real: RealRedis) -> None:
    ours = dict(f.split("=", 1) for f in _client_list_fields(node[0].port))
    theirs = dict(f.split("=", 1) for f in _client_list_fields(real.port))
    # Redis 7.0's fields in Redis's order; respkv adds 7.2's lib-name and lib-ver at the end.
    assert list(ours)[: len(theirs)] == list(theirs)
    assert ours["name"] == "lister" and ours["cmd"] == theirs["cmd"] == "client|list"
    assert int(ours["fd"]) > 0 and ours["flags"] == "N" and ours["resp"] == "2"
    assert int(ours["idle"]) == 0 and int(ours["tot-mem"]) > 0
    assert ours["laddr"].endswith(f":{node[0].port}")


# --- respkv health ---------------------------------------------------------------------------


def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "respkv.server.cli", "health", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )


def test_health_exit_codes(node: tuple[RespkvProcess, int], tmp_path: Path) -> None:
    proc, _ = node
    ok = health("--config", str(proc.config_path))
    assert ok.returncode == 0, ok.stderr
    ok = health("--port", str(proc.port))
    assert ok.returncode == 0, ok.stderr
    dead = health("--port", str(free_port()), "--timeout", "2")
    assert dead.returncode == 1
    assert dead.stderr.count("\n") == 1 and "respkv health: 127.0.0.1:" in dead.stderr


def test_health_authenticates(tmp_path: Path) -> None:
    proc = start_node(tmp_path, server_extra='requirepass = "s3cret"\n')
    try:
        assert health("--config", str(proc.config_path)).returncode == 0
        wrong = health("--port", str(proc.port))  # no password: NOAUTH
        assert wrong.returncode == 1 and "NOAUTH" in wrong.stderr
        bad = health("--port", str(proc.port), "--requirepass", "nope")
        assert bad.returncode == 1 and "WRONGPASS" in bad.stderr
    finally:
        proc.kill()


def test_progress_log_every_ten_percent(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from respkv.storage.progress import ProgressLog

    logger = logging.getLogger("respkv.test.progress")
    with caplog.at_level(logging.INFO, logger="respkv.test.progress"):
        progress = ProgressLog(logger, "sending snapshot 7", 1000, interval_s=3600)
        for done in range(0, 1001, 25):
            progress.update(done)
        progress.finish(1000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 11  # 10%, 20%, ... 100%, then done
    assert lines[0].startswith("sending snapshot 7 in progress: 0.0 MB of 0.0 MB (10%)")
    assert "(100%)" in lines[-1] and " done: " in lines[-1] and "MB/s" in lines[-1]


def _pubsub_classification(port: int) -> list[object]:
    admin = bare(port)
    with RawConn(port) as sub, RawConn(port) as psub, RawConn(port) as plain:
        sub.call("SUBSCRIBE", "news")
        psub.call("PSUBSCRIBE", "n*")
        plain.call("PING")
        ids = {name: c.call("CLIENT", "ID") for name, c in [("plain", plain)]}
        listed = call(admin, "CLIENT", "LIST", "TYPE", "pubsub").decode().splitlines()
        normal = call(admin, "CLIENT", "LIST", "TYPE", "normal").decode().splitlines()
        out: list[object] = [
            sorted(dict(f.split("=", 1) for f in line.split(" "))["cmd"] for line in listed),
            {dict(f.split("=", 1) for f in line.split(" "))["flags"] for line in listed},
            f"id={ids['plain']}" in " ".join(normal),
            any("cmd=subscribe" in line for line in normal),
            call(admin, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes", "ID", ids["plain"]),
            call(admin, "CLIENT", "KILL", "TYPE", "pubsub"),
            call(admin, "CLIENT", "LIST", "TYPE", "pubsub"),
        ]
        out.append(sub.read_until_closed(5)[1] and psub.read_until_closed(5)[1])
    return out


def test_client_type_pubsub(node: tuple[RespkvProcess, int], real: RealRedis) -> None:
    ours = _pubsub_classification(node[0].port)
    assert ours == _pubsub_classification(real.port)
    assert ours[:2] == [["psubscribe", "subscribe"], {"P"}]
    assert ours[4:] == [1, 2, b"", True]


# --- a real join by snapshot: metrics and progress lines -----------------------------------------

SNAPSHOT_RAFT = (
    "heartbeat_interval_ms = 50\nelection_timeout_ms = 500\n"
    "snapshot_threshold = 200\nsnapshot_tail = 20\nsnapshot_chunk_bytes = 262144\n"
)
# "<what> in progress: 1.2 MB of 8.4 MB (10%) in 0.1s, 12.3 MB/s" (docs/monitoring.md)
PROGRESS = r"{what} (in progress|done): \d+\.\d MB{total} in \d+\.\ds, \d+\.\d MB/s"
WITH_TOTAL = r" of \d+\.\d MB \((\d+)%\)"


def _lines(text: str, what: str, total: bool) -> list[re.Match[str]]:
    pattern = re.compile(PROGRESS.format(what=what, total=WITH_TOTAL if total else ""))
    return [m for m in map(pattern.search, text.splitlines()) if m is not None]


def test_join_by_snapshot_metrics_and_progress(tmp_path: Path) -> None:
    """A learner joins a node whose log was compacted: it catches up by a snapshot of ~8 MB,
    streamed in 256 KB chunks. Both nodes count the transfer, and both log its progress."""
    ports = {1: free_port(), 2: free_port()}
    with Cluster(
        tmp_path,
        1,
        cluster_extra={1: f"\n[metrics]\nport = {ports[1]}\n"},
        raft_extra=SNAPSHOT_RAFT,
    ) as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        r = cluster.client(leader)
        before = scrape(ports[1])
        value = os.urandom(10_000).hex()  # 20 KB that compress badly
        pipe = r.pipeline(transaction=False)
        for i in range(420):
            pipe.set(f"big{i}", value)
        pipe.execute()
        after = scrape(ports[1])
        fsyncs = ("respkv_fsync_duration_seconds_count", ())
        assert after[fsyncs] > before[fsyncs]
        assert after[("respkv_fsync_duration_seconds_sum", ())] > 0
        assert after[("respkv_raft_leader_changes_total", ())] >= 1
        assert after[("respkv_raft_log_first_index", ())] > 200  # compacted
        assert after[("respkv_snapshot_transfers_total", (("direction", "sent"),))] == 0

        joiner = cluster.add_node(
            2,
            f"127.0.0.1:{cluster.nodes[1].peer_port}",
            extra=f"\n[metrics]\nport = {ports[2]}\n",
        )
        joiner.start()
        wait_until(
            lambda: "installed the leader's snapshot" in joiner.log(), 60, "node 2's snapshot"
        )
        cluster.wait_caught_up()
        sent, received = scrape(ports[1]), scrape(ports[2])
        out, into = (("direction", "sent"),), (("direction", "received"),)
        assert sent[("respkv_snapshot_transfers_total", out)] >= 1
        assert sent[("respkv_snapshot_bytes_total", out)] > 8_000_000
        assert sent[("respkv_snapshot_transfer_duration_seconds_count", out)] >= 1
        assert sent[("respkv_snapshot_transfer_duration_seconds_sum", out)] > 0
        assert received[("respkv_snapshot_transfers_total", into)] >= 1
        assert received[("respkv_snapshot_bytes_total", into)] > 8_000_000
        assert received[("respkv_snapshot_transfer_duration_seconds_count", into)] >= 1
        assert received[("respkv_snapshot_transfers_total", out)] == 0
        assert received[("respkv_raft_leader_changes_total", ())] >= 1
        assert received[("respkv_raft_leader_id", ())] == leader
        match = ("respkv_raft_follower_match_index", (("member", "2"),))
        assert sent[match] == sent[("respkv_raft_applied_index", ())]

        # The leader: every 10% of the file, then done; the learner: the bytes received (the
        # leader does not send the total) and the install, by 10% of the file.
        sending = _lines(cluster.nodes[1].log(), r"sending snapshot \d+", total=True)
        assert len(sending) >= 5 and sending[-1].group(1) == "done"
        percents = [int(m.group(2)) for m in sending]
        assert percents == sorted(percents) and percents[-1] == 100 and percents[0] < 100
        log2 = joiner.log()
        assert _lines(log2, r"receiving snapshot \d+", total=False)[-1].group(1) == "done"
        installing = _lines(log2, r"installing snapshot \d+", total=True)
        assert [m.group(1) for m in installing][-1] == "done" and len(installing) >= 2
        assert int(installing[0].group(2)) < 100


def test_restart_replays_the_log_with_progress(tmp_path: Path) -> None:
    """A node that died after syncing entries and before applying them replays them at start.
    (Each apply batch stores the applied index with its data, so a plain restart has nothing
    to replay: the applied index is set back offline, as a crash in that window leaves it;
    the entries are SETs of distinct keys, so applying them again changes nothing.)"""
    from respkv.storage import Store

    # Small apply batches: the replay takes several, so its progress shows.
    proc = start_node(tmp_path, raft_extra=FAST_RAFT + "max_apply_bytes = 4096\n")
    try:
        pipe = proc.client().pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"r{i}", i)
        pipe.execute()
        applied = int(proc.client().info("raft")["raft_applied_index"])
        assert proc.stop() == 0
        store = Store.open(tmp_path / "data" / "node1", 1)
        try:
            store.keyspace.write({}, applied - 2500)
        finally:
            store.close()
        proc.start()
        wait_until(lambda: "replaying the log done" in proc.log(), 30, "the replay")
        log_text = proc.log()
        assert f"replaying 2500 committed entries ({applied - 2499}..{applied})" in log_text
        pattern = re.compile(
            r"replaying the log (in progress|done): (\d+) entries of 2500 \((\d+)%\) "
            r"in \d+\.\ds, \d+ entries/s"
        )
        found = [m for m in map(pattern.search, log_text.splitlines()) if m]
        assert found[-1].groups() == ("done", "2500", "100")
        assert len(found) >= 5 and found[0].group(1) == "in progress"
        percents = [int(m.group(3)) for m in found]
        assert percents == sorted(percents) and 10 <= percents[0] < 100
        assert proc.client().get("r2999") == b"2999" and proc.client().dbsize() == 3000
    finally:
        proc.kill()


def test_alert_rules_reference_live_metrics(tmp_path: Path) -> None:
    """The rules of docs/monitoring.md: valid YAML of Prometheus's rule-file shape, balanced
    PromQL, and every metric they name exported by a node (a leader, so that leader-only
    series are there too)."""
    import yaml

    text = (REPO / "docs" / "monitoring.md").read_text()
    block = text.split("## Alerts", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    assert len(rules) >= 5
    names: set[str] = set()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        expr = rule["expr"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "1m")), rule
        depth = 0
        for ch in expr:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
            assert depth >= 0, expr
        assert depth == 0 and re.search(r"(==|>|<|!=)\s*\d+(\.\d+)?$", expr), expr
        names.update(re.findall(r"\brespkv_[a-z_]+", expr))
    ports = {i: free_port() for i in (1, 2, 3)}
    with Cluster(
        tmp_path,
        3,
        cluster_extra={i: f"\n[metrics]\nport = {ports[i]}\n" for i in ports},
        raft_extra=FAST_RAFT,
    ) as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        cluster.client(leader).set("k", "v")
        cluster.wait_caught_up()
        exported = {name for name, _ in scrape(ports[leader])}
    assert names and names <= exported, names - exported


def _latency_event(port: int, slow: list[tuple[str, ...]]) -> list[object]:
    """Turn the monitor on at 1 ms, run ``slow`` (commands that hold the server > 1 ms), and
    return LATENCY's replies."""
    r = bare(port)
    call(r, "LATENCY", "RESET")
    call(r, "CONFIG", "SET", "latency-monitor-threshold", "1")
    try:
        for command in slow:
            call(r, *command)
        latest = call(r, "LATENCY", "LATEST")
        history = call(r, "LATENCY", "HISTORY", "command")
        doctor = call(r, "LATENCY", "DOCTOR")
        out: list[object] = [latest, history, doctor]
        out.append(call(r, "LATENCY", "HISTORY", "no-such-event"))
        out.append(call(r, "LATENCY", "RESET", "no-such-event"))
        out.append(call(r, "LATENCY", "RESET", "command", "fast-command"))
        out.append(call(r, "LATENCY", "LATEST"))
    finally:
        call(r, "CONFIG", "SET", "latency-monitor-threshold", "0")
    return out


def test_latency_event_like_redis(node: tuple[RespkvProcess, int]) -> None:
    """A command that really holds the loop over the threshold shows in LATENCY LATEST and
    HISTORY with Redis's shape (there DEBUG SLEEP makes the event; here KEYS over 20000 keys)."""
    r = node[0].client()
    pipe = r.pipeline(transaction=False)
    for start in range(0, 20_000, 1000):
        pipe.mset({f"lat:{i}": "v" for i in range(start, start + 1000)})
    pipe.execute()
    ours = _latency_event(node[0].port, [("KEYS", "*")] * 3)
    with real_redis("--enable-debug-command", "local") as real:
        theirs = _latency_event(real.port, [("DEBUG", "SLEEP", "0.01")])

    def shape(value: object) -> object:
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    # A Raft log fsync over 1 ms may add its own event (aof-fsync-always): not this test's.
    for position in (0, 6):
        ours[position] = [e for e in ours[position] if e[0] != b"aof-fsync-always"]  # type: ignore[attr-defined]
    latest, history = ours[0], ours[1]
    assert shape(latest) == shape(theirs[0]) == [["bytes", "int", "int", "int"]]
    assert latest[0][0] == b"command"  # type: ignore[index]
    assert 1 <= latest[0][2] <= latest[0][3]  # type: ignore[index]
    assert history and shape(history)[0] == shape(theirs[1])[0] == ["int", "int"]  # type: ignore[index]
    assert all(ms >= 1 for _, ms in history)  # type: ignore[union-attr]
    assert b"command" in ours[2] and b"latency spikes" in ours[2]  # type: ignore[operator]
    assert ours[3:] == theirs[3:] == [[], 0, 1, []]
    r.delete(*[f"lat:{i}" for i in range(20_000)])


def test_observer_records_slow_commands_exactly_and_counts_every_command() -> None:
    observer = Observer()
    conn = cast(Any, SimpleNamespace(addr="127.0.0.1:1", name=b""))
    get, keys = lookup(b"get"), lookup(b"keys")  # a fast command and a slow one
    assert get is not None and keys is not None

    def run(spec: Any, elapsed_us: int, deferred: bool = False) -> None:
        started = time.perf_counter_ns() - elapsed_us * 1000
        observer.command_done(conn, [spec.name_bytes, b"k"], spec, started, deferred)

    run(get, 1)
    run(get, 9_000)  # under the default 10 ms threshold
    assert len(observer.slowlog) == 0
    run(get, 12_000)
    assert [e[3] for e in observer.slowlog] == [[b"get", b"k"]]
    observer.set_slowlog_threshold(0)  # every command
    run(get, 0)
    assert len(observer.slowlog) == 2
    observer.set_slowlog_threshold(-1)  # none
    run(get, 50_000)
    assert len(observer.slowlog) == 2 and not observer.latency_events
    observer.set_latency_threshold(20)  # the latency monitor alone
    run(get, 10_000)
    run(keys, 30_000)
    assert list(observer.latency_events) == ["command"]
    run(get, 30_000, deferred=True)  # counted when its reply is sent, not here
    histogram = observer.commands[b"get"].histogram
    assert histogram.total == 6
    observer.reply_sent(get, 1000)
    assert histogram.total == 7 and observer.commands[b"keys"].histogram.total == 1
