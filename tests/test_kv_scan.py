"""SCAN cursors while the keyspace changes, SCAN options, and glob matching (also against a real
redis-server's KEYS for random patterns)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _kv_redis import Driver, RawRedis, normalize, redis_server
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.kv import StateMachine
from respkv.kv.glob import compile_pattern, literal_prefix, stringmatch
from respkv.kv.keyspace import parse_scan_cursor

NOW = 1_700_000_000_000


def scan_page(kv: Driver, cursor: bytes, *options: bytes, db: int = 0) -> tuple[bytes, list[bytes]]:
    reply = normalize(kv.call([b"SCAN", cursor, *options], db, NOW))
    assert isinstance(reply, list), reply
    return reply[0], reply[1]


@settings(max_examples=100, deadline=None)
@given(
    initial=st.sets(st.integers(0, 300), max_size=120),
    mutations=st.lists(
        st.tuples(st.sampled_from(["add", "del"]), st.integers(0, 300)), max_size=200
    ),
    count=st.integers(1, 15),
    per_page=st.integers(0, 6),
)
def test_scan_returns_every_key_present_throughout(
    initial: set[int], mutations: list[tuple[str, int]], count: int, per_page: int
) -> None:
    kv = Driver()
    for i in initial:
        kv.call([b"SET", b"key:%d" % i, b"v"], 0, NOW)
    present_throughout = {b"key:%d" % i for i in initial}
    seen: list[bytes] = []
    cursor = b"0"
    pending = list(mutations)
    pages = 0
    while True:
        cursor, keys = scan_page(kv, cursor, b"COUNT", b"%d" % count)
        seen += keys
        pages += 1
        assert len(keys) <= count
        for _ in range(per_page):
            if not pending:
                break
            op, i = pending.pop(0)
            key = b"key:%d" % i
            if op == "add":
                kv.call([b"SET", key, b"v"], 0, NOW)
            else:
                kv.call([b"DEL", key], 0, NOW)
                present_throughout.discard(key)
        if cursor == b"0":
            break
        assert pages < 1000
    assert present_throughout <= set(seen)
    assert len(seen) == len(set(seen))  # in key order from the last key: no repeats


def test_scan_options_and_errors() -> None:
    kv = Driver()
    for i in range(30):
        kv.call([b"SET", b"a:%02d" % i, b"v"], 0, NOW)
        kv.call([b"SET", b"b:%02d" % i, b"v"], 0, NOW)
    cursor, keys = scan_page(kv, b"0", b"MATCH", b"b:1*", b"COUNT", b"1000")
    assert (cursor, keys) == (b"0", [b"b:%02d" % i for i in range(10, 20)])
    cursor, keys = scan_page(kv, b"0", b"TYPE", b"HASH")
    assert keys == [] and cursor != b"0"
    collected: list[bytes] = []
    cursor = b"0"
    while True:
        cursor, keys = scan_page(kv, cursor, b"match", b"a:*", b"count", b"7", b"type", b"string")
        collected += keys
        if cursor == b"0":
            break
    assert collected == [b"a:%02d" % i for i in range(30)]
    for bad, message in [
        ([b"SCAN", b"x"], "ERR invalid cursor"),
        ([b"SCAN", b" 1"], "ERR invalid cursor"),
        ([b"SCAN", b"18446744073709551616"], "ERR invalid cursor"),
        ([b"SCAN", b"0", b"COUNT", b"0"], "ERR syntax error"),
        ([b"SCAN", b"0", b"COUNT", b"x"], "ERR value is not an integer or out of range"),
        ([b"SCAN", b"0", b"MATCH"], "ERR syntax error"),
        ([b"SCAN", b"0", b"FOO", b"bar"], "ERR syntax error"),
    ]:
        assert normalize(kv.call(bad, 0, NOW)) == ("error", message), bad
    # An unknown cursor (evicted, other node, restart) restarts the scan instead of failing.
    cursor, keys = scan_page(kv, b"987654321", b"COUNT", b"3")
    assert keys == [b"a:00", b"a:01", b"a:02"]


def test_scan_cursor_table_is_bounded() -> None:
    kv = Driver()
    kv.sm = StateMachine(kv.backend, 16, max_scan_cursors=3)
    for i in range(10):
        kv.call([b"SET", b"k%d" % i, b"v"], 0, NOW)
    cursors = [scan_page(kv, b"0", b"COUNT", b"1")[0] for _ in range(5)]
    assert len(set(cursors)) == 5
    assert len(kv.sm._scan_cursors) == 3
    assert scan_page(kv, cursors[-1], b"COUNT", b"1")[1] == [b"k1"]


def test_parse_scan_cursor_follows_strtoul() -> None:
    assert parse_scan_cursor(b"0") == 0
    assert parse_scan_cursor(b"") == 0
    assert parse_scan_cursor(b"+5") == 5
    assert parse_scan_cursor(b"-1") == 2**64 - 1
    assert parse_scan_cursor(b"007") == 7
    assert parse_scan_cursor(b"18446744073709551615") == 2**64 - 1
    assert parse_scan_cursor(b"18446744073709551616") is None
    assert parse_scan_cursor(b"5x") is None
    assert parse_scan_cursor(b"+") is None
    assert parse_scan_cursor(b"\t1") is None
    assert parse_scan_cursor(b"12\x00junk") == 12


# -- glob -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "string", "expected"),
    [
        (b"*", b"", False),  # stringmatchlen itself; KEYS/SCAN special-case a lone "*"
        (b"a*", b"a", True),
        (b"h?llo", b"hello", True),
        (b"h?llo", b"hllo", False),
        (b"h[ae]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hallo", True),  # reversed range
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hallo", False),
        (b"[\\]]", b"]", True),
        (b"[abc", b"a", True),  # unterminated class
        (b"[abc", b"d", False),
        (b"a\\", b"a\\", True),  # trailing backslash is literal
        (b"[\x80-\xff]", b"\x90", True),
        (b"[a-\xff]", b"b", False),  # signed chars: \xff is -1, so the range is -1..'a'
        (b"[a-\xff]", b"\x00", True),
        (b"*a*b*c*", b"xxaxxbxxcxx", True),
        (b"*a*b*c*", b"xxaxxbxx", False),
    ],
)
def test_stringmatch(pattern: bytes, string: bytes, expected: bool) -> None:
    assert stringmatch(pattern, string) is expected


def test_compiled_patterns_agree_with_stringmatch() -> None:
    for pattern in [b"**", b"abc", b"ab*", b"ab**", b"a?c", b"[ab]*"]:
        match = compile_pattern(pattern)
        assert match is not None
        for s in [b"", b"a", b"ab", b"abc", b"abcd", b"bc"]:
            assert match(s) == stringmatch(pattern, s), (pattern, s)
    assert compile_pattern(b"*") is None
    assert literal_prefix(b"user:*:x") == b"user:"
    assert literal_prefix(b"a\\*") == b"a"


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


GLOB_ALPHABET = [b"a", b"b", b"-", b"^", b"[", b"]", b"*", b"?", b"\\", b"\xff", b"\x80", b"A"]


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(
        st.lists(st.sampled_from(GLOB_ALPHABET), min_size=1, max_size=7).map(b"".join),
        min_size=1,
        max_size=5,
    ),
    keys=st.sets(
        st.lists(
            st.sampled_from([b"a", b"b", b"-", b"]", b"\\", b"\xff", b"\x80", b"*"]), max_size=4
        )
        .map(b"".join)
        .filter(bool),
        min_size=1,
        max_size=12,
    ),
)
def test_keys_matches_like_redis(redis_port: int, patterns: list[bytes], keys: set[bytes]) -> None:
    redis = RawRedis(redis_port)
    try:
        redis.call("FLUSHALL")
        redis.call("MSET", *[b for k in keys for b in (k, b"v")])
        kv = Driver()
        kv.call([b"MSET", *[b for k in keys for b in (k, b"v")]], 0, NOW)
        for pattern in patterns:
            theirs = sorted(redis.call("KEYS", pattern))
            ours = normalize(kv.call([b"KEYS", pattern], 0, NOW))
            assert ours == theirs, pattern
    finally:
        redis.close()
