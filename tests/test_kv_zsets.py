"""Sorted set commands on the state machine, through prepare_write + apply and read; the score
parsers; the layout (small records, the score index) on MemoryBackend and RocksDB."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import collection, commands, layout
from respkv.kv.backend import MemoryBackend
from respkv.kv.payload import encode_transaction
from respkv.kv.statemachine import Db, StateMachine
from respkv.kv.zsets import _order, _parse_bound, parse_score
from respkv.resp.encoder import encode
from respkv.storage import Store

NOW = 1_700_000_000_000
WRONGTYPE = ("error", "WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = ("error", "ERR syntax error")
NOT_FLOAT = ("error", "ERR value is not a valid float")
MIN_MAX = ("error", "ERR min or max is not a float")
LEX_ITEM = ("error", "ERR min or max not valid string range item")
NOT_INTEGER = ("error", "ERR value is not an integer or out of range")


@pytest.fixture(params=["memory", "rocksdb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "memory":
        yield Driver()
        return
    store = Store.open(tmp_path / "db", 1)
    yield Driver(backend=store.keyspace)
    store.close()


def call(kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW, check: bool = False) -> Any:
    return normalize(kv.call(list(args), db, now, check_state=check))


def raw(kv: Driver, *args: bytes | str) -> Any:
    return kv.call(list(args), 0, NOW)


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"1", 1.0),
        (b"-1.5", -1.5),
        (b".5", 0.5),
        (b"5.", 5.0),
        (b"+3", 3.0),
        (b"1e3", 1000.0),
        (b"0x10", 16.0),
        (b"0x1p-2", 0.25),
        (b"inf", math.inf),
        (b"+inf", math.inf),
        (b"-Infinity", -math.inf),
        (b"-0", 0.0),
        (b"4.9e-324", 5e-324),  # subnormal: ERANGE, but not zero: accepted
    ],
)
def test_parse_score_accepts_what_strtod_reads_whole(text: bytes, value: float) -> None:
    assert parse_score(text) == value


@pytest.mark.parametrize(
    "text",
    [b"", b" 1", b"1 ", b"1\x00", b"nan", b"-nan", b"1e", b"abc", b"1e400", b"-1e400", b"1e-400",
     b"0x", b"infx", b"(1"],
)  # fmt: skip
def test_parse_score_refuses(text: bytes) -> None:
    assert parse_score(text) is None


def test_parse_bound_is_strtod_up_to_the_first_nul() -> None:
    assert _parse_bound(b"(1.5") == (1.5, True)
    assert _parse_bound(b"1.5") == (1.5, False)
    assert _parse_bound(b"(") == (0.0, True)
    assert _parse_bound(b"") == (0.0, False)
    assert _parse_bound(b" 1") == (1.0, False)  # strtod skips leading space
    assert _parse_bound(b"1e400") == (math.inf, False)  # overflow is just infinity here
    assert _parse_bound(b"2\x00junk") == (2.0, False)
    assert _parse_bound(b"[1") is None
    assert _parse_bound(b"nan") is None
    assert _parse_bound(b"1 ") is None


def test_score_index_order_is_numeric_order() -> None:
    scores = [-math.inf, -1e308, -1.5, -5e-324, 0.0, -0.0, 5e-324, 1.0, 1.5, 1e308, math.inf]
    keys = [_order(s) for s in scores]
    assert keys == sorted(keys)
    assert _order(-0.0) == _order(0.0)


# -- commands -----------------------------------------------------------------------------------


def test_zadd_zscore_zcard_zrange(kv: Driver) -> None:
    assert call(kv, "ZADD", "z", "1", "a", "2", "b", "-0", "c", "inf", "d", "-inf", "e") == 5
    assert call(kv, "ZADD", "z", "3", "a") == 0
    assert call(kv, "ZCARD", "z") == 5
    assert call(kv, "ZCARD", "nokey") == 0
    assert call(kv, "ZSCORE", "z", "a") == b"3"
    assert call(kv, "ZSCORE", "z", "c") == b"0"  # -0 is stored as 0
    assert call(kv, "ZSCORE", "z", "nope") is None
    assert call(kv, "ZSCORE", "nokey", "a") is None
    assert call(kv, "ZMSCORE", "z", "d", "x", "e") == [b"inf", None, b"-inf"]
    assert call(kv, "ZMSCORE", "nokey", "a", "b") == [None, None]
    assert call(kv, "ZRANGE", "z", "0", "-1") == [b"e", b"c", b"b", b"a", b"d"]
    assert call(kv, "ZRANGE", "z", "0", "-1", "WITHSCORES") == [
        b"e", b"-inf", b"c", b"0", b"b", b"2", b"a", b"3", b"d", b"inf",
    ]  # fmt: skip
    assert call(kv, "ZRANGE", "z", "0", "-1", "REV") == [b"d", b"a", b"b", b"c", b"e"]
    assert call(kv, "ZREVRANGE", "z", "1", "2") == [b"a", b"b"]
    assert call(kv, "ZRANGE", "z", "-2", "-1") == [b"a", b"d"]
    assert call(kv, "ZRANGE", "z", "3", "100") == [b"a", b"d"]
    assert call(kv, "ZRANGE", "z", "-100", "0") == [b"e"]
    assert call(kv, "ZRANGE", "z", "3", "2") == []
    assert call(kv, "ZRANGE", "z", "5", "10") == []
    assert call(kv, "ZRANGE", "nokey", "0", "-1") == []
    assert call(kv, "TYPE", "z") == b"zset"


def test_equal_scores_order_by_member_bytes(kv: Driver) -> None:
    members = [b"b", b"a", b"", b"\xff", b"\x00", b"ab", b"a\x00"]
    args: list[bytes | str] = ["ZADD", "z"]
    for m in members:
        args += [b"1", m]
    assert call(kv, *args) == len(members)
    assert call(kv, "ZRANGE", "z", "0", "-1") == sorted(members)
    assert call(kv, "ZRANGEBYLEX", "z", "-", "+") == sorted(members)
    assert call(kv, "ZRANGEBYLEX", "z", "[a", "(b") == [b"a", b"a\x00", b"ab"]
    assert call(kv, "ZRANGEBYLEX", "z", "(a", "[b") == [b"a\x00", b"ab", b"b"]
    assert call(kv, "ZREVRANGEBYLEX", "z", "+", "(b") == [b"\xff"]
    assert call(kv, "ZREVRANGEBYLEX", "z", "[ab", "-") == [b"ab", b"a\x00", b"a", b"\x00", b""]
    assert call(kv, "ZLEXCOUNT", "z", "[", "+") == len(members)
    assert call(kv, "ZLEXCOUNT", "z", "(", "+") == len(members) - 1
    assert call(kv, "ZLEXCOUNT", "z", "+", "-") == 0
    assert call(kv, "ZLEXCOUNT", "z", "[b", "[a") == 0
    assert call(kv, "ZRANGEBYLEX", "z", "-", "+", "LIMIT", "2", "3") == [b"a", b"a\x00", b"ab"]
    assert call(kv, "ZRANGEBYLEX", "z", "a", "+") == LEX_ITEM
    assert call(kv, "ZRANGEBYLEX", "z", "-x", "+") == LEX_ITEM
    assert call(kv, "ZRANGEBYLEX", "z", "", "+") == LEX_ITEM
    assert call(kv, "ZRANGE", "z", "[a", "[b", "BYLEX", "WITHSCORES") == (
        "error",
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
    )
    assert call(kv, "ZREMRANGEBYLEX", "z", "[a", "(b") == 3
    assert call(kv, "ZRANGE", "z", "0", "-1") == [b"", b"\x00", b"b", b"\xff"]


def test_lex_ranges_with_mixed_scores_walk_like_redis_listpacks(kv: Driver) -> None:
    # Redis leaves this unspecified; we reproduce its listpack walk (checked against 7.0.15).
    call(kv, "ZADD", "z", "1", "c", "2", "a", "3", "d", "4", "b")
    # From the head: the first member >= min starts, the first member > max stops.
    assert call(kv, "ZRANGEBYLEX", "z", "[b", "+") == [b"c", b"a", b"d", b"b"]
    assert call(kv, "ZRANGEBYLEX", "z", "[b", "[c") == [b"c", b"a"]
    assert call(kv, "ZRANGEBYLEX", "z", "-", "[c") == [b"c", b"a"]
    assert call(kv, "ZREVRANGEBYLEX", "z", "[c", "-") == [b"b", b"d", b"a", b"c"]
    assert call(kv, "ZLEXCOUNT", "z", "-", "+") == 4


def test_score_ranges(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b", "2", "c", "3", "d", "-inf", "lo", "inf", "hi")
    assert call(kv, "ZRANGEBYSCORE", "z", "2", "2") == [b"b", b"c"]
    assert call(kv, "ZRANGEBYSCORE", "z", "(1", "(3") == [b"b", b"c"]
    assert call(kv, "ZRANGEBYSCORE", "z", "(2", "+inf") == [b"d", b"hi"]
    assert call(kv, "ZRANGEBYSCORE", "z", "-inf", "(-inf") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "-inf", "-inf") == [b"lo"]
    assert call(kv, "ZRANGEBYSCORE", "z", "(inf", "+inf") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "inf", "inf", "WITHSCORES") == [b"hi", b"inf"]
    assert call(kv, "ZRANGEBYSCORE", "z", "3", "1") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "(2", "2") == []
    assert call(kv, "ZREVRANGEBYSCORE", "z", "2", "1") == [b"c", b"b", b"a"]
    assert call(kv, "ZREVRANGEBYSCORE", "z", "(3", "(1", "WITHSCORES") == [b"c", b"2", b"b", b"2"]
    assert call(kv, "ZRANGE", "z", "(1", "3", "BYSCORE", "LIMIT", "1", "5") == [b"c", b"d"]
    assert call(kv, "ZRANGE", "z", "3", "(1", "BYSCORE", "REV") == [b"d", b"c", b"b"]
    # LIMIT: a negative count means all, a negative offset nothing.
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "1", "-1") == [b"b", b"c", b"d"]
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "-1", "2") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "0", "0") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "6", "1") == []
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "1") == SYNTAX
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "x", "1") == NOT_INTEGER
    assert call(kv, "ZRANGEBYSCORE", "z", "[1", "3") == MIN_MAX
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "nan") == MIN_MAX
    assert call(kv, "ZRANGEBYSCORE", "z", "1", "3", "REV") == SYNTAX
    assert call(kv, "ZRANGE", "z", "0", "1", "LIMIT", "0", "1") == (
        "error",
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
    )
    assert call(kv, "ZCOUNT", "z", "-inf", "+inf") == 6
    assert call(kv, "ZCOUNT", "z", "(1", "3") == 3
    assert call(kv, "ZCOUNT", "z", "x", "3") == MIN_MAX
    assert call(kv, "ZCOUNT", "nokey", "x", "3") == MIN_MAX
    assert call(kv, "ZCOUNT", "nokey", "0", "3") == 0
    assert call(kv, "ZCOUNT", "z", "-0", "0") == 0
    call(kv, "ZADD", "z", "0", "zero")
    assert call(kv, "ZCOUNT", "z", "-0", "0") == 1
    assert call(kv, "ZRANGEBYSCORE", "z", "(-0", "(1") == []


def test_zadd_options(kv: Driver) -> None:
    assert call(kv, "ZADD", "z", "XX", "1", "a") == 0
    assert call(kv, "EXISTS", "z") == 0
    assert call(kv, "ZADD", "z", "XX", "INCR", "1", "a") is None
    assert call(kv, "ZADD", "z", "NX", "1", "a", "2", "b") == 2
    assert call(kv, "ZADD", "z", "NX", "5", "a", "3", "c") == 1
    assert call(kv, "ZSCORE", "z", "a") == b"1"
    assert call(kv, "ZADD", "z", "XX", "CH", "5", "a", "3", "d") == 1
    assert call(kv, "ZSCORE", "z", "d") is None
    assert call(kv, "ZADD", "z", "CH", "5", "a", "2", "b") == 0  # same scores: nothing changed
    assert call(kv, "ZADD", "z", "GT", "CH", "4", "a", "3", "b", "7", "e") == 2
    assert call(kv, "ZMSCORE", "z", "a", "b", "e") == [b"5", b"3", b"7"]
    assert call(kv, "ZADD", "z", "LT", "CH", "6", "a", "1", "b") == 1
    assert call(kv, "ZADD", "z", "INCR", "2.5", "a") == b"7.5"
    assert call(kv, "ZADD", "z", "NX", "INCR", "1", "a") is None
    assert call(kv, "ZADD", "z", "XX", "INCR", "1", "nope") is None
    assert call(kv, "ZADD", "z", "GT", "INCR", "-1", "a") is None
    assert call(kv, "ZADD", "z", "LT", "INCR", "-1", "a") == b"6.5"
    assert call(kv, "ZADD", "z", "GT", "INCR", "0", "a") is None  # not greater
    assert call(kv, "ZADD", "z", "INCR", "0", "a") == b"6.5"
    assert call(kv, "ZINCRBY", "z", "-0.5", "a") == b"6"
    assert call(kv, "ZINCRBY", "z", "1", "new") == b"1"
    assert call(kv, "ZINCRBY", "z", "-0", "new2") == b"-0"  # the computed score, like Redis
    assert call(kv, "ZSCORE", "z", "new2") == b"0"
    call(kv, "ZADD", "z", "inf", "x")
    assert call(kv, "ZINCRBY", "z", "-inf", "x") == (
        "error",
        "ERR resulting score is not a number (NaN)",
    )
    assert call(kv, "ZSCORE", "z", "x") == b"inf"
    # Errors, in Redis's order.
    assert call(kv, "ZADD", "z") == ("error", "ERR wrong number of arguments for 'zadd' command")
    assert call(kv, "ZADD", "z", "NX", "CH") == SYNTAX
    assert call(kv, "ZADD", "z", "1", "a", "2") == SYNTAX
    assert call(kv, "ZADD", "z", "NX", "XX", "1", "a") == (
        "error",
        "ERR XX and NX options at the same time are not compatible",
    )
    gt_lt_nx = ("error", "ERR GT, LT, and/or NX options at the same time are not compatible")
    assert call(kv, "ZADD", "z", "GT", "LT", "1", "a") == gt_lt_nx
    assert call(kv, "ZADD", "z", "NX", "GT", "1", "a") == gt_lt_nx
    assert call(kv, "ZADD", "z", "INCR", "1", "a", "2", "b") == (
        "error",
        "ERR INCR option supports a single increment-element pair",
    )
    assert call(kv, "ZADD", "z", "nan", "a") == NOT_FLOAT
    assert call(kv, "ZADD", "z", "1", "a", "x", "b") == NOT_FLOAT
    assert call(kv, "ZINCRBY", "z", "abc", "a") == NOT_FLOAT
    assert call(kv, "ZINCRBY", "z", "nx", "a") == SYNTAX  # "nx" is read as an option, like Redis


def test_zrem_and_empty_sets_disappear(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b")
    assert call(kv, "ZREM", "z", "a", "a", "x") == 1
    assert call(kv, "ZREM", "nokey", "a") == 0
    assert call(kv, "ZREM", "z", "b", "c") == 1
    assert call(kv, "EXISTS", "z") == 0
    assert call(kv, "DBSIZE") == 0


def test_ranks(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert [call(kv, "ZRANK", "z", m) for m in "abc"] == [0, 1, 2]
    assert [call(kv, "ZREVRANK", "z", m) for m in "abc"] == [2, 1, 0]
    assert call(kv, "ZRANK", "z", "x") is None
    assert call(kv, "ZRANK", "nokey", "x") is None


def test_rank_operations_match_a_model_from_both_ends(kv: Driver) -> None:
    rng = random.Random(7)
    model: dict[bytes, float] = {}
    args: list[bytes | str] = ["ZADD", "z"]
    for _ in range(300):
        member = b"m%d" % rng.randrange(1000)
        score = rng.choice([-1.0, 0.0, 0.5, 2.0, 3.0, math.inf])
        model[member] = score
        args += [repr(score).encode() if not math.isinf(score) else b"inf", member]
    call(kv, *args)
    ordered = [m for m, _ in sorted(model.items(), key=lambda kv: (kv[1], kv[0]))]
    n = len(ordered)
    for m in rng.sample(ordered, 40):
        assert call(kv, "ZRANK", "z", m) == ordered.index(m)
        assert call(kv, "ZREVRANK", "z", m) == n - 1 - ordered.index(m)
    for _ in range(40):
        a, b = rng.randrange(-n - 5, n + 5), rng.randrange(-n - 5, n + 5)
        sa, sb = (a + n if a < 0 else a), (b + n if b < 0 else b)
        sa = max(sa, 0)
        expected = ordered[sa : sb + 1] if sa <= sb else []
        assert call(kv, "ZRANGE", "z", str(a), str(b)) == expected
        expected_rev = ordered[::-1][sa : sb + 1] if sa <= sb else []
        assert call(kv, "ZRANGE", "z", str(a), str(b), "REV") == expected_rev
    assert call(kv, "ZREMRANGEBYRANK", "z", "-3", "-1") == 3
    assert call(kv, "ZREMRANGEBYRANK", "z", "1", "2") == 2
    assert call(kv, "ZRANGE", "z", "0", "-1") == [ordered[0], *ordered[3:-3]]
    assert call(kv, "ZCARD", "z") == n - 5


def test_zremrangebyscore_and_rank_errors(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert call(kv, "ZREMRANGEBYSCORE", "z", "(1", "2") == 1
    assert call(kv, "ZREMRANGEBYSCORE", "z", "x", "2") == MIN_MAX
    assert call(kv, "ZREMRANGEBYRANK", "z", "x", "2") == NOT_INTEGER
    assert call(kv, "ZREMRANGEBYRANK", "z", "5", "9") == 0
    assert call(kv, "ZREMRANGEBYLEX", "z", "x", "+") == LEX_ITEM
    assert call(kv, "ZREMRANGEBYSCORE", "nokey", "1", "2") == 0
    assert call(kv, "ZREMRANGEBYSCORE", "z", "-inf", "+inf") == 2
    assert call(kv, "EXISTS", "z") == 0


def test_pops_are_ordered_and_deterministic(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "b", "1", "a", "2", "c", "3", "d")
    assert call(kv, "ZPOPMIN", "z") == [b"a", b"1"]
    assert call(kv, "ZPOPMAX", "z", "2") == [b"d", b"3", b"c", b"2"]
    assert call(kv, "ZPOPMIN", "z", "0") == []
    assert call(kv, "ZPOPMIN", "z", "-1") == (
        "error",
        "ERR value is out of range, must be positive",
    )
    assert call(kv, "ZPOPMIN", "z", "x") == ("error", "ERR value is out of range, must be positive")
    assert call(kv, "ZPOPMIN", "z", "1", "2") == SYNTAX
    assert call(kv, "ZPOPMIN", "z", "10") == [b"b", b"1"]
    assert call(kv, "EXISTS", "z") == 0
    assert call(kv, "ZPOPMIN", "z") == []
    assert call(kv, "ZPOPMAX", "z", "3") == []


def test_zrangestore(kv: Driver) -> None:
    call(kv, "ZADD", "src", "1", "a", "2", "b", "3", "c")
    call(kv, "SET", "dst", "string", "EX", "100")
    assert call(kv, "ZRANGESTORE", "dst", "src", "1", "-1") == 2
    assert call(kv, "TTL", "dst") == -1
    assert call(kv, "ZRANGE", "dst", "0", "-1", "WITHSCORES") == [b"b", b"2", b"c", b"3"]
    assert call(kv, "ZRANGESTORE", "dst", "src", "(1", "+inf", "BYSCORE", "LIMIT", "1", "1") == 1
    assert call(kv, "ZRANGE", "dst", "0", "-1") == [b"c"]
    assert call(kv, "ZRANGESTORE", "dst", "src", "[c", "-", "BYLEX", "REV") == 3
    assert call(kv, "ZRANGESTORE", "src", "src", "0", "0") == 1  # source = destination
    assert call(kv, "ZRANGE", "src", "0", "-1") == [b"a"]
    assert call(kv, "ZRANGESTORE", "dst", "src", "5", "6") == 0  # empty: dst deleted
    assert call(kv, "EXISTS", "dst") == 0
    assert call(kv, "ZRANGESTORE", "dst", "src", "0", "-1", "WITHSCORES") == SYNTAX
    call(kv, "SET", "str", "x")
    assert call(kv, "ZRANGESTORE", "dst", "str", "0", "-1") == WRONGTYPE
    assert call(kv, "ZRANGESTORE", "dst", "str", "0", "-1", check=True) == WRONGTYPE
    assert call(kv, "ZRANGESTORE", "str", "src", "0", "-1", check=True) == 1  # any dst type
    assert call(kv, "ZRANGESTORE", "dst", "nokey", "0", "-1") == 0


def test_zunionstore_and_zinterstore(kv: Driver) -> None:
    call(kv, "ZADD", "z1", "1", "a", "2", "b", "3", "c")
    call(kv, "ZADD", "z2", "10", "b", "20", "c", "30", "d")
    assert call(kv, "ZUNIONSTORE", "u", "2", "z1", "z2") == 4
    assert call(kv, "ZRANGE", "u", "0", "-1", "WITHSCORES") == [
        b"a", b"1", b"b", b"12", b"c", b"23", b"d", b"30",
    ]  # fmt: skip
    assert call(kv, "ZINTERSTORE", "i", "2", "z1", "z2", "WEIGHTS", "2", "0.5") == 2
    assert call(kv, "ZRANGE", "i", "0", "-1", "WITHSCORES") == [b"b", b"9", b"c", b"16"]
    assert call(kv, "ZINTERSTORE", "i", "2", "z1", "z2", "AGGREGATE", "MIN") == 2
    assert call(kv, "ZRANGE", "i", "0", "-1", "WITHSCORES") == [b"b", b"2", b"c", b"3"]
    assert call(kv, "ZINTERSTORE", "i", "2", "z1", "z2", "aggregate", "max") == 2
    assert call(kv, "ZRANGE", "i", "0", "-1", "WITHSCORES") == [b"b", b"10", b"c", b"20"]
    assert (
        call(kv, "ZUNIONSTORE", "u", "2", "z1", "z2", "WEIGHTS", "1", "-1", "AGGREGATE", "MAX") == 4
    )
    assert call(kv, "ZRANGE", "u", "0", "-1", "WITHSCORES") == [
        b"d", b"-30", b"a", b"1", b"b", b"2", b"c", b"3",
    ]  # fmt: skip
    # inf * 0 and inf - inf are 0, as in Redis.
    call(kv, "ZADD", "zi", "inf", "a", "-inf", "b")
    assert call(kv, "ZUNIONSTORE", "u", "1", "zi", "WEIGHTS", "0") == 2
    assert call(kv, "ZRANGE", "u", "0", "-1", "WITHSCORES") == [b"a", b"0", b"b", b"0"]
    assert call(kv, "ZUNIONSTORE", "u", "2", "zi", "zi", "WEIGHTS", "1", "-1") == 2
    assert call(kv, "ZRANGE", "u", "0", "-1", "WITHSCORES") == [b"a", b"0", b"b", b"0"]
    # Missing inputs, empty results, the destination replaced whatever it held.
    assert call(kv, "ZINTERSTORE", "i", "2", "z1", "nokey") == 0
    assert call(kv, "EXISTS", "i") == 0
    assert call(kv, "ZUNIONSTORE", "z1", "1", "nokey") == 0
    assert call(kv, "EXISTS", "z1") == 0
    # Errors: numkeys first, then WRONGTYPE of the inputs, then the options.
    assert call(kv, "ZUNIONSTORE", "u", "0", "z2") == (
        "error",
        "ERR at least 1 input key is needed for 'zunionstore' command",
    )
    assert call(kv, "ZINTERSTORE", "u", "3", "z2") == SYNTAX
    assert call(kv, "ZINTERSTORE", "u", "x", "z2") == NOT_INTEGER
    call(kv, "SET", "s", "x")
    assert call(kv, "ZUNIONSTORE", "u", "1", "s", "WEIGHTS", "x") == WRONGTYPE
    assert call(kv, "ZUNIONSTORE", "u", "1", "s", "WEIGHTS", "x", check=True) == WRONGTYPE
    assert call(kv, "ZUNIONSTORE", "u", "1", "z2", "WEIGHTS", "x") == (
        "error",
        "ERR weight value is not a float",
    )
    assert call(kv, "ZUNIONSTORE", "u", "1", "z2", "WEIGHTS", "1", "2") == SYNTAX
    assert call(kv, "ZUNIONSTORE", "u", "1", "z2", "AGGREGATE", "AVG") == SYNTAX
    assert call(kv, "ZUNIONSTORE", "u", "1", "z2", "WITHSCORES") == SYNTAX


def _make_set(sm: StateMachine, db: Db, stamp: int, key: bytes, members: list[bytes]) -> Any:
    c = collection.create(sm, db, key, layout.T_SET)
    for m in members:
        c.add(m, b"")
    c.store()
    return len(members)


def test_set_inputs_count_as_score_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set's member records are its members with empty values (the foundation's layout for
    T_SET): ZUNIONSTORE/ZINTERSTORE read them with score 1, as Redis does."""
    kv = Driver()
    monkeypatch.setitem(
        commands.APPLIERS,
        b"#mkset",
        lambda sm, argv, db, stamp: _make_set(sm, db, stamp, argv[1], argv[2:]),
    )
    (reply,) = kv.apply([encode_transaction(NOW, [(0, [b"#mkset", b"s", b"a", b"b", b"x"])])])
    assert reply == [3]
    assert call(kv, "TYPE", "s") == b"set"
    call(kv, "ZADD", "z", "5", "a", "7", "b", "9", "c")
    assert call(kv, "ZUNIONSTORE", "u", "2", "z", "s", "WEIGHTS", "1", "10") == 4
    assert call(kv, "ZRANGE", "u", "0", "-1", "WITHSCORES") == [
        b"c", b"9", b"x", b"10", b"a", b"15", b"b", b"17",
    ]  # fmt: skip
    assert call(kv, "ZINTERSTORE", "i", "2", "s", "z", "AGGREGATE", "MIN") == 2
    assert call(kv, "ZRANGE", "i", "0", "-1", "WITHSCORES") == [b"a", b"1", b"b", b"1"]
    assert call(kv, "ZUNIONSTORE", "u", "1", "s", check=True) == 3


