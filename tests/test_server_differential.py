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
from test_kv_differential import BLOCKING, STEP, _queueable, _without_blocking, check_reply, compare

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
        if argv[0].lower() in BLOCKING:  # as on the redis side: the form that never blocks
            return _as_state_machine_reply(_without_blocking(self.client, argv))
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


@pytest.mark.integration
@settings(
    max_examples=int(os.environ.get("SERVER_DIFF_EXAMPLES", "60")) // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chunks=st.lists(st.lists(STEP, min_size=1, max_size=8), min_size=1, max_size=4),
    bogus=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_multi_exec_matches_redis(
    ports: tuple[int, int], chunks: list[list[tuple[int, list[bytes]]]], bogus: list[bool]
) -> None:
    """Random MULTI/EXEC blocks (with SELECTs queued inside, and sometimes a command refused
    at queue time) through the whole server, every reply compared with redis-server's."""
    redis_port, respkv_port = ports
    redis, ours = RawRedis(redis_port), RawRedis(respkv_port)
    try:
        assert redis.call("FLUSHALL") == ours.call("FLUSHALL") == b"OK"
        for chunk, refuse in zip(chunks, bogus, strict=False):
            steps = [(db, args) for db, args in chunk if _queueable(args)]
            for client in (redis, ours):
                assert client.call("SELECT", "0") == b"OK"
                assert client.call("MULTI") == b"OK"
            current = 0
            names: list[bytes] = []
            for db, args in steps:
                if db != current:
                    queued = [c.call("SELECT", str(db)) for c in (redis, ours)]
                    assert queued == [b"QUEUED", b"QUEUED"]
                    names.append(b"select")
                    current = db
                replies = [c.call(*args) for c in (redis, ours)]
                assert replies[0] == replies[1] == b"QUEUED", args
                names.append(args[0].lower())
            if refuse:
                replies = [c.call("GET") for c in (redis, ours)]
                assert replies[0] == replies[1], replies
            theirs, mine = redis.call("EXEC"), ours.call("EXEC")
            if refuse:
                assert mine == theirs == ("error", EXECABORT_TEXT)
                continue
            assert isinstance(mine, list) and isinstance(theirs, list), (mine, theirs)
            assert len(mine) == len(theirs) == len(names)
            for name, m, t in zip(names, mine, theirs, strict=True):
                check_reply(name, m, t, f"in EXEC: {name!r}")
        for client in (redis, ours):
            client.call("SELECT", "0")
    finally:
        redis.close()
        ours.close()


EXECABORT_TEXT = "EXECABORT Transaction discarded because of previous errors."
