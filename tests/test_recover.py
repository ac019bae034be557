"""Recover: backups taken while clients write, restore into a new cluster, and ``respkv check``.

Writers advance per-writer counters in a fixed order (a string key, a hash field, a set member,
then the counter itself), so a backup, being a prefix of the log, must hold every step up to
its counter and nothing past the next step. Every write acknowledged before the backup was
asked for must be in it.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from rocksdict import Options, Rdict

from respkv.server import cli
from respkv.storage import codec
from tests.respkv_proc import Cluster, RespkvProcess, control_client, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def respkv(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "respkv.server.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


# --- the workload ----------------------------------------------------------------------------


@dataclass
class Writer:
    index: int
    acked: int = 0  # the last step whose four writes were all acknowledged
    errors: list[str] = field(default_factory=list)


def run_writer(writer: Writer, port: int, stop: threading.Event) -> None:
    client = redis.Redis(port=port, socket_timeout=10)
    i = writer.index
    n = writer.acked
    while not stop.is_set():
        n += 1
        try:
            client.set(f"w:{i}:{n}", n)
            client.hset(f"hw:{i}", f"f{n}", n)
            client.sadd(f"sw:{i}", n)
            client.set(f"w:{i}", n)
        except redis.RedisError as e:
            writer.errors.append(f"step {n}: {e!r}")
            return
        writer.acked = n


class Workload:
    def __init__(self, port: int, writers: int = 4) -> None:
        self.writers = [Writer(i) for i in range(writers)]
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=run_writer, args=(w, port, self.stop), daemon=True)
            for w in self.writers
        ]

    def __enter__(self) -> Workload:
        for t in self.threads:
            t.start()
        return self

    def acked(self) -> list[int]:
        return [w.acked for w in self.writers]

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)
        for w in self.writers:
            assert not w.errors, w.errors[:3]


def check_prefix(client: redis.Redis, writers: int, acked_before: list[int]) -> list[int]:
    """The data of a backup is a prefix of every writer's history that holds at least the
    steps acknowledged before the backup began; the counters found."""
    found = []
    for i in range(writers):
        counter = int(client.get(f"w:{i}") or 0)
        assert counter >= acked_before[i], (
            f"writer {i}: step {acked_before[i]} was acknowledged before the backup began, "
            f"the backup stops at {counter}"
        )
        keys = [f"w:{i}:{n}" for n in range(1, counter + 3)]
        values = client.mget(keys)
        for n, value in enumerate(values, start=1):
            if n <= counter:
                assert value == str(n).encode(), f"w:{i}:{n} is {value!r} below the counter"
            elif n == counter + 2:
                assert value is None, f"w:{i}:{n} exists past the counter {counter}"
        fields = client.hgetall(f"hw:{i}")
        assert {f"f{n}".encode() for n in range(1, counter + 1)} <= set(fields)
        assert len(fields) in (counter, counter + 1), (counter, len(fields))
        members = {int(m) for m in client.smembers(f"sw:{i}")}
        assert set(range(1, counter + 1)) <= members <= set(range(1, counter + 2))
        found.append(counter)
    return found


def everything(port: int) -> dict[bytes, Any]:
    """Every key of db 0 with its value by type, read locally (READONLY)."""
    with control_client(port, 10.0) as r:
        assert r.execute_command("READONLY") is True
        out: dict[bytes, Any] = {}
        for key in r.scan_iter(count=1000):
            kind = r.type(key)
            if kind == b"string":
                out[key] = r.get(key)
            elif kind == b"hash":
                out[key] = r.hgetall(key)
            elif kind == b"set":
                out[key] = r.smembers(key)
            else:
                out[key] = kind
        return out


def cluster_id(port: int) -> str:
    with control_client(port) as r:
        reply = r.execute_command("CLUSTER", "STATUS")
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    return str(fields[b"cluster_id"].decode())


def raw(port: int, *args: str) -> bytes:
    """The reply's bytes as the server sent them."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
        )
        return sock.recv(1 << 16)


def take_backup(port: int, directory: Path, *extra: str) -> dict[str, Any]:
    done = respkv("backup", str(directory), "--port", str(port), *extra)
    assert done.returncode == 0, done.stderr
    manifest: dict[str, Any] = json.loads(done.stdout)
    assert json.loads((directory / "manifest.json").read_text()) == manifest
    return manifest


