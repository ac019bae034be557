"""TLS: the client port with real clients (redis-cli --tls, redis-py ssl=True), and mutual TLS
plus the cluster secret on the peer channel of a real 3-node cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests._certs import TestCA
from tests._server_util import FAST_RAFT, require_binary, start_node
from tests.respkv_proc import Cluster, RespkvProcess, free_port, wait_until

pytestmark = pytest.mark.integration
NO_RETRY = Retry(NoBackoff(), 0)


def tls_section(ca: TestCA, name: str, **options: str) -> str:
    files = ca.issue(name)
    lines = [
        "[tls]",
        f'cert_file = "{files.cert}"',
        f'key_file = "{files.key}"',
        f'ca_file = "{ca.ca_file}"',
        *(f"{key} = {value}" for key, value in options.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, ca: TestCA) -> Iterator[RespkvProcess]:
    tls_port = free_port()
    # [tls] goes after [raft]: the last section of the generated file.
    proc = start_node(
        tmp_path_factory.mktemp("tls"),
        raft_extra=FAST_RAFT + tls_section(ca, "server", port=str(tls_port)),
    )
    proc.tls_port = tls_port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.kill()


def redis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("redis-cli", "redis-tools")
    return subprocess.run(
        [binary, "-h", "127.0.0.1", *args], capture_output=True, text=True, timeout=20
    )


def test_redis_cli_over_tls(node: RespkvProcess, ca: TestCA) -> None:
    port = str(node.tls_port)  # type: ignore[attr-defined]
    tls = ["--tls", "--cacert", str(ca.ca_file), "-p", port]
    assert redis_cli(*tls, "SET", "greeting", "hello over tls").stdout.strip() == "OK"
    assert redis_cli(*tls, "GET", "greeting").stdout.strip() == "hello over tls"
    # The same data on the plain port: one server, two listeners.
    assert redis_cli("-p", str(node.port), "GET", "greeting").stdout.strip() == "hello over tls"
    # Without --tls the TLS port does not talk RESP.
    plain = redis_cli("-p", port, "PING")
    assert "PONG" not in plain.stdout
    # A client that does not trust the server's CA refuses it.
    other = TestCA(ca.directory / "other", "some other CA")
    untrusted = redis_cli("--tls", "--cacert", str(other.ca_file), "-p", port, "PING")
    assert "PONG" not in untrusted.stdout
    assert "certificate verify failed" in (untrusted.stderr + untrusted.stdout).lower()


def test_redis_py_over_tls(node: RespkvProcess, ca: TestCA) -> None:
    port = node.tls_port  # type: ignore[attr-defined]
    with redis.Redis(
        host="localhost", port=port, ssl=True, ssl_ca_certs=str(ca.ca_file), socket_timeout=10
    ) as r:
        assert r.set("py", b"x" * 200_000) is True  # larger than one TLS record
        assert r.get("py") == b"x" * 200_000
        pipe = r.pipeline(transaction=False)
        for _ in range(500):
            pipe.incr("tls-counter")
        assert pipe.execute()[-1] == 500
        assert r.execute_command("HELLO", "3")[b"proto"] == 3  # type: ignore[no-untyped-call]
    # A plain-text client on the TLS port gets no answer it understands.
    with (
        pytest.raises(redis.ConnectionError),
        redis.Redis(port=port, socket_timeout=5, retry=NO_RETRY) as plain,
    ):
        plain.ping()
    # CONFIG GET reports the TLS port, as Redis does.
    with node.client() as r:
        assert r.config_get("tls-port") == {"tls-port": str(port)}


def test_client_certificates_required(tmp_path: Path, ca: TestCA) -> None:
    """client_auth = "yes": a client without a certificate signed by ca_file is refused."""
    tls_port = free_port()
    node = start_node(
        tmp_path,
        raft_extra=FAST_RAFT + tls_section(ca, "server2", port=str(tls_port), client_auth='"yes"'),
    )
    try:
        client = ca.issue("client")
        base = ["--tls", "--cacert", str(ca.ca_file), "-p", str(tls_port)]
        assert "PONG" not in redis_cli(*base, "PING").stdout
        with_cert = redis_cli(*base, "--cert", str(client.cert), "--key", str(client.key), "PING")
        assert with_cert.stdout.strip() == "PONG", with_cert.stderr
        stranger = TestCA(tmp_path / "stranger", "stranger CA").issue("client")
        refused = redis_cli(*base, "--cert", str(stranger.cert), "--key", str(stranger.key), "PING")
        assert "PONG" not in refused.stdout
    finally:
        node.kill()


def test_bad_certificate_files_stop_the_start(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    node = RespkvProcess(
        tmp_path,
        raft_extra=f'[tls]\nport = {free_port()}\ncert_file = "{broken}"\nkey_file = "{broken}"\n',
    )
    node.start(wait=False)
    assert node.proc is not None
    assert node.proc.wait(20) == 2
    assert "cannot load the certificates" in node.log()


def refusals(log: str) -> int:
    return log.count("refused peer connection") + log.count("refused us")


SECRET = 'cluster_secret = "the right secret"\n'


def test_peer_mutual_tls_cluster(tmp_path: Path, ca: TestCA) -> None:
    """Three nodes with mutual TLS and a cluster secret elect a leader and replicate; a peer
    without TLS, one whose certificate another CA signed, and one with the wrong secret are
    refused, and the refusal is logged by the node they dialed."""
    extras = {i: SECRET for i in (1, 2, 3)}
    with Cluster(
        tmp_path,
        3,
        cluster_extra=extras,
        raft_extra=FAST_RAFT + tls_section(ca, "peer", peer="true"),
    ) as cluster:
        cluster.start()
        leader = cluster.wait_leader(timeout=30)
        with cluster.client(leader) as r:
            for i in range(50):
                r.set(f"k{i}", i)
        cluster.wait_caught_up()
        follower = next(i for i in cluster.ids if i != leader)
        assert cluster.dump(follower) == {f"k{i}".encode(): str(i).encode() for i in range(50)}
        # A write sent to a follower is forwarded to the leader over the TLS channel.
        with cluster.client(follower) as r:
            assert r.set("via-follower", "yes") is True
        for i in cluster.ids:
            assert "TLS handshake failed" not in cluster.nodes[i].log()

        target = f"127.0.0.1:{cluster.nodes[1].peer_port}"
        stranger = TestCA(tmp_path / "stranger", "stranger CA")
        intruders = {
            "no TLS": (RespkvProcess(tmp_path, 11, extra=SECRET), "TLS handshake failed"),
            "foreign CA": (
                RespkvProcess(
                    tmp_path, 12, extra=SECRET, raft_extra=tls_section(stranger, "x", peer="true")
                ),
                "TLS handshake failed",
            ),
            "wrong secret": (
                RespkvProcess(
                    tmp_path,
                    13,
                    extra='cluster_secret = "guessed"\n',
                    raft_extra=tls_section(ca, "intruder", peer="true"),
                ),
                "cluster secret",
            ),
        }
        node1 = cluster.nodes[1]
        for what, (intruder, _) in intruders.items():
            intruder.config_path.write_text(
                intruder.config_path.read_text().replace(
                    "[cluster]\n", f'[cluster]\njoin = "{target}"\n', 1
                )
            )
            before = refusals(node1.log())
            intruder.start(wait=False)
            try:
                wait_until(
                    lambda b=before: refusals(node1.log()) > b,  # type: ignore[misc]
                    20,
                    f"node 1 to refuse the intruder with {what}",
                )
            finally:
                intruder.kill()
        log = node1.log()
        for what, (intruder, reason) in intruders.items():
            assert reason in log, what
            assert intruder.proc is not None and intruder.proc.returncode is not None
        assert "certificate verify failed" in intruders["foreign CA"][0].log()
        # Nobody got in.
        info = cluster.info_raft(leader)
        assert str(info["raft_voters"]) in ("[1, 2, 3]", "1,2,3"), info
        assert not info["raft_learners"], info


def test_exposed_node_warns_at_start(tmp_path: Path) -> None:
    """A client port beyond loopback without a password, and a peer port beyond loopback
    without a secret or TLS, each log a SECURITY warning; a loopback node logs none."""
    quiet = start_node(tmp_path / "quiet")
    (tmp_path / "exposed").mkdir()
    exposed = RespkvProcess(tmp_path / "exposed")
    exposed.config_path.write_text(
        exposed.config_path.read_text()
        .replace('bind = "127.0.0.1"', 'bind = "0.0.0.0"')
        .replace('listen_address = "127.0.0.1:', 'listen_address = "0.0.0.0:')
    )
    try:
        exposed.start()
        wait_until(lambda: exposed.log().count("SECURITY") >= 2, 20, "two SECURITY warnings")
        assert "the client port is bound to 0.0.0.0" in exposed.log()
        assert "the peer port 0.0.0.0:" in exposed.log()
        assert "SECURITY" not in quiet.log()
    finally:
        exposed.kill()
        quiet.kill()
