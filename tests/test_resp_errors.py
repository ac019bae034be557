"""Error replies: our texts, and the same texts produced by a real redis-server 7.0."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _resp_redis import RedisServer, redis_server

from respkv.resp import errors
from respkv.resp.encoder import encode
from respkv.resp.errors import ProtocolError
from respkv.resp.parser import RequestParser
from respkv.resp.replies import ErrorReply


def test_constructors() -> None:
    assert errors.wrong_arity("get").message == "ERR wrong number of arguments for 'get' command"
    assert errors.invalid_expire_time("set").message == "ERR invalid expire time in 'set' command"
    assert errors.unknown_command(b"foo", [b"a", b"b"]).message == (
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    )
    assert errors.unknown_command(b"foo", []).message == (
        "ERR unknown command 'foo', with args beginning with: "
    )
    assert errors.unknown_subcommand(b"config", b"foo").message == (
        "ERR unknown subcommand 'foo'. Try CONFIG HELP."
    )


def test_unknown_command_cuts_like_redis() -> None:
    reply = errors.unknown_command(b"foo\x00bar", [b"a\x00b", b"c\r\nd"])
    assert reply.message == "ERR unknown command 'foo', with args beginning with: 'a' 'c  d' "
    reply = errors.unknown_command(b"foo", [b"a" * 100, b"b" * 100, b"c"])
    assert reply.message.endswith("'" + "a" * 100 + "' '" + "b" * 25 + "' ")
    assert encode(errors.unknown_command(b"foo", [b"\xff\xfe"]), 2) == (
        b"-ERR unknown command 'foo', with args beginning with: '\xff\xfe' \r\n"
    )


def test_protocol_error_reply() -> None:
    error = ProtocolError("Protocol error: invalid bulk length")
    assert error.reply is not None
    assert encode(error.reply, 2) == b"-ERR Protocol error: invalid bulk length\r\n"
    assert ProtocolError("query buffer limit", send_reply=False).reply is None


# --- against a real redis-server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _our_bytes(data: bytes) -> tuple[bytes, bool]:
    """What respkv would write for `data` when every command is unknown, and whether it closes."""
    parser = RequestParser()
    parser.feed(data)
    out = b""
    try:
        while commands := parser.get_commands():
            for command in commands:
                out += encode(errors.unknown_command(command[0], command[1:]), 2)
    except ProtocolError as error:
        assert error.reply is not None
        return out + encode(error.reply, 2), True
    return out, False


PROTOCOL_CASES = [
    b"*2\r\n+PING\r\n:1\r\n",
    b"*1\r\n$-1\r\n",
    b"*1\r\n*-1\r\n",
    b"*1\r\n_\r\n",
    b"*1\r\n\xff\r\n",
    b"*1\r\n\r\n",
    b"*1\r\n$04\r\nxxxx\r\n",
    b"*01\r\n",
    b"*x\r\n",
    b"*2147483648\r\n",
    b"*1\r\n$536870913\r\n",
    b"*" + b"1" * 70000,
    b"*1\r\n$" + b"1" * 70000,
    b"x" * 70000,
    b'xfoo "abc\r\n',
    b"xfoo 'a'b\r\n",
    b"*0\r\n*-1\r\n*-7\r\n\r\nxa b\r\n*2\r\n$2\r\nxb\r\n$1\r\nc\r\n",
    b"xa b\r\n*1\r\n$2\r\nxc\r\n=8\r\ntxt:abcd\r\n:1\r\n",
    b"xecho \"a\\x41\\n\\q\" 'b\\'c' d\te\x0bf\r\n",
    b"*1\r\n$2\r\nxyZZ*1\r\n$2\r\nxz\r\n",
    b"*2\r\n$2\r\nxa\r\n*1\r\n$1\r\nb\r\n",
    b"*3\r\n$2\r\nxa\r\n$1\r\nb\r\n:5\r\n",
    b"+x\r\n~1\r\n$1\r\na\r\n",
]


@pytest.mark.parametrize("data", PROTOCOL_CASES, ids=lambda d: repr(d[:30]))
def test_protocol_errors_match_real_redis(redis: RedisServer, data: bytes) -> None:
    # Every command sent is unknown to Redis ('x' prefix), so Redis's replies are errors that
    # echo the parsed arguments: a byte-exact check of how both sides split the stream.
    assert redis.raw(data) == _our_bytes(data)


COMMAND_CASES = [
    ([b"GET"], errors.wrong_arity("get")),
    ([b"CONFIG", b"GET"], errors.wrong_arity("config|get")),
    ([b"SET", b"k", b"v", b"EX", b"0"], errors.invalid_expire_time("set")),
    ([b"SET", b"k", b"v", b"XX", b"NX"], errors.SYNTAX),
    ([b"INCRBYFLOAT", b"s", b"x"], errors.NOT_FLOAT),
    ([b"INCRBY", b"s", b"x"], errors.NOT_INTEGER),
    ([b"RENAME", b"nokey", b"x"], errors.NO_SUCH_KEY),
    ([b"SELECT", b"99"], errors.DB_INDEX_OUT_OF_RANGE),
    ([b"AUTH", b"x"], errors.AUTH_NOT_CONFIGURED),
    ([b"HELLO", b"4"], errors.NOPROTO),
    ([b"HELLO", b"x"], errors.PROTOCOL_VERSION_NOT_INTEGER),
    ([b"EXEC"], errors.EXEC_WITHOUT_MULTI),
    ([b"DISCARD"], errors.DISCARD_WITHOUT_MULTI),
    ([b"CONFIG", b"fOo"], errors.unknown_subcommand(b"CONFIG", b"fOo")),
    ([b"foo", b"a", b"b"], errors.unknown_command(b"foo", [b"a", b"b"])),
    ([b"SETRANGE", b"k", b"-1", b"x"], errors.OFFSET_OUT_OF_RANGE),
    ([b"SETRANGE", b"k", b"600000000", b"x"], errors.STRING_TOO_LONG),
    ([b"SETBIT", b"k", b"-1", b"1"], errors.BIT_OFFSET),
    ([b"SCAN", b"x"], errors.INVALID_CURSOR),
    ([b"BLPOP", b"a", b"x"], errors.TIMEOUT_NOT_FLOAT),
    ([b"BLPOP", b"a", b"-1"], errors.TIMEOUT_NEGATIVE),
    ([b"ZRANGEBYSCORE", b"z", b"x", b"1"], errors.MIN_MAX_NOT_FLOAT),
    ([b"SPOP", b"s2", b"-1"], errors.VALUE_OUT_OF_RANGE_POSITIVE),
]


@pytest.mark.parametrize(("command", "expected"), COMMAND_CASES, ids=lambda c: repr(c)[:40])
def test_command_errors_match_real_redis(
    redis: RedisServer, command: list[bytes], expected: ErrorReply
) -> None:
    assert redis.command(*command) == encode(expected, 2)


def test_stateful_errors_match_real_redis(redis: RedisServer) -> None:
    redis.command(b"DEL", b"k", b"l", b"n", b"h")
    redis.command(b"LPUSH", b"l", b"a")
    assert redis.command(b"GET", b"l") == encode(errors.WRONGTYPE, 2)
    assert redis.command(b"LSET", b"l", b"5", b"x") == encode(errors.INDEX_OUT_OF_RANGE, 2)
    redis.command(b"SET", b"n", b"9223372036854775807")
    assert redis.command(b"INCR", b"n") == encode(errors.OVERFLOW, 2)
    assert redis.command(b"INCRBYFLOAT", b"n", b"inf") == encode(errors.INCR_NAN_OR_INF, 2)
    redis.command(b"HSET", b"h", b"f", b"x")
    assert redis.command(b"HINCRBY", b"h", b"f", b"1") == encode(errors.HASH_VALUE_NOT_INTEGER, 2)
    assert redis.command(b"HINCRBYFLOAT", b"h", b"f", b"1") == encode(
        errors.HASH_VALUE_NOT_FLOAT, 2
    )
    multi = b"*1\r\n$5\r\nMULTI\r\n"
    reply, _ = redis.raw(
        multi * 2 + b"*2\r\n$5\r\nWATCH\r\n$1\r\nx\r\n*1\r\n$3\r\nfoo\r\n" + b"*1\r\n$4\r\nEXEC\r\n"
    )
    assert reply == b"+OK\r\n" + encode(errors.MULTI_NESTED, 2) + encode(
        errors.WATCH_INSIDE_MULTI, 2
    ) + encode(errors.unknown_command(b"foo", []), 2) + encode(errors.EXECABORT, 2)  # fmt: skip


def test_auth_errors_match_real_redis(redis: RedisServer) -> None:
    assert redis.command(b"CONFIG", b"SET", b"requirepass", b"secret") == b"+OK\r\n"
    try:
        assert redis.command(b"GET", b"k") == encode(errors.NOAUTH, 2)
        assert redis.command(b"AUTH", b"wrong") == encode(errors.WRONGPASS, 2)
        big = b"*11\r\n"
        reply, closed = redis.raw(big)
        assert (reply, closed) == (
            b"-ERR Protocol error: unauthenticated multibulk length\r\n",
            True,
        )
        parser = RequestParser()
        parser.auth_required = True
        parser.feed(big)
        with pytest.raises(ProtocolError) as info:
            parser.get_commands()
        assert info.value.reply is not None
        assert encode(info.value.reply, 2) == reply
        data = b"*2\r\n$3\r\nGET\r\n$16385\r\n"
        reply, closed = redis.raw(data)
        assert closed
        parser = RequestParser()
        parser.auth_required = True
        parser.feed(data)
        with pytest.raises(ProtocolError) as info:
            parser.get_commands()
        assert info.value.reply is not None
        assert encode(info.value.reply, 2) == reply
    finally:
        redis.raw(
            b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"
            b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nrequirepass\r\n$0\r\n\r\n"
        )