def restore_and_grow(
    tmp_path: Path, backup: Path, manifest: dict[str, Any], acked_before: list[int]
) -> None:
    """Restore as node 7 of a new cluster, check the data, grow it to two nodes."""
    (tmp_path / "restored").mkdir(exist_ok=True)
    restored = RespkvProcess(tmp_path / "restored", node_id=7)
    done = respkv("restore", str(backup), "--config", str(restored.config_path))
    assert done.returncode == 0, done.stderr
    assert "restore done" in done.stderr
    with restored.start():
        client = restored.client()
        wait_until(lambda: client.set("probe", "1"), 20, "the restored node to take writes")
        client.delete("probe")
        assert client.dbsize() == manifest["key_count"]
        check_prefix(client, len(acked_before), acked_before)
        new_id = cluster_id(restored.port)
        assert new_id != manifest["cluster_id"]
        with control_client(restored.port) as r:
            info = r.info("raft")
        assert info["raft_voters"] == 7 and info["raft_applied_index"] > manifest["applied_index"]

        joiner = RespkvProcess(
            tmp_path / "restored",
            node_id=8,
            cluster=f'join = "127.0.0.1:{restored.peer_port}"',
        )
        with joiner.start():
            client.set("after-restore", "yes")

            def caught_up() -> bool:
                with control_client(restored.port) as r:
                    leader = r.info("raft")
                with control_client(joiner.port) as r:
                    follower = r.info("raft")
                return bool(
                    leader["raft_voters"] == [7, 8]
                    and follower["raft_applied_index"] == leader["raft_applied_index"]
                )

            wait_until(caught_up, 60, "the joined node to be a voter and catch up")
            assert cluster_id(joiner.port) == new_id
            original = everything(restored.port)
            assert original[b"after-restore"] == b"yes"
            assert everything(joiner.port) == original


# --- backups while clients write --------------------------------------------------------------


def test_backup_of_a_single_node_under_writes_restores_into_a_new_cluster(
    tmp_path: Path,
) -> None:
    node = RespkvProcess(tmp_path, raft_extra="snapshot_threshold = 2000\nsnapshot_tail = 100")
    with node.start(), Workload(node.port) as load:
        wait_until(lambda: min(load.acked()) >= 200, 60, "the writers to get going")
        acked_before = load.acked()
        manifest = take_backup(node.port, tmp_path / "backup")
        wait_until(
            lambda: min(load.acked()) > min(acked_before), 10, "the writers to go on after it"
        )
    assert manifest["format_version"] == 1 and manifest["node_id"] == 1
    assert [m["id"] for m in manifest["membership"]] == [1]
    assert manifest["key_count"] > 4 * 200
    assert len(manifest["snapshot"]["sha256"]) == 64
    restore_and_grow(tmp_path, tmp_path / "backup", manifest, acked_before)


def test_backup_of_a_cluster_leader_under_writes(tmp_path: Path) -> None:
    with Cluster(tmp_path / "cluster", 3) as cluster:
        cluster.start()
        leader = cluster.wait_leader(timeout=30)
        with Workload(cluster.port(leader)) as load:
            wait_until(lambda: min(load.acked()) >= 100, 60, "the writers to get going")
            acked_before = load.acked()
            manifest = take_backup(cluster.port(leader), tmp_path / "backup")
            assert min(load.acked()) >= min(acked_before)
            # On a follower the backup waits for a read barrier: it holds everything the
            # leader had committed when it was asked for, even when the follower is behind
            # (paused while the others went on).
            follower = next(i for i in cluster.ids if i != leader)
            asker = cluster.client(follower, socket_timeout=60)
            asker.ping()
            cluster.nodes[follower].signal(signal.SIGSTOP)
            paused_at = cluster.info_raft(leader)["raft_commit_index"]
            wait_until(
                lambda: cluster.info_raft(leader)["raft_commit_index"] >= paused_at + 50,
                30,
                "the others to commit while the follower is paused",
            )
            committed = cluster.info_raft(leader)["raft_commit_index"]
            cluster.nodes[follower].signal(signal.SIGCONT)
            target = tmp_path / "follower-backup"
            on_follower = json.loads(asker.execute_command("RESPKV", "BACKUP", str(target)))
            assert on_follower["node_id"] == follower
            assert on_follower["applied_index"] >= committed
        assert sorted(m["id"] for m in manifest["membership"]) == [1, 2, 3]
        assert manifest["node_id"] == leader
        assert manifest["cluster_id"] == cluster_id(cluster.port(leader))
    restore_and_grow(tmp_path, tmp_path / "backup", manifest, acked_before)


