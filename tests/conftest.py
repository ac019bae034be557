"""Fixtures shared by the test modules that talk to one respkv node and a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests._server_util import RealRedis, real_redis, start_node
from tests.respkv_proc import RespkvProcess


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite-scenarios",
        action="store_true",
        help="rewrite the expected traces of tests/raft_scenarios/*.txt from the current code",
    )


@pytest.fixture(scope="module")
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RespkvProcess]:
    """One respkv node with the default configuration, shared by a module's tests."""
    proc = start_node(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def real() -> Iterator[RealRedis]:
    """A real redis-server to compare replies with."""
    with real_redis() as server:
        yield server


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def r(node: RespkvProcess, protocol: int) -> Iterator[redis.Redis]:
    """A redis-py client of ``node`` in RESP2 and RESP3, on an empty keyspace."""
    client = node.client(protocol=protocol)
    client.flushall()
    try:
        yield client
    finally:
        client.close()