def test_wrongtype(kv: Driver) -> None:
    call(kv, "SET", "s", "x")
    call(kv, "HSET", "h", "f", "v")
    call(kv, "ZADD", "z", "1", "a")
    for args in (
        ["ZADD", "s", "1", "a"],
        ["ZINCRBY", "h", "1", "a"],
        ["ZREM", "s", "a"],
        ["ZSCORE", "s", "a"],
        ["ZMSCORE", "s", "a"],
        ["ZCARD", "h"],
        ["ZCOUNT", "s", "0", "1"],
        ["ZLEXCOUNT", "s", "-", "+"],
        ["ZRANK", "s", "a"],
        ["ZREVRANK", "s", "a"],
        ["ZRANGE", "s", "0", "1"],
        ["ZREVRANGE", "s", "0", "1"],
        ["ZRANGEBYSCORE", "s", "0", "1"],
        ["ZREVRANGEBYSCORE", "s", "0", "1"],
        ["ZRANGEBYLEX", "s", "-", "+"],
        ["ZREVRANGEBYLEX", "s", "+", "-"],
        ["ZPOPMIN", "s"],
        ["ZPOPMAX", "s", "2"],
        ["ZREMRANGEBYRANK", "s", "0", "1"],
        ["ZREMRANGEBYSCORE", "s", "0", "1"],
        ["ZREMRANGEBYLEX", "s", "-", "+"],
        ["ZUNIONSTORE", "d", "2", "z", "s"],
        ["ZINTERSTORE", "d", "2", "z", "h"],
        ["ZRANDMEMBER", "s"],
        ["ZRANDMEMBER", "s", "2"],
        ["ZSCAN", "s", "0"],
        ["ZRANGESTORE", "d", "s", "0", "1"],
    ):
        assert call(kv, *args) == WRONGTYPE, args
        assert call(kv, *args, check=True) == WRONGTYPE, args
    assert call(kv, "HGET", "z", "a") == WRONGTYPE
    assert call(kv, "GET", "z") == WRONGTYPE
    assert call(kv, "ZRANGE", "z", "0", "-1") == [b"a"]