def test_bgsave_updates_lastsave_and_writes_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = RespkvProcess(tmp_path)
    with node.start():
        client = node.client()
        client.set("a", "1")
        # Keys in other databases, a swap and a flush (a database map, a dead keyspace): the
        # manifest counts keys per database as DBSIZE does.
        other = node.client(db=1)
        other.mset({"x": 1, "y": 2})
        other.execute_command("SWAPDB", "1", "2")
        node.client(db=3).set("gone", 1)
        node.client(db=3).flushdb()
        sizes = {str(db): node.client(db=db).dbsize() for db in range(4)}
        assert sizes == {"0": 1, "1": 0, "2": 2, "3": 0}
        before = client.lastsave()
        time.sleep(1.1)  # LASTSAVE has a resolution of a second
        assert raw(node.port, "BGSAVE") == b"+Background saving started\r\n"
        wait_until(lambda: client.lastsave() > before, 20, "LASTSAVE to move")
        persistence = client.info("persistence")
        assert persistence["rdb_last_bgsave_status"] == "ok"
        assert persistence["rdb_bgsave_in_progress"] == 0
        where = Path(persistence["respkv_last_backup_dir"])
        assert where.parent == tmp_path / "data" / "backups"
        manifest = json.loads((where / "manifest.json").read_text())
        assert manifest["key_count"] == 3 and manifest["keys_per_db"] == {"0": 1, "2": 2}
        assert client.execute_command("BGSAVE")  # a second backup, right after
        assert raw(node.port, "BGSAVE", "SCHEDULE") in (
            b"+Background saving started\r\n",  # the second one was already done
            b"+Background saving scheduled\r\n",  # a third one once it is
        )
        with pytest.raises(redis.ResponseError, match="syntax"):
            client.execute_command("BGSAVE", "NOW")
        with pytest.raises(redis.ResponseError, match="absolute"):
            client.execute_command("RESPKV", "BACKUP", "relative/dir")
        wait_until(lambda: client.info("persistence")["rdb_bgsave_in_progress"] == 0, 20, "BGSAVE")
        assert len(list((tmp_path / "data" / "backups").iterdir())) in (3, 4)
        # respkv backup (in this process) prints the node's progress while it waits.
        monkeypatch.setattr(cli, "PROGRESS_EVERY_S", 0.001)
        target = tmp_path / "by-cli"
        assert cli.main(["backup", str(target), "--port", str(node.port)]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["key_count"] == 3
        assert "MB written (~" in err and f"done: {target}" in err


# --- restore refuses ----------------------------------------------------------------------------


def test_restore_refuses_damaged_or_unknown_backups_and_non_empty_dirs(tmp_path: Path) -> None:
    node = RespkvProcess(tmp_path)
    with node.start():
        node.client().mset({f"k{i}": i for i in range(500)})
        take_backup(node.port, tmp_path / "good")

    def refused(backup: Path, *, data: Path | None = None) -> str:
        target = data or tmp_path / f"target-{backup.name}"
        done = respkv("restore", str(backup), "--data-dir", str(target))
        assert done.returncode == 1, done.stderr
        if data is None:
            assert not (target / "node1").exists(), "a refused restore left a data dir behind"
        return done.stderr

    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "good", damaged)
    snapshot = damaged / "snapshot.rkvsnap"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    assert "damaged" in refused(damaged) and "checksum" in refused(damaged)

    future = tmp_path / "future"
    shutil.copytree(tmp_path / "good", future)
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["format_version"] = 99
    (future / "manifest.json").write_text(json.dumps(manifest))
    assert "format version 99" in refused(future)

    unfinished = tmp_path / "unfinished"
    shutil.copytree(tmp_path / "good", unfinished)
    (unfinished / "manifest.json").unlink()
    assert "no manifest.json" in refused(unfinished)

    occupied = tmp_path / "occupied"
    (occupied / "node1").mkdir(parents=True)
    (occupied / "node1" / "something").write_text("mine")
    assert "not empty" in refused(tmp_path / "good", data=occupied)
    assert (occupied / "node1" / "something").read_text() == "mine"

    done = respkv("restore", str(tmp_path / "good"), "--data-dir", str(tmp_path / "fine"))
    assert done.returncode == 0, done.stderr


# --- respkv check ---------------------------------------------------------------------------------


def open_raw(path: Path) -> Rdict:
    families = Rdict.list_cf(str(path))
    return Rdict(
        str(path),
        Options(raw_mode=True),
        column_families={name: Options(raw_mode=True) for name in families},
    )


