"""Differential test through the whole server: the same random command sequences on a real
respkv process and on a real redis-server, every reply compared (RESP2, raw bytes decoded by
hiredis). Reuses the kv layer's command grammar and comparison (tests/test_kv_differential.py),
so it covers the wire format, dispatch, the Raft write path and the state machine together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _kv_redis import RawRedis, redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kv_differential import STEP, compare

from respkv.resp.replies import ErrorReply
from tests.respkv_proc import RespkvProcess


class ServerDriver:
    """``compare``'s driver interface over a live respkv connection."""

    def __init__(self, port: int) -> None:
        self.client = RawRedis(port)
        self.db = 0

    def call(self, argv: list[bytes], db: int = 0, now_ms: int = 0) -> Any:
        if db != self.db:
            assert self.client.call(b"SELECT", str(db).encode()) == b"OK"
            self.db = db
        return _as_state_machine_reply(self.client.call(*argv))


def _as_state_machine_reply(reply: Any) -> Any:
    """RawRedis shows errors as ("error", text); ``compare`` normalizes ErrorReply to that."""
    if isinstance(reply, tuple) and reply[:1] == ("error",):
        return ErrorReply(reply[1])
    if isinstance(reply, list):
        return [_as_state_machine_reply(r) for r in reply]
    return reply


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    workdir: Path = tmp_path_factory.mktemp("respkv-diff")
    with redis_server() as redis_port, RespkvProcess(workdir).start() as node:
        yield redis_port, node.port


@pytest.mark.integration
@settings(
    max_examples=int(os.environ.get("SERVER_DIFF_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_server_replies_match_redis(
    ports: tuple[int, int], steps: list[tuple[int, list[bytes]]]
) -> None:
    redis_port, respkv_port = ports
    redis, ours = RawRedis(redis_port), ServerDriver(respkv_port)
    try:
        assert redis.call("FLUSHALL") == ours.client.call("FLUSHALL") == b"OK"
        compare(redis, ours, steps)  # type: ignore[arg-type]
    finally:
        redis.close()
        ours.client.close()
