"""String commands on MemoryBackend, through prepare_write + apply and read."""

from __future__ import annotations

import pytest
from _kv_redis import Driver, normalize

from respkv.resp.replies import OK, ErrorReply

NOW = 1_700_000_000_000


@pytest.fixture
def kv() -> Driver:
    return Driver()


def call(kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW) -> object:
    return normalize(kv.call(list(args), db, now))


def err(message: str) -> tuple[str, str]:
    return ("error", message)


def test_get_set_basics(kv: Driver) -> None:
    assert call(kv, "GET", "k") is None
    assert call(kv, "SET", "k", "v") == b"OK"
    assert call(kv, "get", "k") == b"v"
    assert call(kv, "SET", "k", "") == b"OK"
    assert call(kv, "GET", "k") == b""
    assert call(kv, "SET", b"\x00\xff", b"\r\n") == b"OK"
    assert call(kv, "GET", b"\x00\xff") == b"\r\n"


def test_set_options(kv: Driver) -> None:
    assert call(kv, "SET", "k", "1", "NX") == b"OK"
    assert call(kv, "SET", "k", "2", "NX") is None
    assert call(kv, "SET", "k", "3", "XX") == b"OK"
    assert call(kv, "SET", "missing", "3", "XX") is None
    assert call(kv, "SET", "k", "4", "GET") == b"3"
    assert call(kv, "SET", "k", "5", "NX", "GET") == b"4"  # NX fails, GET still answers
    assert call(kv, "GET", "k") == b"4"
    assert call(kv, "SET", "new", "x", "XX", "GET") is None
    assert call(kv, "SET", "k", "v", "EX", "10", "PX", "100") == err("ERR syntax error")
    assert call(kv, "SET", "k", "v", "NX", "XX") == err("ERR syntax error")
    assert call(kv, "SET", "k", "v", "KEEPTTL", "EX", "1") == err("ERR syntax error")
    assert call(kv, "SET", "k", "v", "EX") == err("ERR syntax error")
    assert call(kv, "SET", "k", "v", "PERSIST") == err("ERR syntax error")
    assert call(kv, "SET", "k", "v", "EX", "0") == err("ERR invalid expire time in 'set' command")
    assert call(kv, "SET", "k", "v", "EX", "x") == err(
        "ERR value is not an integer or out of range"
    )
    assert call(kv, "SET", "k", "v", "EX", "9223372036854775807") == err(
        "ERR invalid expire time in 'set' command"
    )