def test_zrandmember(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert call(kv, "ZRANDMEMBER", "z") in (b"a", b"b", b"c")
    assert call(kv, "ZRANDMEMBER", "nokey") is None
    assert sorted(call(kv, "ZRANDMEMBER", "z", "5")) == [b"a", b"b", b"c"]
    picked = call(kv, "ZRANDMEMBER", "z", "-7", "WITHSCORES")
    assert len(picked) == 14
    scores = {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert all(scores[m] == s for m, s in zip(picked[::2], picked[1::2], strict=True))
    assert call(kv, "ZRANDMEMBER", "z", "0") == []
    assert call(kv, "ZRANDMEMBER", "nokey", "3") == []
    assert call(kv, "ZRANDMEMBER", "z", "1", "FOO") == SYNTAX
    assert call(kv, "ZRANDMEMBER", "z", "x") == NOT_INTEGER
    assert call(kv, "ZRANDMEMBER", "z", "9223372036854775807", "WITHSCORES") == (
        "error",
        "ERR value is out of range",
    )
    assert call(kv, "ZRANDMEMBER", "z", "-4611686018427387904", "WITHSCORES") == (
        "error",
        "ERR value is out of range",
    )


def test_zscan(kv: Driver) -> None:
    call(kv, "ZADD", "z", *[x for i in range(25) for x in (str(i / 2), f"m{i:02d}")])
    seen: dict[bytes, bytes] = {}
    cursor = b"0"
    while True:
        cursor, items = call(kv, "ZSCAN", "z", cursor, "COUNT", "7")
        seen.update(zip(items[::2], items[1::2], strict=True))
        if cursor == b"0":
            break
    assert len(seen) == 25 and seen[b"m03"] == b"1.5" and seen[b"m04"] == b"2"
    assert call(kv, "ZSCAN", "z", "0", "MATCH", "m1*", "COUNT", "100")[1][:4] == [
        b"m10", b"5", b"m11", b"5.5",
    ]  # fmt: skip
    assert call(kv, "ZSCAN", "nokey", "0", "BOGUS") == [b"0", []]
    assert call(kv, "ZSCAN", "z", "x") == ("error", "ERR invalid cursor")
    assert call(kv, "ZSCAN", "z", "0", "TYPE", "zset") == SYNTAX


def test_resp3_and_resp2_shapes() -> None:
    """As redis-server 7.0.15 sends them (captured with a raw RESP3 client)."""
    kv = Driver()
    kv.call([b"ZADD", b"z", b"0.1", b"q", b"2.5", b"a"])
    assert encode(raw(kv, "ZSCORE", "z", "q"), 3) == b",0.10000000000000001\r\n"
    assert encode(raw(kv, "ZSCORE", "z", "q"), 2) == b"$19\r\n0.10000000000000001\r\n"
    assert encode(raw(kv, "ZSCORE", "z", "x"), 3) == b"_\r\n"
    assert encode(raw(kv, "ZMSCORE", "z", "a", "x"), 3) == b"*2\r\n,2.5\r\n_\r\n"
    assert encode(raw(kv, "ZRANGE", "z", "0", "-1", "WITHSCORES"), 3) == (
        b"*2\r\n*2\r\n$1\r\nq\r\n,0.10000000000000001\r\n*2\r\n$1\r\na\r\n,2.5\r\n"
    )
    assert encode(raw(kv, "ZRANGE", "z", "0", "-1", "WITHSCORES"), 2) == (
        b"*4\r\n$1\r\nq\r\n$19\r\n0.10000000000000001\r\n$1\r\na\r\n$3\r\n2.5\r\n"
    )
    assert encode(raw(kv, "ZRANDMEMBER", "z", "1", "WITHSCORES"), 3).startswith(b"*1\r\n*2\r\n$")
    assert encode(raw(kv, "ZSCAN", "z", "0"), 3) == (
        b"*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$3\r\n2.5\r\n$1\r\nq\r\n$19\r\n0.10000000000000001\r\n"
    )
    assert encode(kv.call([b"ZINCRBY", b"z", b"1", b"a"]), 3) == b",3.5\r\n"
    assert encode(kv.call([b"ZADD", b"z", b"NX", b"INCR", b"1", b"a"]), 3) == b"_\r\n"
    assert encode(kv.call([b"ZADD", b"z", b"NX", b"INCR", b"1", b"a"]), 2) == b"$-1\r\n"
    assert encode(kv.call([b"ZPOPMIN", b"z"]), 3) == b"*2\r\n$1\r\nq\r\n,0.10000000000000001\r\n"
    assert encode(kv.call([b"ZPOPMIN", b"z", b"1"]), 3) == b"*1\r\n*2\r\n$1\r\na\r\n,3.5\r\n"
    assert encode(kv.call([b"ZPOPMIN", b"z", b"1"]), 3) == b"*0\r\n"
    assert encode(kv.call([b"ZADD", b"z", b"inf", b"i"]), 3) == b":1\r\n"
    assert encode(raw(kv, "ZSCORE", "z", "i"), 3) == b",inf\r\n"
    assert encode(raw(kv, "ZSCORE", "z", "i"), 2) == b"$3\r\ninf\r\n"


def test_writes_in_one_batch_see_each_other() -> None:
    kv = Driver()
    replies = kv.batch(
        [
            (["ZADD", "z", "1", "a", "2", "b"], 0),
            (["ZADD", "z", "0", "b"], 0),
            (["ZPOPMIN", "z"], 0),
            (["ZRANGESTORE", "d", "z", "0", "-1"], 0),
            (["ZREMRANGEBYSCORE", "z", "-inf", "inf"], 0),
        ],
        NOW,
    )
    assert normalize(replies) == [2, 0, [b"b", b"0"], 1, 1]
    assert call(kv, "ZRANGE", "d", "0", "-1", "WITHSCORES") == [b"a", b"1"]
    assert call(kv, "EXISTS", "z") == 0


def test_zadd_writes_only_small_records() -> None:
    backend = MemoryBackend()
    kv = Driver(backend=backend)
    args: list[bytes | str] = ["ZADD", "z"]
    for i in range(2000):
        args += [str(i % 17), b"member:%d" % i]
    kv.call(args)
    written: list[dict[bytes, bytes | None]] = []
    real_write = backend.write

    def spy(changes: Any, applied_index: int) -> None:
        written.append(dict(changes))
        real_write(changes, applied_index)

    backend.write = spy  # type: ignore[method-assign]
    assert normalize(kv.call(["ZADD", "z", "100", "member:5", "1", "fresh"])) == 1
    (changes,) = written
    # key record, member:5's score and its moved index entry (old deleted), fresh's two records
    assert len(changes) == 6
    assert all(v is None or len(v) <= 40 for v in changes.values())


def test_copy_rename_delete_and_garbage(kv: Driver) -> None:
    call(kv, "ZADD", "z", "1", "a", "2", "b")
    assert call(kv, "COPY", "z", "c") == 1
    call(kv, "ZADD", "z", "3", "a")
    assert call(kv, "ZRANGE", "c", "0", "-1", "WITHSCORES") == [b"a", b"1", b"b", b"2"]
    assert call(kv, "ZRANGEBYSCORE", "c", "2", "2") == [b"b"]
    assert call(kv, "RENAME", "c", "r") == b"OK"
    assert call(kv, "ZRANK", "r", "b") == 1
    assert call(kv, "DEL", "z", "r") == 2
    while kv.sm.collect_garbage():
        pass
    assert [
        k for k, _ in kv.backend.iterate(layout.MEMBERS, layout.prefix_end(layout.MEMBERS))
    ] == []


def test_expired_sorted_set_is_absent() -> None:
    kv = Driver()
    call(kv, "ZADD", "z", "1", "a")
    call(kv, "PEXPIREAT", "z", str(NOW + 10))
    assert call(kv, "ZCARD", "z", now=NOW + 5) == 1
    assert call(kv, "ZCARD", "z", now=NOW + 11) == 0
    assert call(kv, "ZADD", "z", "XX", "2", "a", now=NOW + 11) == 0
    assert call(kv, "EXISTS", "z", now=NOW + 11) == 0
    assert call(kv, "ZADD", "z", "2", "b", now=NOW + 11) == 1
    assert call(kv, "ZRANGE", "z", "0", "-1", now=NOW + 12) == [b"b"]


def test_union_and_inter_visit_the_smallest_inputs_first(kv: Driver) -> None:
    """Float sums depend on the order: Redis adds the inputs by increasing size."""
    call(kv, "ZADD", "z1", "3", "a")
    call(kv, "ZADD", "z2", "-1e16", "a", "1", "b", "1", "c")
    call(kv, "ZADD", "z3", "1e16", "a", "1", "b")
    assert call(kv, "ZUNIONSTORE", "u", "3", "z2", "z3", "z1") == 3
    assert call(kv, "ZSCORE", "u", "a") == b"4"  # (3 + 1e16) - 1e16, not (-1e16 + 1e16) + 3
    assert call(kv, "ZINTERSTORE", "i", "3", "z2", "z3", "z1") == 1
    assert call(kv, "ZSCORE", "i", "a") == b"4"


def test_zunion_zinter_zdiff_zintercard(kv: Driver) -> None:
    call(kv, "ZADD", "z1", "0", "a", "1", "b", "2", "c")
    call(kv, "ZADD", "z2", "-1", "a", "1", "b")
    assert call(kv, "ZUNION", "2", "z1", "z2", "WEIGHTS", "-1", "1", "WITHSCORES") == [
        b"c", b"-2", b"a", b"-1", b"b", b"0",
    ]  # fmt: skip
    assert call(kv, "ZINTER", "2", "z1", "z2", "AGGREGATE", "MIN") == [b"a", b"b"]
    assert call(kv, "ZDIFF", "2", "z1", "z2", "WITHSCORES") == [b"c", b"2"]
    assert call(kv, "ZDIFF", "1", "z1", "WEIGHTS", "1") == SYNTAX
    assert call(kv, "ZDIFFSTORE", "d", "2", "z1", "nokey") == 3
    assert call(kv, "ZRANGE", "d", "0", "-1", "WITHSCORES") == [b"a", b"0", b"b", b"1", b"c", b"2"]
    assert call(kv, "ZDIFFSTORE", "d", "2", "z2", "z1") == 0
    assert call(kv, "EXISTS", "d") == 0
    # Computed -0.0 is answered as Redis's skiplist result has it; stored, it becomes 0.
    assert call(kv, "ZUNION", "1", "z1", "WEIGHTS", "-1", "WITHSCORES")[-2:] == [b"a", b"-0"]
    call(kv, "ZUNIONSTORE", "u", "1", "z1", "WEIGHTS", "-1")
    assert call(kv, "ZSCORE", "u", "a") == b"0"
    assert call(kv, "ZINTERCARD", "2", "z1", "z2") == 2
    assert call(kv, "ZINTERCARD", "2", "z1", "z2", "LIMIT", "1") == 1
    assert call(kv, "ZINTERCARD", "2", "z1", "z2", "LIMIT", "0") == 2
    assert call(kv, "ZINTERCARD", "2", "z1", "z2", "LIMIT", "-1") == (
        "error",
        "ERR LIMIT can't be negative",
    )
    assert call(kv, "ZINTERCARD", "0", "z1") == (
        "error",
        "ERR at least 1 input key is needed for 'zintercard' command",
    )
    assert call(kv, "ZINTERCARD", "1", "z1", "WITHSCORES") == SYNTAX
    assert call(kv, "ZUNION", "1", "nokey", "WITHSCORES") == []
    call(kv, "SET", "s", "x")
    assert call(kv, "ZINTER", "2", "z1", "s", "AGGREGATE", "bad") == WRONGTYPE


def test_zmpop(kv: Driver) -> None:
    call(kv, "ZADD", "z", "0", "a", "1", "b", "2", "c")
    assert call(kv, "ZMPOP", "2", "nokey", "z", "MAX", "COUNT", "2") == [
        b"z",
        [[b"c", b"2"], [b"b", b"1"]],
    ]
    assert call(kv, "ZMPOP", "1", "z", "MIN", "COUNT", "5") == [b"z", [[b"a", b"0"]]]
    assert call(kv, "EXISTS", "z") == 0
    assert call(kv, "ZMPOP", "1", "z", "MIN") is None  # a null array
    call(kv, "SET", "s", "x")
    call(kv, "ZADD", "z", "1", "a")
    assert call(kv, "ZMPOP", "2", "s", "z", "MIN") == WRONGTYPE
    assert call(kv, "ZMPOP", "2", "z", "s", "MIN") == [b"z", [[b"a", b"1"]]]  # s never looked at
    numkeys = ("error", "ERR numkeys should be greater than 0")
    assert call(kv, "ZMPOP", "0", "z", "MIN") == numkeys
    assert call(kv, "ZMPOP", "x", "z", "MIN") == numkeys
    assert call(kv, "ZMPOP", "3", "z", "MIN") == SYNTAX
    assert call(kv, "ZMPOP", "1", "z", "MIDDLE") == SYNTAX
    count = ("error", "ERR count should be greater than 0")
    assert call(kv, "ZMPOP", "1", "z", "MIN", "COUNT", "0") == count
    assert call(kv, "ZMPOP", "1", "z", "MIN", "COUNT", "x") == count
    assert call(kv, "ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "1") == SYNTAX
    assert encode(kv.call([b"ZMPOP", b"1", b"z", b"MIN"]), 2) == b"*-1\r\n"
    assert encode(kv.call([b"ZMPOP", b"1", b"z", b"MIN"]), 3) == b"_\r\n"


def test_zrandmember_on_a_big_set_draws_members_with_their_scores() -> None:
    kv = Driver()
    n = 3000  # beyond the exact sample: random descents of the member keys
    for start in range(0, n, 500):
        args = [x for i in range(start, start + 500) for x in (str(i / 4), f"member:{i:05d}")]
        call(kv, "ZADD", "z", *args)
    picked = call(kv, "ZRANDMEMBER", "z", "20", "WITHSCORES")
    members = picked[::2]
    assert len(members) == 20 and len(set(members)) == 20
    for member, score in zip(members, picked[1::2], strict=True):
        assert call(kv, "ZSCORE", "z", member) == score
    assert all(m.startswith(b"member:") for m in call(kv, "ZRANDMEMBER", "z", "-50"))
