"""The wire: inline commands, big pipelines, protocol errors, garbage, many idle connections."""

from __future__ import annotations

import random
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from tests._server_util import RawConn, RealRedis, encode_command
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def server_survives(node: RespkvProcess) -> Iterator[None]:
    """After every test the server is alive, answers, and logged no traceback."""
    with RawConn(node.port) as conn:
        conn.call("FLUSHALL")
    yield
    assert node.proc is not None and node.proc.poll() is None, node.log()
    with RawConn(node.port) as conn:
        assert conn.call("PING") == b"PONG"
    assert "Traceback" not in node.log(), node.log()


def test_inline_commands(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.send(b"PING\r\nSET a \"b c\"\r\nGET a\r\nSET k 'it\\'s'\r\nGET k\r\n")
        assert conn.read_replies(5) == [b"PONG", b"OK", b"b c", b"OK", b"it's"]
        conn.send(b'SET hex "\\x41\\x00\\n"\nGET hex\n   \r\n\r\nECHO   spaced   \r\n')
        assert conn.read_replies(3) == [b"OK", b"A\x00\n", b"spaced"]
        assert bytes(conn.received).endswith(b"$6\r\nspaced\r\n")


def test_pipeline_of_10k_commands_in_one_write(node: RespkvProcess) -> None:
    commands = []
    expected: list[object] = []
    for i in range(10_000):
        kind = i % 4
        if kind == 0:
            commands.append(encode_command("SET", f"k{i}", f"v{i}"))
            expected.append(b"OK")
        elif kind == 1:
            commands.append(encode_command("GET", f"k{i - 1}"))
            expected.append(f"v{i - 1}".encode())
        elif kind == 2:
            commands.append(encode_command("INCR", "counter"))
            expected.append(i // 4 + 1)
        else:
            commands.append(b"PING\r\n")  # inline, mixed with multibulk
            expected.append(b"PONG")
    with RawConn(node.port, timeout=60) as conn:
        conn.send(b"".join(commands))
        assert conn.read_replies(10_000) == expected
        assert conn.call("DBSIZE") == 2_501


PROTOCOL_ERRORS = [
    (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b'SET a "b c\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"GET 'x\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n"),
    (b"*1\r\n$999999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"PING\r\n*1\r\n$x\r\n", b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"),
]


@pytest.mark.parametrize(
    ("data", "reply"), PROTOCOL_ERRORS, ids=[repr(d) for d, _ in PROTOCOL_ERRORS]
)
def test_protocol_errors_close_only_that_connection(
    node: RespkvProcess, real: RealRedis, data: bytes, reply: bytes
) -> None:
    with RawConn(node.port) as bystander, RawConn(node.port) as offender:
        assert bystander.call("SET", "before", "1") == b"OK"
        offender.send(data)
        started = time.monotonic()
        assert offender.read_until_closed(timeout=10) == (reply, True)
        assert time.monotonic() - started < 5, "the error must come at once"
        assert bystander.call("GET", "before") == b"1"
        assert bystander.call("SET", "after", "2") == b"OK"
    with RawConn(real.port) as conn:
        conn.send(data)
        assert conn.read_until_closed(timeout=10) == (reply, True), "redis-server differs"


def test_huge_declared_bulk_is_refused_before_any_payload(node: RespkvProcess) -> None:
    """The limit is proto-max-bulk-len (512 MB): a bigger declared length is refused at once."""
    with RawConn(node.port) as conn:
        conn.send(b"*2\r\n$3\r\nSET\r\n$536870913\r\n")
        assert conn.read_until_closed(timeout=10) == (
            b"-ERR Protocol error: invalid bulk length\r\n",
            True,
        )


def test_edge_cases_match_real_redis(node: RespkvProcess, real: RealRedis) -> None:
    cases = [
        b"\r\n\r\nPING\r\n",
        b"*0\r\nPING\r\n",
        b"*-1\r\nPING\r\n",
        b"$3\r\nfoo\r\n",
        b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
        b"*2\r\n$4\r\nECHO\r\n$3\r\nabcdef\r\n",  # payload longer than declared
        b'ECHO "\\t\\xzz"\r\n',
        b'ECHO a"b\r\n',
        b"  PING  \n",
        b"*1\r\n$4\r\nPING",  # incomplete: nothing yet
    ]
    for data in cases:
        replies = []
        for port in (node.port, real.port):
            with RawConn(port) as conn:
                replies.append(conn.exchange(data, quiet=0.3))
        assert replies[0] == replies[1], data


def test_truncated_frames_run_nothing(node: RespkvProcess) -> None:
    """A command cut anywhere and then abandoned is never executed."""
    rng = random.Random(3)
    for i in range(60):
        frame = encode_command("SET", f"trunc:{i}", "value" * rng.randrange(1, 50))
        cut = rng.randrange(1, len(frame) - 1)  # at least the final "\n" is missing
        with socket.create_connection(("127.0.0.1", node.port)) as sock:
            sock.sendall(frame[:cut])
    with RawConn(node.port) as conn:
        conn.call("PING")  # everything sent before has been read by now... or dropped
        time.sleep(0.2)
        assert conn.call("KEYS", "trunc:*") == []


def test_random_bytes_never_crash_the_server(node: RespkvProcess) -> None:
    """Seeded, bounded fuzzing: random bytes, mutated and spliced frames, on many connections."""
    rng = random.Random(20240611)
    valid = [
        encode_command("SET", "fz", "v"),
        encode_command("GET", "fz"),
        encode_command("MGET", "a", "b", "c"),
        encode_command("INCRBYFLOAT", "n", "1.5"),
        encode_command("SCAN", "0", "COUNT", "3"),
        encode_command("HELLO", "3"),
        encode_command("CLIENT", "SETNAME", "fz"),
        b"PING\r\n",
        b"SET \"a b\" 'c'\r\n",
    ]
    inputs = []
    for _ in range(300):
        choice = rng.randrange(4)
        if choice == 0:
            data = rng.randbytes(rng.randrange(1, 200))
        elif choice == 1:  # a valid frame with a few bytes flipped
            flipped = bytearray(b"".join(rng.choices(valid, k=3)))
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            data = bytes(flipped)
        elif choice == 2:  # a prefix of valid frames followed by noise
            data = b"".join(rng.choices(valid, k=2)) + rng.randbytes(rng.randrange(1, 20))
        else:  # type bytes and digits: the parser's interesting states
            data = bytes(rng.choices(b"*$:+-\r\n0123456789-abc ", k=rng.randrange(1, 80)))
        inputs.append(data)
    deadline = time.monotonic() + 30
    for start in range(0, len(inputs), 30):
        batch = []
        for data in inputs[start : start + 30]:
            sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            sock.sendall(data)
            batch.append(sock)
        for sock in batch:
            sock.close()
        with RawConn(node.port) as conn:
            assert conn.call("PING") == b"PONG", f"after inputs {start}..{start + 30}"
        assert time.monotonic() < deadline, "fuzzing took too long"
    assert node.proc is not None and node.proc.poll() is None


def test_thousand_idle_connections(node: RespkvProcess) -> None:
    wanted = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted + 200:
        new_soft = min(hard, wanted + 500) if hard != resource.RLIM_INFINITY else wanted + 500
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        soft = new_soft
    # The server inherited the limit it was started with; count only what we may open.
    count = min(wanted, soft - 100)
    assert count >= 500, f"only {soft} file descriptors allowed: cannot test 500 connections"
    message = f"{count} idle connections (soft fd limit {soft})"
    conns: list[socket.socket] = []
    try:
        for _ in range(count):
            conns.append(socket.create_connection(("127.0.0.1", node.port), timeout=30))
        with RawConn(node.port) as other:
            assert other.call("SET", "busy", "yes") == b"OK", message
            assert other.call("GET", "busy") == b"yes", message
            clients = other.call("INFO", "clients")
            connected = int(clients.split(b"connected_clients:")[1].split(b"\r\n")[0])
            assert connected >= count + 1, f"{message}: INFO says {connected}"
        # Every idle connection still works.
        for sock in conns[:: max(1, count // 20)]:
            sock.sendall(b"PING\r\n")
            assert sock.recv(100) == b"+PONG\r\n", message
    finally:
        for sock in conns:
            sock.close()