def test_set_expiry_variants(kv: Driver) -> None:
    assert call(kv, "SET", "k", "v", "EX", "10") == b"OK"
    assert call(kv, "PTTL", "k") == 10_000
    assert call(kv, "SET", "k", "v", "PX", "1500") == b"OK"
    assert call(kv, "PTTL", "k") == 1500
    assert call(kv, "SET", "k", "v", "EXAT", str(NOW // 1000 + 20)) == b"OK"
    assert call(kv, "PEXPIRETIME", "k") == (NOW // 1000 + 20) * 1000
    assert call(kv, "SET", "k", "v", "PXAT", str(NOW + 7)) == b"OK"
    assert call(kv, "PTTL", "k") == 7
    assert call(kv, "SET", "k", "w", "KEEPTTL") == b"OK"
    assert call(kv, "PTTL", "k") == 7
    assert call(kv, "SET", "k", "w") == b"OK"  # a plain SET clears the TTL
    assert call(kv, "TTL", "k") == -1


def test_set_exat_in_the_past_stores_an_expired_key(kv: Driver) -> None:
    assert call(kv, "SET", "k", "v", "EXAT", "1") == b"OK"
    assert call(kv, "GET", "k") is None
    assert call(kv, "EXISTS", "k") == 0
    assert call(kv, "DBSIZE") == 1  # like Redis: counted until the expiry deletes it
    assert kv.sm.expired_keys(NOW, 10) == [(0, b"k")]


def test_setnx_setex_psetex(kv: Driver) -> None:
    assert call(kv, "SETNX", "k", "1") == 1
    assert call(kv, "SETNX", "k", "2") == 0
    assert call(kv, "SETEX", "k", "5", "v") == b"OK"
    assert call(kv, "TTL", "k") == 5
    assert call(kv, "PSETEX", "k", "5", "v") == b"OK"
    assert call(kv, "PTTL", "k") == 5
    assert call(kv, "SETEX", "k", "0", "v") == err("ERR invalid expire time in 'setex' command")
    assert call(kv, "PSETEX", "k", "-1", "v") == err("ERR invalid expire time in 'psetex' command")
    assert call(kv, "SETEX", "k", "x", "v") == err("ERR value is not an integer or out of range")


def test_getset_getdel_getex(kv: Driver) -> None:
    assert call(kv, "GETSET", "k", "1") is None
    assert call(kv, "SET", "k", "1", "EX", "100") == b"OK"
    assert call(kv, "GETSET", "k", "2") == b"1"
    assert call(kv, "TTL", "k") == -1  # GETSET drops the TTL
    assert call(kv, "GETDEL", "k") == b"2"
    assert call(kv, "GETDEL", "k") is None
    assert call(kv, "SET", "k", "v") == b"OK"
    assert call(kv, "GETEX", "k", "EX", "100") == b"v"
    assert call(kv, "TTL", "k") == 100
    assert call(kv, "GETEX", "k", "PERSIST") == b"v"
    assert call(kv, "TTL", "k") == -1
    assert call(kv, "GETEX", "k", "PXAT", str(NOW + 50)) == b"v"
    assert call(kv, "PTTL", "k") == 50
    assert call(kv, "GETEX", "k") == b"v"
    assert call(kv, "PTTL", "k") == 50
    assert call(kv, "GETEX", "k", "EXAT", "1") == b"v"  # in the past: deleted after replying
    assert call(kv, "EXISTS", "k") == 0
    assert call(kv, "DBSIZE") == 0


def test_getex_errors_depend_on_the_key_like_redis(kv: Driver) -> None:
    assert call(kv, "GETEX", "k", "EX", "0") is None  # no key: Redis answers nil first
    assert call(kv, "GETEX", "k", "PERSIST", "EX", "1") == err("ERR syntax error")
    assert call(kv, "GETEX", "k", "NX") == err("ERR syntax error")
    call(kv, "SET", "k", "v")
    assert call(kv, "GETEX", "k", "EX", "0") == err("ERR invalid expire time in 'getex' command")
    assert call(kv, "GETEX", "k", "EX", "no") == err("ERR value is not an integer or out of range")
    # With state checks the error is found before the log.
    assert kv.sm.prepare_write([b"GETEX", b"k", b"EX", b"0"], 0, NOW, check_state=True) == (
        ErrorReply("ERR invalid expire time in 'getex' command")
    )


def test_mget_mset_msetnx(kv: Driver) -> None:
    assert call(kv, "MSET", "a", "1", "b", "2") == b"OK"
    assert call(kv, "MGET", "a", "b", "c") == [b"1", b"2", None]
    assert call(kv, "MSET", "a", "1", "b") == err(
        "ERR wrong number of arguments for 'mset' command"
    )
    assert call(kv, "MSETNX", "c", "3", "a", "x") == 0
    assert call(kv, "GET", "c") is None
    assert call(kv, "MSETNX", "c", "3", "d", "4") == 1
    assert call(kv, "MSETNX", "e", "1", "e", "2") == 1
    assert call(kv, "GET", "e") == b"2"
    assert call(kv, "DBSIZE") == 5
    assert call(kv, "MSETNX", "x") == err("ERR wrong number of arguments for 'msetnx' command")


def test_incr_family(kv: Driver) -> None:
    assert call(kv, "INCR", "n") == 1
    assert call(kv, "INCRBY", "n", "41") == 42
    assert call(kv, "DECR", "n") == 41
    assert call(kv, "DECRBY", "n", "-9") == 50
    assert call(kv, "GET", "n") == b"50"
    assert call(kv, "INCRBY", "n", "x") == err("ERR value is not an integer or out of range")
    assert call(kv, "DECRBY", "n", "-9223372036854775808") == err("ERR decrement would overflow")
    call(kv, "SET", "n", "9223372036854775807")
    assert call(kv, "INCR", "n") == err("ERR increment or decrement would overflow")
    for bad in ("abc", " 1", "01", "+1", "-0", "1.0", ""):
        call(kv, "SET", "s", bad)
        assert call(kv, "INCR", "s") == err("ERR value is not an integer or out of range"), bad
    call(kv, "SET", "t", "5", "EX", "100")
    assert call(kv, "INCR", "t") == 6
    assert call(kv, "TTL", "t") == 100  # INCR keeps the TTL


def test_incrbyfloat_formats_like_redis(kv: Driver) -> None:
    assert call(kv, "INCRBYFLOAT", "f", "10.5") == b"10.5"
    assert call(kv, "INCRBYFLOAT", "f", "0.1") == b"10.6"
    assert call(kv, "INCRBYFLOAT", "f", "-5.6") == b"5"
    assert call(kv, "INCRBYFLOAT", "g", "3.0e3") == b"3000"
    assert call(kv, "INCRBYFLOAT", "h", "1.23456789012345678901234") == b"1.23456789012345679"
    assert call(kv, "INCRBYFLOAT", "i", "-0.0") == b"0"
    huge = call(kv, "INCRBYFLOAT", "j", "1e400")  # long double range, beyond a double's
    assert isinstance(huge, bytes) and huge.startswith(b"10000000000000000000") and len(huge) == 401
    assert call(kv, "INCRBYFLOAT", "f", "abc") == err("ERR value is not a valid float")
    assert call(kv, "INCRBYFLOAT", "f", "inf") == err("ERR increment would produce NaN or Infinity")
    call(kv, "SET", "s", "x")
    assert call(kv, "INCRBYFLOAT", "s", "1") == err("ERR value is not a valid float")
    call(kv, "SET", "t", "1", "PX", "500")
    assert call(kv, "INCRBYFLOAT", "t", "1") == b"2"
    assert call(kv, "PTTL", "t") == 500


def test_append_strlen_getrange_setrange(kv: Driver) -> None:
    assert call(kv, "APPEND", "s", "Hello") == 5
    assert call(kv, "APPEND", "s", " World") == 11
    assert call(kv, "STRLEN", "s") == 11
    assert call(kv, "STRLEN", "none") == 0
    assert call(kv, "GETRANGE", "s", "0", "4") == b"Hello"
    assert call(kv, "GETRANGE", "s", "-5", "-1") == b"World"
    assert call(kv, "GETRANGE", "s", "5", "3") == b""
    assert call(kv, "GETRANGE", "s", "-1", "-5") == b""
    assert call(kv, "GETRANGE", "s", "0", "100") == b"Hello World"
    assert call(kv, "SUBSTR", "s", "0", "0") == b"H"
    assert call(kv, "GETRANGE", "none", "0", "-1") == b""
    assert call(kv, "GETRANGE", "s", "a", "1") == err("ERR value is not an integer or out of range")
    assert call(kv, "SETRANGE", "s", "6", "Redis") == 11
    assert call(kv, "GET", "s") == b"Hello Redis"
    assert call(kv, "SETRANGE", "z", "3", "ab") == 5
    assert call(kv, "GET", "z") == b"\x00\x00\x00ab"
    assert call(kv, "SETRANGE", "empty", "10", "") == 0
    assert call(kv, "EXISTS", "empty") == 0
    assert call(kv, "SETRANGE", "s", "100", "") == 11
    assert call(kv, "SETRANGE", "s", "-1", "x") == err("ERR offset is out of range")
    assert call(kv, "SETRANGE", "s", "536870912", "x") == err(
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    )


def test_wrongtype_from_a_foreign_record(kv: Driver) -> None:
    """A non-string record (a later layer's hash) answers WRONGTYPE where Redis does."""
    from respkv.kv.layout import T_HASH

    db = kv.sm.db(0)
    kv.backend.write({db.data + b"h": bytes([T_HASH]) + bytes(16)}, 0)
    wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value")
    for args in (
        ["GET", "h"],
        ["INCR", "h"],
        ["APPEND", "h", "x"],
        ["GETRANGE", "h", "0", "1"],
        ["STRLEN", "h"],
        ["SET", "h", "v", "GET"],
        ["GETSET", "h", "v"],
        ["GETDEL", "h"],
        ["GETEX", "h"],
        ["INCRBYFLOAT", "h", "x"],
        ["SETRANGE", "h", "0", "x"],
    ):
        assert call(kv, *args) == wrongtype, args
    assert call(kv, "INCRBY", "h", "x") == err("ERR value is not an integer or out of range")
    assert call(kv, "MGET", "h") == [None]
    assert call(kv, "TYPE", "h") == b"hash"
    # ...and with state checks prepare_write rejects it before the log.
    assert kv.sm.prepare_write([b"INCR", b"h"], 0, NOW, check_state=True) == ErrorReply(
        wrongtype[1]
    )
    assert call(kv, "SET", "h", "v") == b"OK"  # SET overwrites any type
    assert call(kv, "GET", "h") == b"v"


def test_replies_are_reply_values(kv: Driver) -> None:
    assert kv.call(["SET", "k", "v"]) is OK
    assert kv.call(["INCR", "n"]) == 1
    reply = kv.call(["INCR", "k"])
    assert isinstance(reply, ErrorReply)
