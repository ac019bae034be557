"""redis-cli (the real one, from redis-tools) against respkv."""

from __future__ import annotations

import subprocess

import pytest

from tests._server_util import require_binary
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli() -> str:
    return require_binary("redis-cli", "redis-tools")


def run(cli: str, node: RespkvProcess, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        [cli, "-p", str(node.port), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode(errors="replace")


def test_set_get_and_output_modes(cli: str, node: RespkvProcess) -> None:
    run(cli, node, "FLUSHALL")
    assert run(cli, node, "SET", "k", "v") == "OK\n"
    assert run(cli, node, "GET", "k") == "v\n"  # not a tty: raw by default
    assert run(cli, node, "--no-raw", "GET", "k") == '"v"\n'
    assert run(cli, node, "--raw", "GET", "k") == "v\n"
    assert run(cli, node, "--no-raw", "INCR", "n") == "(integer) 1\n"
    assert run(cli, node, "--raw", "INCR", "n") == "2\n"
    assert run(cli, node, "--no-raw", "GET", "missing") == "(nil)\n"
    assert run(cli, node, "--no-raw", "MGET", "k", "missing") == '1) "v"\n2) (nil)\n'
    assert run(cli, node, "--no-raw", "NOSUCH") == (
        "(error) ERR unknown command 'NOSUCH', with args beginning with: \n"
    )
    assert run(cli, node, "-3", "--no-raw", "HELLO", "3").startswith('1# "server" => "redis"\n')
    assert run(cli, node, "-n", "3", "SET", "in3", "x") == "OK\n"
    assert run(cli, node, "-n", "3", "DBSIZE") == "1\n"


def test_info_server(cli: str, node: RespkvProcess) -> None:
    out = run(cli, node, "INFO", "server")
    assert "# Server" in out and "redis_version:7.0.15" in out and "respkv_version:" in out
    assert f"tcp_port:{node.port}" in out


def test_commands_from_stdin(cli: str, node: RespkvProcess) -> None:
    run(cli, node, "FLUSHALL")
    out = run(cli, node, stdin=b'SET a 1\nINCR a\nSET b "two words"\nGET b\nMGET a b\n')
    assert out == "OK\n2\nOK\ntwo words\n2\ntwo words\n"


def test_pipe_mode(cli: str, node: RespkvProcess) -> None:
    run(cli, node, "FLUSHALL")
    count = 5000
    data = b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
        for k, v in ((b"pipe:%d" % i, b"value-%d" % i) for i in range(count))
    )
    out = run(cli, node, "--pipe", stdin=data)
    assert f"errors: 0, replies: {count}" in out, out
    assert run(cli, node, "DBSIZE") == f"{count}\n"
    assert run(cli, node, "GET", "pipe:4999") == "value-4999\n"
