"""The command table: coverage, roles, and COMMAND INFO byte-identical to redis-server 7.0.15."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
from _kv_redis import redis_server

from respkv.kv import COMMANDS, StateMachine, lookup
from respkv.kv.backend import MemoryBackend
from respkv.kv.commands import OWN_COMMANDS
from respkv.resp.encoder import encode

SERVER_SIDE = [
    "ping",
    "echo",
    "hello",
    "auth",
    "acl",
    "select",
    "quit",
    "reset",
    "client",
    "command",
    "info",
    "time",
    "lastsave",
    "shutdown",
    "bgsave",
    "respkv",
    "config",
    "cluster",
    "readonly",
    "readwrite",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "publish",
    "pubsub",
    "asking",
    "slowlog",
    "latency",
]
KV_COMMANDS = [
    "get",
    "set",
    "setnx",
    "setex",
    "psetex",
    "getset",
    "getdel",
    "getex",
    "mget",
    "mset",
    "msetnx",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "incrbyfloat",
    "append",
    "strlen",
    "getrange",
    "setrange",
    "substr",
    "del",
    "unlink",
    "exists",
    "type",
    "keys",
    "scan",
    "rename",
    "renamenx",
    "copy",
    "randomkey",
    "touch",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
    "persist",
    "dbsize",
    "flushdb",
    "flushall",
    "swapdb",
    "move",
    # hashes
    "hset",
    "hget",
    "hmset",
    "hmget",
    "hgetall",
    "hdel",
    "hexists",
    "hlen",
    "hkeys",
    "hvals",
    "hincrby",
    "hincrbyfloat",
    "hsetnx",
    "hstrlen",
    "hrandfield",
    "hscan",
    # sets
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "smismember",
    "scard",
    "spop",
    "srandmember",
    "smove",
    "sinter",
    "sunion",
    "sdiff",
    "sinterstore",
    "sunionstore",
    "sdiffstore",
    "sintercard",
    "sscan",
    # sorted sets
    "zadd",
    "zincrby",
    "zrem",
    "zscore",
    "zmscore",
    "zcard",
    "zcount",
    "zlexcount",
    "zrank",
    "zrevrank",
    "zrange",
    "zrevrange",
    "zrangebyscore",
    "zrevrangebyscore",
    "zrangebylex",
    "zrevrangebylex",
    "zrangestore",
    "zpopmin",
    "zpopmax",
    "zremrangebyrank",
    "zremrangebyscore",
    "zremrangebylex",
    "zunionstore",
    "zinterstore",
    "zrandmember",
    "zscan",
    "zunion",
    "zinter",
    "zdiff",
    "zdiffstore",
    "zintercard",
    "zmpop",
    # lists
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lpop",
    "rpop",
    "llen",
    "lrange",
    "lindex",
    "lset",
    "linsert",
    "lrem",
    "ltrim",
    "lpos",
    "lmove",
    "rpoplpush",
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
]


def test_every_command_of_the_brief_is_in_the_table() -> None:
    assert set(COMMANDS) == set(SERVER_SIDE) | set(KV_COMMANDS)


def test_server_side_commands_have_no_handler() -> None:
    for name in SERVER_SIDE:
        assert COMMANDS[name].server_side, name
    for name in KV_COMMANDS:
        assert not COMMANDS[name].server_side, name


def test_lookup_is_case_insensitive_and_never_finds_internal_commands() -> None:
    assert lookup(b"GET") is lookup(b"get") is lookup(b"gEt") is COMMANDS["get"]
    assert lookup(b"#expire") is None
    assert lookup(b"nosuch") is None


def test_write_and_read_roles_follow_redis_flags() -> None:
    writes = {n for n in KV_COMMANDS if COMMANDS[n].is_write}
    assert "set" in writes and "getex" in writes and "flushall" in writes and "swapdb" in writes
    assert "get" not in writes and "touch" not in writes and "scan" not in writes
    for name in KV_COMMANDS:
        spec = COMMANDS[name]
        assert spec.is_write != ("readonly" in spec.flags), name
        assert (spec.prepare is None) or spec.is_write, name
        assert StateMachine.is_write(name) == spec.is_write


def test_key_positions() -> None:
    assert COMMANDS["mset"].key_positions(5) == [1, 3]
    assert COMMANDS["del"].key_positions(4) == [1, 2, 3]
    assert COMMANDS["rename"].key_positions(3) == [1, 2]
    assert COMMANDS["keys"].key_positions(2) == []


def test_arity_errors_match_redis_text() -> None:
    sm = StateMachine(MemoryBackend())
    assert sm.read([b"GET"], 0, 0).message == "ERR wrong number of arguments for 'get' command"
    reply = sm.prepare_write([b"SET", b"k"], 0, 0)
    assert reply.message == "ERR wrong number of arguments for 'set' command"  # type: ignore[union-attr]


# -- against a live redis-server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


def _raw_reply(sock: socket.socket, *args: str) -> bytes:
    sock.sendall(
        b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    )
    reader = hiredis.Reader()
    data = b""
    while True:
        chunk = sock.recv(1 << 16)
        data += chunk
        reader.feed(chunk)
        if reader.gets() is not False:
            return data


def _sorted_subcommands(reply: list[Any]) -> list[Any]:
    return [*reply[:9], sorted(reply[9], key=lambda e: e[0])]


@pytest.mark.parametrize("protocol", [2, 3])
def test_command_info_is_byte_identical_to_redis(redis_port: int, protocol: int) -> None:
    with socket.create_connection(("127.0.0.1", redis_port)) as sock:
        if protocol == 3:
            _raw_reply(sock, "HELLO", "3")
        own = {row[0] for row in OWN_COMMANDS}
        for name, spec in COMMANDS.items():
            theirs = _raw_reply(sock, "COMMAND", "INFO", name)
            if name in own:
                assert theirs in (b"*1\r\n$-1\r\n", b"*1\r\n_\r\n"), f"Redis has {name} now"
                continue
            ours = encode([spec.info()], protocol)
            if not spec.subcommands:
                assert ours == theirs, name
                continue
            # Redis lists subcommands in hash order: compare them sorted.
            reader = hiredis.Reader()
            reader.feed(theirs)
            their_entry = reader.gets()[0]
            reader.feed(ours)
            our_entry = reader.gets()[0]
            assert _sorted_subcommands(our_entry) == _sorted_subcommands(their_entry), name


GETKEYS_CASES = [
    "get k",
    "mset a 1 b 2 c 3",
    "del a b c",
    "rename a b",
    "smove src dst m",
    "sintercard 2 a b",
    "sintercard 3 a b c limit 5",
    "sinterstore dst a b",
    "zunionstore dst 2 a b weights 1 2",
    "zinterstore dst 3 a b c aggregate min",
    "zunion 2 a b withscores",
    "zinter 1 a",
    "zdiff 2 a b",
    "zdiffstore dst 2 a b",
    "zintercard 2 a b limit 1",
    "lmpop 2 a b left count 2",
    "blmpop 0 2 a b right",
    "zmpop 2 a b min",
    "bzmpop 1 3 a b c max count 1",
    "lmove a b left right",
    "blmove a b left right 0",
    "blpop a b c 0",
    "bzpopmin a b 1",
    "zrangestore dst src 0 -1",
]


def test_key_indexes_match_redis_command_getkeys(redis_port: int) -> None:
    """Movable keys (numkeys arguments) included: ACL key patterns and MOVED use them."""
    checked = 0
    with socket.create_connection(("127.0.0.1", redis_port)) as sock:
        for case in GETKEYS_CASES:
            argv = case.split()
            spec = lookup(argv[0].encode())
            if spec is None:
                continue  # not a command of this table (yet)
            reader = hiredis.Reader()
            reader.feed(_raw_reply(sock, "COMMAND", "GETKEYS", *argv))
            theirs = reader.gets()
            ours = [argv[i].encode() for i in spec.key_indexes([a.encode() for a in argv])]
            assert ours == theirs, case
            checked += 1
    assert checked >= 8
