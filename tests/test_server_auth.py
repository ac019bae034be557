"""AUTH: a respkv with ``requirepass`` answers like redis-server 7.0.15 with the same setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests._server_util import RawConn, RealRedis, call, error, real_redis, start_node
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration

PASSWORD = "s3cret pass"
NOAUTH = error("NOAUTH Authentication required.")
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries a failed AUTH by default: slow
WRONGPASS = error("WRONGPASS invalid username-password pair or user is disabled.")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RespkvProcess]:
    proc = start_node(tmp_path_factory.mktemp("auth"), server_extra=f'requirepass = "{PASSWORD}"\n')
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def real() -> Iterator[RealRedis]:
    with real_redis("--requirepass", PASSWORD) as server:
        yield server


def test_commands_before_auth_are_refused(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        for command in (("GET", "k"), ("SET", "k", "v"), ("PING",), ("SELECT", "1"), ("INFO",)):
            assert conn.call(*command) == NOAUTH, command
        conn.received.clear()
        conn.call("CLIENT", "ID")
        assert bytes(conn.received) == b"-NOAUTH Authentication required.\r\n"
        # Unknown commands and wrong arity are reported first, as in Redis.
        assert conn.call("NOSUCH") == error(
            "ERR unknown command 'NOSUCH', with args beginning with: "
        )
        assert conn.call("GET") == error("ERR wrong number of arguments for 'get' command")
        assert conn.call("AUTH", "wrong") == WRONGPASS
        assert conn.call("AUTH", "default", "wrong") == WRONGPASS
        assert conn.call("AUTH", "nobody", PASSWORD) == WRONGPASS
        assert conn.call("GET", "k") == NOAUTH
        assert conn.call("AUTH", PASSWORD) == b"OK"
        assert conn.call("SET", "k", "v") == b"OK" and conn.call("GET", "k") == b"v"
        # RESET forgets the authentication.
        assert conn.call("RESET") == b"RESET"
        assert conn.call("GET", "k") == NOAUTH
        assert conn.call("AUTH", "default", PASSWORD) == b"OK"
        assert conn.call("GET", "k") == b"v"


def test_hello_auth(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        assert conn.call("HELLO", "3") == error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
        assert conn.call("HELLO", "3", "AUTH", "default", "wrong") == WRONGPASS
        assert conn.call("PING") == NOAUTH
        reply = conn.call("HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "authed")
        assert reply[b"proto"] == 3 and reply[b"server"] == b"redis"
        assert conn.call("CLIENT", "GETNAME") == b"authed"
        conn.received.clear()
        conn.call("GET", "nothing")
        assert bytes(conn.received) == b"_\r\n"  # RESP3 null: the protocol switched too


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_with_password(node: RespkvProcess, protocol: int) -> None:
    client = node.client(password=PASSWORD, protocol=protocol)
    assert client.set("py", "ok") is True and client.get("py") == b"ok"
    assert client.ping() is True
    client.close()
    with pytest.raises(redis.AuthenticationError):
        node.client(password="wrong", protocol=protocol, retry=NO_RETRY).ping()
    # Without a password: NOAUTH on the first command (RESP2) or on redis-py's HELLO 3.
    expected = "Authentication required" if protocol == 2 else "HELLO must be called with the"
    with pytest.raises(redis.AuthenticationError, match=expected):
        node.client(protocol=protocol, retry=NO_RETRY).get("py")


def test_config_set_requirepass_applies_to_new_connections(node: RespkvProcess) -> None:
    admin = node.client(password=PASSWORD)
    try:
        assert admin.config_set("requirepass", "changed") is True
        assert admin.config_get("requirepass") == {"requirepass": "changed"}
        assert admin.ping() is True  # already authenticated
        assert node.client(password="changed").ping() is True
        with pytest.raises(redis.AuthenticationError):
            node.client(password=PASSWORD, retry=NO_RETRY).ping()
    finally:
        node.client(password="changed").config_set("requirepass", PASSWORD)
    assert node.client(password=PASSWORD).ping() is True


AUTH_SCRIPTS: list[list[tuple[str, ...]]] = [
    [("GET", "k"), ("AUTH", "bad"), ("AUTH", PASSWORD), ("GET", "never-set")],
    [("HELLO", "2"), ("HELLO", "3", "AUTH", "default", "bad"), ("QUIT",)],
    [("AUTH", "a", "b", "c"), ("AUTH",), ("HELLO", "3", "AUTH", "default")],
    [("PING",), ("ECHO", "x"), ("RESET",), ("PING",)],
    [("CLIENT", "SETNAME", "x"), ("COMMAND", "COUNT"), ("SELECT", "1")],
]


@pytest.mark.parametrize("script", AUTH_SCRIPTS, ids=lambda s: "; ".join(" ".join(c) for c in s))
def test_auth_replies_match_redis(
    node: RespkvProcess, real: RealRedis, script: list[tuple[str, ...]]
) -> None:
    replies = []
    for port in (node.port, real.port):
        with RawConn(port) as conn:
            for command in script:
                conn.call(*command)
            replies.append(bytes(conn.received))
    assert replies[0] == replies[1]


def test_unauthenticated_clients_cannot_send_big_requests(
    node: RespkvProcess, real: RealRedis
) -> None:
    """Redis caps the requests of clients that have not authenticated (multibulk 10, bulk 16K)."""
    for data in (b"*11\r\n", b"*2\r\n$3\r\nGET\r\n$16385\r\n"):
        replies = []
        for port in (node.port, real.port):
            with RawConn(port) as conn:
                conn.send(data)
                replies.append(conn.read_until_closed(timeout=10))
        assert replies[0] == replies[1], data
        assert replies[0][1], "the connection must be closed"
    authed = node.client(password=PASSWORD)
    values = [str(i) * 20_000 for i in range(12)]
    assert call(authed, "MSET", *[x for i, v in enumerate(values) for x in (f"k{i}", v)])
    assert authed.mget([f"k{i}" for i in range(12)]) == [v.encode() for v in values]
    authed.close()