def test_check_finds_holes_and_corrupt_records_and_refuses_a_running_node(
    tmp_path: Path,
) -> None:
    node = RespkvProcess(tmp_path, raft_extra="snapshot_threshold = 300\nsnapshot_tail = 100")
    data_dir = tmp_path / "data" / "node1"
    with node.start():
        client = node.client()
        for i in range(800):
            client.set(f"k{i}", i)
        client.hset("h", mapping={"a": "1", "b": "2"})
        client.sadd("s", "x")
        client.set("expires", "1", ex=3600)
        client.expire("h", 3600)
        node.client(db=2).set("elsewhere", 1)
        client.execute_command("SWAPDB", "0", "1")
        client.execute_command("SWAPDB", "0", "1")
        client.set("dropped", 1)
        client.delete("dropped")
        running = respkv("check", str(data_dir))
        assert running.returncode == 2
        assert "in use" in running.stderr and "stop the node" in running.stderr
        assert node.stop() == 0

    healthy = respkv("check", str(data_dir), "--json")
    assert healthy.returncode == 0, healthy.stdout
    report = json.loads(healthy.stdout)
    assert report["healthy"] is True and report["problems"] == []
    first, last = report["log_first_index"], report["log_last_index"]
    assert last - first > 10 and report["applied_index"] == last
    assert report["keys"] == 804

    hole = tmp_path / "hole"
    shutil.copytree(data_dir, hole)
    db = open_raw(hole)
    missing = (first + last) // 2
    db.get_column_family("raft_log").delete(codec.encode_index(missing))
    db.close()
    done = respkv("check", str(hole))
    assert done.returncode == 1
    assert f"the log has a hole: entry {missing} missing" in done.stdout

    corrupt = tmp_path / "corrupt"
    shutil.copytree(data_dir, corrupt)
    db = open_raw(corrupt)
    db.get_column_family("raft_log").put(codec.encode_index(missing), b"\x00\x01")
    active = db.get_column_family("raft_meta").get(b"keyspace_active") or b"keyspace"
    keyspace = db.get_column_family(active.decode())
    keyspace.put(b"d\x00\x00\x00\x00k7", b"\x01garbage")  # an unknown type code
    keyspace.delete(b"d\x00\x00\x00\x00k8")  # db 0's stored count is now one too high
    keyspace.close()
    del keyspace  # RocksDB stays open (locked) while a column family object lives
    db.close()
    done = respkv("check", str(corrupt))
    assert done.returncode == 1
    assert f"log entry {missing} is corrupt" in done.stdout
    assert "unknown type code" in done.stdout
    assert "stored key count" in done.stdout

    done = respkv("check", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "not a respkv data dir" in done.stderr


# --- in-process: progress logs, and a restored store passes check -------------------------------


def test_backup_and_restore_log_progress_and_the_restored_store_checks_healthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from respkv.kv.layout import META_COUNT, U64
    from respkv.raft.types import ConfState, Index, Member, NodeId, SnapshotMeta, Term
    from respkv.storage import Store, backup, begin_export
    from respkv.storage.check import check_data_dir

    monkeypatch.setattr(backup, "PROGRESS_INTERVAL_S", 0.0)
    keys = 30_000
    with Store.open(tmp_path / "node1", 1) as store:
        changes: dict[bytes, bytes | None] = {
            b"d\x00\x00\x00\x00k%06d" % i: b"s" + b"v" * 400 for i in range(keys)
        }
        changes[META_COUNT + b"\x00\x00\x00\x00"] = U64.pack(keys)
        store.keyspace.write(changes, 5)
        meta = SnapshotMeta(Index(5), Term(2), ConfState((Member(NodeId(1), False, b"x"),)))
        caplog.set_level("INFO")
        manifest = backup.write_backup(
            begin_export(store, meta),
            tmp_path / "b",
            cluster_id="c1",
            node_id=1,
            membership=[{"id": 1}],
            respkv_version="test",
            estimated_bytes=13_000_000,
        )
    assert manifest["key_count"] == keys and manifest["applied_index"] == 5
    assert "MB written (~" in caplog.text and "MB/s" in caplog.text
    restored = backup.restore_backup(tmp_path / "b", tmp_path / "new" / "node4", 4, b"y", "c2")
    assert restored == manifest
    assert "restore: " in caplog.text and "records/s" in caplog.text
    report = check_data_dir(tmp_path / "new" / "node4")
    assert report.healthy, report.problems
    assert report.facts["cluster_id"] == "c2" and report.facts["node_id"] == 4
    assert report.facts["members"] == [{"id": 4, "learner": False}]
    assert report.facts["applied_index"] == 5 and report.facts["keys"] == keys
