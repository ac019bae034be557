"""Connection and server commands (HELLO, CLIENT, COMMAND, INFO, CONFIG, ...) of a real respkv.

Replies are compared with Redis 7.0.15's, on the wire where the exact text matters.
"""

from __future__ import annotations

import time

import pytest
import redis

from tests._server_util import (
    RawConn,
    RealRedis,
    bare,
    call,
    error,
    wait_until,
)
from tests.respkv_proc import RespkvProcess

pytestmark = pytest.mark.integration


# --- HELLO -----------------------------------------------------------------------------------


def test_hello_reply_shape(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.send(b"HELLO 3\r\n")
        first = conn.read_reply()
        raw3 = bytes(conn.received)
        assert raw3.startswith(
            b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15"
        )
        assert first == {
            b"server": b"redis",
            b"version": b"7.0.15",
            b"proto": 3,
            b"id": first[b"id"],
            b"mode": b"standalone",
            b"role": b"master",
            b"modules": [],
        }
        assert conn.call("CLIENT", "ID") == first[b"id"]
        # Back to RESP2: a flat array with the same fields in the same order.
        conn.received.clear()
        second = conn.call("HELLO", "2")
        assert bytes(conn.received).startswith(b"*14\r\n$6\r\nserver\r\n")
        assert second[::2] == [b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"]
        assert second[5] == 2 and second[7] == first[b"id"] and second[13] == []
        assert conn.call("HELLO", "4") == error("NOPROTO unsupported protocol version")
        assert conn.call("HELLO", "x") == error(
            "ERR Protocol version is not an integer or out of range"
        )
        assert conn.call("HELLO", "3", "SETNAME", "hello-name")[b"proto"] == 3
        assert conn.call("CLIENT", "GETNAME") == b"hello-name"


def test_hello_with_redis_py(node: RespkvProcess, protocol: int) -> None:
    client = bare(node.port, protocol)
    reply = call(client, "HELLO", protocol)
    if protocol == 3:
        assert isinstance(reply, dict) and reply[b"proto"] == 3
        assert set(reply) == {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"}
    else:
        assert isinstance(reply, list) and reply[reply.index(b"proto") + 1] == 2
    client.close()


# --- CLIENT ----------------------------------------------------------------------------------


def test_client_id_name_info_list(r: redis.Redis, node: RespkvProcess) -> None:
    my_id = r.client_id()
    assert isinstance(my_id, int) and my_id > 0
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() in ("worker-1", b"worker-1")
    with pytest.raises(redis.ResponseError, match="Client names cannot contain spaces"):
        r.client_setname("bad name")
    info = r.client_info()
    assert int(info["id"]) == my_id and info["name"] == "worker-1" and int(info["db"]) == 0
    with node.client(db=2) as other:
        other.client_setname("other")
        other_id = other.client_id()
        listed = {int(c["id"]): c for c in r.client_list()}
        assert my_id in listed and other_id in listed
        assert listed[other_id]["name"] == "other" and int(listed[other_id]["db"]) == 2
        only = r.client_list(client_id=[other_id])
        assert [int(c["id"]) for c in only] == [other_id]
        assert r.client_list(_type="pubsub") == []


def test_client_kill(node: RespkvProcess) -> None:
    with RawConn(node.port) as me, RawConn(node.port) as victim, RawConn(node.port) as bystander:
        victim_id = victim.call("CLIENT", "ID")
        my_id = me.call("CLIENT", "ID")
        assert bystander.call("PING") == b"PONG"
        assert me.call("CLIENT", "KILL", "ID", str(victim_id)) == 1
        assert victim.read_until_closed(timeout=10) == (b"", True)
        assert me.call("CLIENT", "KILL", "ID", str(victim_id)) == 0
        # SKIPME is yes by default: a client does not kill itself by filter.
        assert me.call("CLIENT", "KILL", "ID", str(my_id)) == 0
        assert me.call("CLIENT", "KILL", "ID", "0") == error(
            "ERR client-id should be greater than 0"
        )
        assert me.call("CLIENT", "KILL", "TYPE", "bogus") == error(
            "ERR Unknown client type 'bogus'"
        )
        assert me.call("CLIENT", "KILL", "ID", "5", "SKIPME", "maybe") == error("ERR syntax error")
        assert me.call("CLIENT", "KILL", "1.2.3.4:5") == error("ERR No such client")
        # Old form, by address.
        addr = bystander.call("CLIENT", "INFO").split()[1].split(b"=")[1]
        assert me.call("CLIENT", "KILL", addr) == b"OK"
        assert bystander.read_until_closed(timeout=10) == (b"", True)
        assert me.call("PING") == b"PONG"


CLIENT_ERRORS: list[tuple[str, ...]] = [
    ("CLIENT",),
    ("CLIENT", "NOSUCH"),
    ("CLIENT", "ID", "x"),
    ("CLIENT", "GETNAME", "x"),
    ("CLIENT", "SETNAME"),
    ("CLIENT", "SETNAME", "a b"),
    ("CLIENT", "INFO", "x"),
    ("CLIENT", "LIST", "TYPE", "bogus"),
    ("CLIENT", "LIST", "ID", "abc"),
    ("CLIENT", "LIST", "FOO"),
    ("CLIENT", "LIST", "ID", "999999"),
    ("CLIENT", "KILL", "FOO", "bar"),
    ("CLIENT", "KILL", "ID", "-1"),
    ("CLIENT", "KILL", "USER", "nobody"),
    ("CLIENT", "KILL", "ID", "999999", "ID"),
    ("CLIENT", "NO-EVICT", "maybe"),
    ("CLIENT", "NO-EVICT", "on"),
    ("CLIENT", "REPLY", "sometimes"),
    ("COMMAND", "NOSUCH"),
    ("COMMAND", "COUNT", "x"),
    ("COMMAND", "GETKEYS"),
    ("COMMAND", "GETKEYS", "GET"),
    ("COMMAND", "GETKEYS", "NOSUCH", "a"),
    ("COMMAND", "GETKEYS", "SET", "k"),
    ("COMMAND", "GETKEYS", "PING", "x"),
    ("COMMAND", "GETKEYS", "TIME", "x"),
    ("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"),
    ("COMMAND", "GETKEYS", "COPY", "a", "b", "DB", "2"),
    ("COMMAND", "GETKEYS", "SINTERCARD", "2", "a", "b", "LIMIT", "1"),
    ("COMMAND", "GETKEYS", "SINTERCARD", "0", "a"),
    ("COMMAND", "GETKEYS", "SINTERCARD", "x", "a"),
    ("SHUTDOWN", "ABORT"),
    ("SHUTDOWN", "BOGUS"),
    ("SHUTDOWN", "NOSAVE", "SAVE"),
    ("SHUTDOWN", "ABORT", "NOW"),
    ("COMMAND", "LIST", "FILTERBY", "MODULE", "json"),
    ("COMMAND", "LIST", "FILTERBY", "NOSUCH", "x"),
    ("COMMAND", "LIST", "extra"),
    ("COMMAND", "INFO", "get", "nosuchcommand", "set"),
    ("CONFIG",),
    ("CONFIG", "NOSUCH"),
    ("CONFIG", "GET"),
    ("CONFIG", "SET", "maxmemory"),
    ("CONFIG", "SET", "no-such-parameter", "1"),
    ("CONFIG", "SET", "maxclients", "abc"),
    ("CONFIG", "SET", "maxclients", "0"),
    ("CONFIG", "SET", "loglevel", "loud"),
    ("CONFIG", "GET", "no-such-parameter"),
    ("CONFIG", "GET", "maxmemory-policy"),
    ("CONFIG", "GET", "hash-max-listpack-entries"),
    ("CONFIG", "GET", "zset-max-listpack-value"),
    ("ECHO",),
    ("ECHO", "a", "b"),
    ("ECHO", "hello"),
    ("PING", "a", "b"),
    ("PING", "message"),
    ("TIME", "x"),
    ("LASTSAVE", "x"),
    ("SELECT",),
    ("AUTH", "x"),
    ("AUTH", "a", "b", "c"),
    ("HELLO", "3", "AUTH", "default"),
    ("HELLO", "3", "NOSUCH"),
    ("RESET", "x"),
    ("QUIT", "x"),
]


@pytest.mark.parametrize("command", CLIENT_ERRORS, ids=[" ".join(c) for c in CLIENT_ERRORS])
def test_server_command_replies_match_redis(
    node: RespkvProcess, real: RealRedis, protocol: int, command: tuple[str, ...]
) -> None:
    """Byte-for-byte the same reply as redis-server 7.0.15 (errors and simple answers)."""
    replies = []
    for port in (node.port, real.port):
        with RawConn(port) as conn:
            conn.call("HELLO", protocol)
            conn.received.clear()
            conn.call(*command)
            replies.append(bytes(conn.received))
    assert replies[0] == replies[1], f"respkv {replies[0]!r} != redis {replies[1]!r}"


# --- COMMAND ---------------------------------------------------------------------------------


def test_command_introspection(r: redis.Redis, node: RespkvProcess, protocol: int) -> None:
    count = r.command_count()
    raw = bare(node.port, protocol)
    try:
        names = call(raw, "COMMAND", "LIST")
        assert {b"get", b"set", b"scan", b"hello", b"client|list"} <= set(names)
        assert count == len([n for n in names if b"|" not in n]) >= 59
        assert len(call(raw, "COMMAND")) == count
        assert call(raw, "COMMAND", "GETKEYS", "SET", "k", "v") == [b"k"]
        assert call(raw, "COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == [b"a", b"b"]
        strings = call(raw, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "string")
        assert b"incrbyfloat" in strings and b"del" not in strings
        assert sorted(call(raw, "COMMAND", "LIST", "FILTERBY", "PATTERN", "GET*")) == [
            b"get",
            b"getdel",
            b"getex",
            b"getrange",
            b"getset",
        ]
        docs = call(raw, "COMMAND", "DOCS", "get")
        if protocol == 2:
            assert docs[0] == b"get"
            fields = docs[1]
            docs = {b"get": dict(zip(fields[::2], fields[1::2], strict=True))}
        assert docs[b"get"][b"group"] == b"string" and b"summary" in docs[b"get"]
    finally:
        raw.close()
    info = call(r, "COMMAND", "INFO", "get", "incr")
    get, incr = info["get"], info["incr"]
    assert get["arity"] == 2 and set(get["flags"]) == {"readonly", "fast"}
    assert (get["first_key_pos"], get["last_key_pos"], get["step_count"]) == (1, 1, 1)
    assert incr["arity"] == 2 and set(incr["flags"]) == {"write", "denyoom", "fast"}


def test_command_info_matches_redis(node: RespkvProcess, real: RealRedis, protocol: int) -> None:
    for name in (
        "get",
        "set",
        "mset",
        "scan",
        "ping",
        "expire",
        "incrbyfloat",
    ):  # no subcommands: Redis lists those in hash order
        replies = []
        for port in (node.port, real.port):
            with RawConn(port) as conn:
                conn.call("HELLO", protocol)
                conn.received.clear()
                conn.call("COMMAND", "INFO", name)
                replies.append(bytes(conn.received))
        assert replies[0] == replies[1], name


# --- INFO ------------------------------------------------------------------------------------


def test_info_sections(r: redis.Redis, node: RespkvProcess) -> None:
    server = r.info("server")
    assert server["redis_version"] == "7.0.15"
    assert "respkv_version" in server and server["tcp_port"] == node.port
    assert server["redis_mode"] == "standalone"
    everything = r.info()
    for field in ("connected_clients", "used_memory", "loading", "total_commands_processed"):
        assert field in everything, field
    assert everything["role"] == "master"
    raft = r.info("raft")
    assert raft["raft_role"] == "leader" and raft["raft_node_id"] == 1
    assert raft["raft_leader_id"] == 1 and raft["raft_term"] >= 1
    assert str(raft["raft_voters"]) == "1"
    r.set("bump", 1)
    after = r.info("raft")
    assert after["raft_applied_index"] >= raft["raft_applied_index"] + 1
    assert after["raft_commit_index"] >= after["raft_applied_index"]
    # Several sections at once, unknown ones ignored (as Redis does).
    both = call(r, "INFO", "clients", "raft")
    assert "connected_clients" in both and "raft_term" in both
    assert call(r, "INFO", "nosuchsection") == {}
    raw = bare(node.port)
    text = call(raw, "INFO", "server")
    assert text.startswith(b"# Server\r\nredis_version:7.0.15\r\n")
    raw.close()


def test_stats_count_commands(r: redis.Redis) -> None:
    before = r.info("stats")["total_commands_processed"]
    for _ in range(5):
        r.ping()
    assert r.info("stats")["total_commands_processed"] >= before + 5
    assert r.config_resetstat() is True
    assert r.info("stats")["total_commands_processed"] <= 2


# --- CONFIG ----------------------------------------------------------------------------------


def test_config_get_set(r: redis.Redis, node: RespkvProcess) -> None:
    assert r.config_get("port") == {"port": str(node.port)}
    assert r.config_get("databases") == {"databases": "16"}
    assert r.config_get("maxclients") == {"maxclients": "10000"}
    # Honoured: maxclients changes what INFO reports.
    assert r.config_set("maxclients", "5000") is True
    assert r.config_get("maxclients") == {"maxclients": "5000"}
    assert r.info("clients")["maxclients"] == 5000
    r.config_set("maxclients", "10000")
    # Ignored Redis parameters are accepted and echoed back.
    assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": "512"}
    assert r.config_set("hash-max-listpack-entries", "256") is True
    assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": "256"}
    r.config_set("hash-max-listpack-entries", "512")
    assert r.config_set("save", "") is True and r.config_get("save") == {"save": ""}
    assert r.config_get("maxmemory*") == {
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "maxmemory-samples": "5",
    }
    with pytest.raises(redis.ResponseError) as info:
        r.config_set("no-such-thing", "1")
    assert (
        str(info.value) == "Unknown option or number of arguments for CONFIG SET - 'no-such-thing'"
    )
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("databases", "4")
    assert r.config_get("no-such-thing") == {}


def test_config_loglevel_is_honoured(r: redis.Redis) -> None:
    assert r.config_set("loglevel", "warning") is True
    assert r.config_get("loglevel") == {"loglevel": "warning"}
    assert r.config_set("loglevel", "notice") is True
    assert r.config_get("loglevel") == {"loglevel": "notice"}


# --- TIME, LASTSAVE, ECHO, PING, QUIT, RESET -------------------------------------------------


def test_time_lastsave_echo_ping(r: redis.Redis, protocol: int) -> None:
    seconds, micros = r.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 5 and 0 <= micros < 1_000_000
    lastsave = r.lastsave()
    assert abs(lastsave.timestamp() - time.time()) < 3600
    assert r.echo("hello world") == b"hello world"
    assert r.echo(b"\x00\xff") == b"\x00\xff"
    assert r.ping() is True
    raw = bare(r.connection_pool.connection_kwargs["port"], protocol)
    assert call(raw, "PING", "hi") == b"hi"
    raw.close()


def test_quit_closes_after_reply(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.send(b"PING\r\nQUIT\r\nPING\r\n")
        data, closed = conn.read_until_closed(timeout=10)
        assert closed and data == b"+PONG\r\n+OK\r\n"


def test_reset_restores_connection_state(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.call("HELLO", "3")
        conn.call("SELECT", "4")
        conn.call("CLIENT", "SETNAME", "named")
        conn.received.clear()
        assert conn.call("RESET") == b"RESET"
        assert bytes(conn.received) == b"+RESET\r\n"
        assert conn.call("CLIENT", "GETNAME") is None
        info = conn.call("CLIENT", "INFO")
        assert b" db=0 " in info and b" resp=2 " in info
        conn.received.clear()
        conn.call("GET", "nothing")
        assert bytes(conn.received) == b"$-1\r\n"  # RESP2 again


def test_pipelined_connection_commands_keep_order(node: RespkvProcess) -> None:
    with RawConn(node.port) as conn:
        conn.send(
            b"SET a 1\r\nSELECT 1\r\nGET a\r\nSELECT 0\r\nGET a\r\nECHO x\r\nINCR a\r\nPING\r\n"
        )
        assert conn.read_replies(8) == [b"OK", b"OK", None, b"OK", b"1", b"x", 2, b"PONG"]


def test_idle_clients_are_counted(node: RespkvProcess, r: redis.Redis) -> None:
    base = r.info("clients")["connected_clients"]
    conns = [RawConn(node.port) for _ in range(5)]
    try:
        for conn in conns:
            assert conn.call("PING") == b"PONG"
        assert r.info("clients")["connected_clients"] >= base + 5
    finally:
        for conn in conns:
            conn.close()
    wait_until(
        lambda: r.info("clients")["connected_clients"] <= base,
        timeout=10,
        what="closed clients to be forgotten",
    )
