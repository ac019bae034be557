"""Differential test: random command sequences on the state machine and on a real redis-server.

Hypothesis draws sequences of string, key and collection commands (errors included: bad numbers, bad
options, wrong arity, unknown commands) over a handful of keys and two databases, runs each
command on both, and compares every reply. Normalised only where the two must differ:

* TTL family: Redis uses its own clock; we use the wall clock of the moment too, so the values
  agree within a small tolerance. Relative expiries are drawn hundreds of seconds away from
  absolute ones, and GT/LT are only used with absolute times, so no comparison is a near-tie.
* KEYS order (Redis: hash order, ours: key order), SCAN (run to completion, the sets compared),
  RANDOMKEY (both must answer a key of the db, or both nil); likewise HKEYS/HVALS/HGETALL
  (compared sorted), HSCAN (to completion), HRANDFIELD (same shape, made of the hash's fields);
  SMEMBERS/SINTER/SUNION/SDIFF (sorted), SSCAN, SRANDMEMBER (same shape, made of members).
  SPOP is drawn only where its outcome is not random.
* Keys are never left already-expired (SET EXAT in the past is unit-tested instead), so
  Redis's background expiry cannot make the two sides drift.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
from _kv_redis import Driver, RawRedis, normalize, redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respkv.kv import lookup

KEYS = [b"a", b"b", b"k:1", b"k:2", b"x\x00y"]
VALUES = [
    b"", b"0", b"1", b"-1", b"42", b"9223372036854775807", b"-9223372036854775808", b"1.5",
    b"-0.25", b"abc", b"3e2", b"1e400", b" 1", b"01", b"+5", b"inf", b"nan", b"0x1p3",
    b"hello world", b"10.50000", b"-0", b"1e-30",
]  # fmt: skip
INTS = [
    b"0", b"1", b"-1", b"5", b"100", b"-100", b"9223372036854775807", b"-9223372036854775808",
    b"abc", b"1.5", b"", b"9223372036854775808", b"007",
]  # fmt: skip
FLOATS = [b"0.1", b"-0.1", b"1e308", b"1e-20", b"5.0e3", b"inf", b"-inf", b"3", b"abc", b"1e5000"]
TTL_S = [b"300", b"600", b"0", b"-5", b"abc", b"9223372036854775807", b"922337203685477"]
TTL_MS = [b"300000", b"600000", b"0", b"-5", b"abc", b"9223372036854775807"]
ABS_S = [b"4102444800", b"4102444900", b"1", b"0", b"-1", b"abc"]
ABS_MS = [b"4102444800000", b"4102444900000", b"1", b"9223372036854775807", b"abc"]
FUTURE_S = [b"4102444800", b"4102444900"]
FUTURE_MS = [b"4102444800000", b"4102444900000"]
PATTERNS = [
    b"*",
    b"k:*",
    b"?",
    b"[ab]",
    b"[^a]*",
    b"k\\:1",
    b"*1",
    b"[a-c]",
    b"x*",
    b"**",
    b"k:[12",
]

key = st.sampled_from(KEYS)
value = st.sampled_from(VALUES)
integer = st.sampled_from(INTS)


def opt(*choices: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    return st.sampled_from(list(choices))


def name_case(name: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([name, name.upper()])


def cmd(name: bytes, *parts: st.SearchStrategy[Any]) -> st.SearchStrategy[list[bytes]]:
    def build(drawn: tuple[Any, ...]) -> list[bytes]:
        out = [drawn[0]]
        for item in drawn[1:]:
            out += item if isinstance(item, list) else [item]
        return out

    return st.tuples(name_case(name), *parts).map(build)


set_option = st.one_of(
    opt([b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], [b"FOO"], [b"EX"]),
    st.tuples(st.sampled_from([b"EX", b"ex"]), st.sampled_from(TTL_S)).map(list),
    st.tuples(st.just(b"PX"), st.sampled_from(TTL_MS)).map(list),
    st.tuples(st.just(b"EXAT"), st.sampled_from([*FUTURE_S, b"0", b"abc"])).map(list),
    st.tuples(st.just(b"PXAT"), st.sampled_from([*FUTURE_MS, b"-1"])).map(list),
)
getex_option = st.one_of(
    opt([b"PERSIST"], [b"NX"], [b"FOO"]),
    st.tuples(st.just(b"EX"), st.sampled_from(TTL_S)).map(list),
    st.tuples(st.just(b"PX"), st.sampled_from(TTL_MS)).map(list),
    st.tuples(st.just(b"EXAT"), st.sampled_from(ABS_S)).map(list),
    st.tuples(st.just(b"PXAT"), st.sampled_from(ABS_MS)).map(list),
)


def flat(options: list[list[bytes]]) -> list[bytes]:
    return [b for o in options for b in o]


relative_flags = st.lists(st.sampled_from([b"NX", b"XX", b"nx", b"FOO"]), max_size=2)
absolute_flags = st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"gt"]), max_size=2)
scan_options = st.lists(
    st.one_of(
        st.tuples(st.just(b"MATCH"), st.sampled_from(PATTERNS)).map(list),
        st.tuples(st.just(b"COUNT"), st.sampled_from([b"1", b"2", b"100", b"0", b"abc"])).map(list),
        st.tuples(
            st.just(b"TYPE"), st.sampled_from([b"string", b"STRING", b"hash", b"set", b"x"])
        ).map(list),
        opt([b"BOGUS"]),
    ),
    max_size=3,
).map(flat)
db_arg = st.sampled_from([b"0", b"1", b"99", b"-1", b"abc"])
copy_options = st.lists(
    st.one_of(opt([b"REPLACE"], [b"FOO"]), st.tuples(st.just(b"DB"), db_arg).map(list)),
    max_size=2,
).map(flat)

FIELDS = [b"f", b"g", b"h:1", b"", b"n"]
field = st.sampled_from(FIELDS)
field_values = st.lists(st.tuples(field, value).map(list), min_size=1, max_size=3).map(flat)
hscan_options = st.lists(
    st.one_of(
        st.tuples(st.just(b"MATCH"), st.sampled_from([b"*", b"h*", b"?", b"[fg]"])).map(list),
        st.tuples(st.just(b"COUNT"), st.sampled_from([b"1", b"2", b"100", b"0", b"abc"])).map(list),
        opt([b"TYPE", b"hash"], [b"BOGUS"]),
    ),
    max_size=2,
).map(flat)
hrandfield_args = st.one_of(
    st.just([]),
    st.tuples(st.sampled_from([b"0", b"1", b"3", b"10", b"-1", b"-4", b"abc"])).map(list),
    st.tuples(
        st.sampled_from([b"2", b"-3", b"10", b"9223372036854775807"]),
        st.sampled_from([b"WITHVALUES", b"withvalues", b"FOO"]),
    ).map(list),
)

#: Keys of the collection commands: mostly their own, some shared with strings (WRONGTYPE).
HASH_KEYS = [b"h1", b"h2", b"h1", b"h2", b"a", b"x\x00y"]
hkey = st.sampled_from(HASH_KEYS)

HASH_COMMANDS = st.one_of(
    cmd(b"hset", hkey, field_values),
    cmd(b"hset", hkey, field_values, field),  # odd: wrong arity
    cmd(b"hmset", hkey, field_values),
    cmd(b"hsetnx", hkey, field, value),
    cmd(b"hget", hkey, field),
    cmd(b"hmget", hkey, st.lists(field, min_size=1, max_size=3)),
    cmd(b"hgetall", hkey),
    cmd(b"hdel", hkey, st.lists(field, min_size=1, max_size=3)),
    cmd(b"hexists", hkey, field),
    cmd(b"hlen", hkey),
    cmd(b"hkeys", hkey),
    cmd(b"hvals", hkey),
    cmd(b"hstrlen", hkey, field),
    cmd(b"hincrby", hkey, field, integer),
    cmd(b"hincrbyfloat", hkey, field, st.sampled_from(FLOATS + VALUES)),
    cmd(b"hrandfield", hkey, hrandfield_args),
    cmd(b"hscan", hkey, st.sampled_from([b"0", b"0", b"abc"]), hscan_options),
)

SET_KEYS = [b"s1", b"s2", b"s3", b"s1", b"s2", b"a", b"h1"]
skey = st.sampled_from(SET_KEYS)
MEMBERS = [b"m", b"n", b"1", b"-5", b"", b"x\x00y", b"long member"]
member = st.sampled_from(MEMBERS)
skeys = st.lists(skey, min_size=1, max_size=3)
sscan_options = st.lists(
    st.one_of(
        st.tuples(st.just(b"MATCH"), st.sampled_from([b"*", b"m*", b"?", b"[1-9]"])).map(list),
        st.tuples(st.just(b"COUNT"), st.sampled_from([b"1", b"3", b"0", b"abc"])).map(list),
        opt([b"TYPE", b"set"], [b"BOGUS"]),
    ),
    max_size=2,
).map(flat)

SET_COMMANDS = st.one_of(
    cmd(b"sadd", skey, st.lists(member, min_size=1, max_size=4)),
    cmd(b"srem", skey, st.lists(member, min_size=1, max_size=3)),
    cmd(b"smembers", skey),
    cmd(b"sismember", skey, member),
    cmd(b"smismember", skey, st.lists(member, min_size=1, max_size=3)),
    cmd(b"scard", skey),
    # Only SPOPs whose outcome is not random (everything, nothing, errors): a random pop would
    # leave the two sides with different sets. Random pops are unit-tested.
    cmd(b"spop", skey, st.sampled_from([[b"100"], [b"0"], [b"-1"], [b"x"], [b"100", b"1"]])),
    cmd(b"srandmember", skey, st.sampled_from([[], [b"2"], [b"-3"], [b"0"], [b"100"], [b"x"]])),
    cmd(b"smove", skey, skey, member),
    cmd(b"sinter", skeys),
    cmd(b"sunion", skeys),
    cmd(b"sdiff", skeys),
    cmd(b"sinterstore", skey, skeys),
    cmd(b"sunionstore", skey, skeys),
    cmd(b"sdiffstore", skey, skeys),
    cmd(
        b"sintercard",
        st.sampled_from([b"1", b"2", b"3", b"0", b"x"]),
        skeys,
        st.sampled_from([[], [b"LIMIT", b"1"], [b"limit", b"0"], [b"LIMIT", b"-1"], [b"FOO"]]),
    ),
    cmd(b"sscan", skey, st.sampled_from([b"0", b"0", b"abc"]), sscan_options),
)

#: Sorted sets: small (listpack-encoded in Redis), scores from a few floats, bad ones included.
ZSET_KEYS = [b"z1", b"z2", b"z1", b"z2", b"z3", b"a", b"h1"]
zkey = st.sampled_from(ZSET_KEYS)
ZSET_MEMBERS = [b"a", b"b", b"c", b"", b"m:1", b"ab", b"d", b"e\x00"]
zmember = st.sampled_from(ZSET_MEMBERS)
GOOD_SCORES = [b"0", b"1", b"-1", b"1.5", b"-0", b"inf", b"-inf", b"+inf", b"2", b"3", b"0.1"]
BAD_SCORES = [b"1e400", b"nan", b"abc", b"", b" 1", b"1 ", b"0x10", b"1e-400", b"1e"]
score = st.one_of(st.sampled_from(GOOD_SCORES), st.sampled_from(GOOD_SCORES + BAD_SCORES))
SCORE_BOUNDS = [
    b"-inf", b"+inf", b"0", b"(0", b"1", b"(1", b"1.5", b"(1.5", b"-1", b"(-1", b"inf", b"(inf",
    b"-0", b"(", b"", b" 1", b"abc", b"(x", b"nan", b"2", b"(3",
]  # fmt: skip
LEX_BOUNDS = [b"-", b"+", b"[a", b"(a", b"[b", b"(b", b"[c", b"(ab", b"[", b"(", b"a", b"", b"+x"]
RANKS = [b"0", b"1", b"-1", b"-2", b"2", b"10", b"-10", b"abc", b"-0"]
score_bound = st.sampled_from(SCORE_BOUNDS)
lex_bound = st.sampled_from(LEX_BOUNDS)
rank = st.sampled_from(RANKS)
any_bound = st.sampled_from(SCORE_BOUNDS + LEX_BOUNDS + RANKS)
zadd_flags = st.lists(
    st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR", b"incr", b"ch"]), max_size=3
)
score_members = st.lists(st.tuples(score, zmember).map(list), min_size=1, max_size=3).map(flat)
many_score_members = st.lists(
    st.tuples(st.sampled_from(GOOD_SCORES), zmember).map(list), min_size=1, max_size=6
).map(flat)
limit = st.tuples(
    st.just(b"LIMIT"),
    st.sampled_from([b"0", b"1", b"2", b"-1", b"5", b"abc"]),
    st.sampled_from([b"1", b"2", b"-1", b"0", b"10", b"x"]),
).map(list)
zrange_options = st.lists(
    st.one_of(opt([b"BYSCORE"], [b"BYLEX"], [b"REV"], [b"WITHSCORES"], [b"FOO"]), limit),
    max_size=3,
).map(flat)
byscore_options = st.lists(st.one_of(opt([b"WITHSCORES"], [b"withscores"]), limit), max_size=2).map(
    flat
)
numkeys = st.sampled_from([b"1", b"2", b"2", b"3", b"0", b"-1", b"abc", b"9"])
WEIGHTS = [b"1", b"2", b"-1", b"0", b"0.5", b"inf", b"-inf", b"abc"]
setop_options = st.lists(
    st.one_of(
        st.tuples(
            st.just(b"WEIGHTS"), st.lists(st.sampled_from(WEIGHTS), min_size=1, max_size=3)
        ).map(lambda t: [t[0], *t[1]]),
        st.tuples(st.just(b"AGGREGATE"), st.sampled_from([b"SUM", b"min", b"MAX", b"avg"])).map(
            list
        ),
        opt([b"WITHSCORES"]),
    ),
    max_size=2,
).map(flat)
zrandmember_args = st.one_of(
    st.just([]),
    st.tuples(st.sampled_from([b"0", b"1", b"3", b"10", b"-1", b"-4", b"abc"])).map(list),
    st.tuples(
        st.sampled_from([b"2", b"-3", b"10", b"9223372036854775807"]),
        st.sampled_from([b"WITHSCORES", b"withscores", b"FOO"]),
    ).map(list),
)

ZSET_COMMANDS = st.one_of(
    cmd(b"zadd", zkey, zadd_flags, score_members),
    cmd(b"zadd", zkey, score_members),
    cmd(b"zincrby", zkey, score, zmember),
    cmd(b"zrem", zkey, st.lists(zmember, min_size=1, max_size=3)),
    cmd(b"zscore", zkey, zmember),
    cmd(b"zmscore", zkey, st.lists(zmember, min_size=1, max_size=3)),
    cmd(b"zcard", zkey),
    cmd(b"zcount", zkey, score_bound, score_bound),
    cmd(b"zlexcount", zkey, lex_bound, lex_bound),
    cmd(b"zrank", zkey, zmember),
    cmd(b"zrevrank", zkey, zmember),
    cmd(b"zrange", zkey, rank, rank, zrange_options),
    cmd(b"zrange", zkey, any_bound, any_bound, zrange_options),
    cmd(b"zrevrange", zkey, rank, rank, st.sampled_from([[], [b"WITHSCORES"], [b"LIMIT"]])),
    cmd(b"zrangebyscore", zkey, score_bound, score_bound, byscore_options),
    cmd(b"zrevrangebyscore", zkey, score_bound, score_bound, byscore_options),
    cmd(b"zrangebylex", zkey, lex_bound, lex_bound, st.lists(limit, max_size=1).map(flat)),
    cmd(b"zrevrangebylex", zkey, lex_bound, lex_bound, st.lists(limit, max_size=1).map(flat)),
    cmd(b"zrangestore", zkey, zkey, any_bound, any_bound, zrange_options),
    cmd(b"zpopmin", zkey, st.sampled_from([[], [b"0"], [b"1"], [b"2"], [b"10"], [b"-1"], [b"x"]])),
    cmd(b"zpopmax", zkey, st.sampled_from([[], [b"0"], [b"1"], [b"3"], [b"-2"], [b"1", b"2"]])),
    cmd(b"zremrangebyrank", zkey, rank, rank),
    cmd(b"zremrangebyscore", zkey, score_bound, score_bound),
    cmd(b"zremrangebylex", zkey, lex_bound, lex_bound),
    cmd(b"zunionstore", zkey, numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(b"zinterstore", zkey, numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(b"zunion", numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(b"zinter", numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(b"zdiff", numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(b"zdiffstore", zkey, numkeys, st.lists(zkey, min_size=1, max_size=3), setop_options),
    cmd(
        b"zintercard",
        numkeys,
        st.lists(zkey, min_size=1, max_size=3),
        st.sampled_from([[], [b"LIMIT", b"1"], [b"LIMIT", b"0"], [b"limit", b"-1"], [b"LIMIT"]]),
    ),
    cmd(
        b"zmpop",
        st.sampled_from([b"1", b"2", b"3", b"0", b"x"]),
        st.lists(zkey, min_size=1, max_size=3),
        st.sampled_from([b"MIN", b"max", b"FOO"]),
        st.sampled_from([[], [b"COUNT", b"2"], [b"count", b"10"], [b"COUNT", b"0"], [b"COUNT"]]),
    ),
    cmd(b"zrandmember", zkey, zrandmember_args),
    cmd(b"zscan", zkey, st.sampled_from([b"0", b"0", b"abc"]), hscan_options),
)

LIST_KEYS = [b"l1", b"l1", b"l1", b"l2", b"l2", b"a", b"h1"]
lkey = st.sampled_from(LIST_KEYS)
ELEMENTS = [b"e", b"f", b"g", b"", b"1"]
element = st.sampled_from(ELEMENTS)
elements = st.lists(element, min_size=1, max_size=6)
INDEXES = [b"0", b"1", b"-1", b"2", b"-2", b"5", b"-7", b"100", b"abc", b"9223372036854775807"]
index = st.sampled_from(INDEXES)
side = st.sampled_from([b"LEFT", b"right", b"RIGHT", b"up"])
pop_count = st.sampled_from([[], [b"0"], [b"1"], [b"2"], [b"10"], [b"-1"], [b"abc"]])
TIMEOUTS = [b"0.01", b"1", b"0", b"-1", b"abc", b"1.5", b"-0.5", b"1e300", b"inf", b"nan"]
timeout = st.sampled_from(TIMEOUTS)
lpos_valid = st.lists(
    st.one_of(
        st.tuples(st.just(b"RANK"), st.sampled_from([b"1", b"2", b"-1", b"-2", b"3"])).map(list),
        st.tuples(st.just(b"COUNT"), st.sampled_from([b"0", b"1", b"2"])).map(list),
        st.tuples(st.just(b"MAXLEN"), st.sampled_from([b"0", b"1", b"3"])).map(list),
    ),
    max_size=3,
).map(flat)
lpos_invalid = st.lists(
    st.one_of(
        st.tuples(st.just(b"RANK"), st.sampled_from([b"0", b"abc", b"-9223372036854775808"])).map(
            list
        ),
        st.tuples(st.just(b"COUNT"), st.sampled_from([b"-1", b"x"])).map(list),
        st.tuples(st.just(b"MAXLEN"), st.sampled_from([b"-1", b"y"])).map(list),
        opt([b"BOGUS"], [b"RANK"]),
    ),
    min_size=1,
    max_size=2,
).map(flat)
lpos_options = st.one_of(lpos_valid, lpos_valid, lpos_valid, lpos_invalid)

LIST_COMMANDS = st.one_of(
    cmd(b"lpush", lkey, elements),
    cmd(b"rpush", lkey, elements),
    cmd(b"lpushx", lkey, elements),
    cmd(b"rpushx", lkey, elements),
    cmd(b"lpop", lkey, pop_count),
    cmd(b"rpop", lkey, pop_count),
    cmd(b"llen", lkey),
    cmd(b"lrange", lkey, index, index),
    cmd(b"lindex", lkey, index),
    cmd(b"lset", lkey, index, element),
    cmd(b"linsert", lkey, st.sampled_from([b"BEFORE", b"after", b"middle"]), element, element),
    cmd(b"lrem", lkey, st.sampled_from([b"0", b"1", b"-1", b"2", b"-2", b"x"]), element),
    cmd(b"ltrim", lkey, index, index),
    cmd(b"lpos", lkey, element, lpos_options),
    cmd(b"lmove", lkey, lkey, side, side),
    cmd(b"rpoplpush", lkey, lkey),
    cmd(b"blpop", st.lists(lkey, min_size=1, max_size=3), timeout),
    cmd(b"brpop", st.lists(lkey, min_size=1, max_size=3), timeout),
    cmd(b"blmove", lkey, lkey, side, side, timeout),
    cmd(b"brpoplpush", lkey, lkey, timeout),
)
#: Run on Redis inside MULTI, where they never block (their non-blocking forms).
BLOCKING: Final = {b"blpop", b"brpop", b"blmove", b"brpoplpush"}

COMMAND = st.one_of(
    HASH_COMMANDS,
    SET_COMMANDS,
    ZSET_COMMANDS,
    ZSET_COMMANDS,
    LIST_COMMANDS,
    LIST_COMMANDS,
    cmd(b"get", key),
    cmd(b"set", key, value, st.lists(set_option, max_size=3).map(flat)),
    cmd(b"setnx", key, value),
    cmd(b"setex", key, st.sampled_from(TTL_S), value),
    cmd(b"psetex", key, st.sampled_from(TTL_MS), value),
    cmd(b"getset", key, value),
    cmd(b"getdel", key),
    cmd(b"getex", key, st.lists(getex_option, max_size=2).map(flat)),
    cmd(b"mget", st.lists(key, min_size=1, max_size=3)),
    cmd(b"mset", st.lists(st.sampled_from(KEYS + VALUES), min_size=2, max_size=5)),
    cmd(b"msetnx", st.lists(st.sampled_from(KEYS + VALUES), min_size=2, max_size=5)),
    cmd(b"incr", key),
    cmd(b"decr", key),
    cmd(b"incrby", key, integer),
    cmd(b"decrby", key, integer),
    cmd(b"incrbyfloat", key, st.sampled_from(FLOATS + VALUES)),
    cmd(b"append", key, value),
    cmd(b"strlen", key),
    cmd(b"getrange", key, integer, integer),
    cmd(b"substr", key, st.sampled_from([b"0", b"-1", b"2", b"-3"]), integer),
    cmd(b"setrange", key, st.sampled_from([b"0", b"1", b"7", b"-1", b"abc", b"536870912"]), value),
    cmd(b"del", st.lists(key, min_size=1, max_size=3)),
    cmd(b"unlink", st.lists(key, min_size=1, max_size=2)),
    cmd(b"exists", st.lists(key, min_size=1, max_size=3)),
    cmd(b"touch", st.lists(key, min_size=1, max_size=2)),
    cmd(b"type", key),
    cmd(b"keys", st.sampled_from(PATTERNS)),
    cmd(b"scan", st.sampled_from([b"0", b"0", b"abc", b"-1x", b""]), scan_options),
    cmd(b"rename", key, key),
    cmd(b"renamenx", key, key),
    cmd(b"copy", key, key, copy_options),
    cmd(b"move", key, db_arg),
    cmd(b"randomkey"),
    cmd(b"dbsize"),
    cmd(b"flushdb", st.sampled_from([[], [b"ASYNC"], [b"sync"], [b"FOO"]])),
    cmd(b"swapdb", st.sampled_from([b"0", b"1", b"99", b"a"]), st.sampled_from([b"1", b"0", b"b"])),
    cmd(b"expire", key, st.sampled_from(TTL_S), relative_flags),
    cmd(b"pexpire", key, st.sampled_from(TTL_MS), relative_flags),
    cmd(b"expireat", key, st.sampled_from(ABS_S), absolute_flags),
    cmd(b"pexpireat", key, st.sampled_from(ABS_MS), absolute_flags),
    cmd(b"ttl", key),
    cmd(b"pttl", key),
    cmd(b"expiretime", key),
    cmd(b"pexpiretime", key),
    cmd(b"persist", key),
    opt([b"get"], [b"set", b"k"], [b"nosuchcommand", b"a", b"b"], [b"mget"], [b"GETRANGE", b"a"]),
    opt([b"#expire", b"a"]),
)
STEP = st.tuples(st.sampled_from([0, 0, 0, 1]), COMMAND)


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


def _tolerant(name: bytes, ours: Any, theirs: Any) -> bool:
    if isinstance(ours, int) and isinstance(theirs, int) and ours >= 0 and theirs >= 0:
        tolerance = {b"ttl": 2, b"expiretime": 2, b"pttl": 2000, b"pexpiretime": 2000}[name]
        return abs(ours - theirs) <= tolerance
    return bool(ours == theirs)


def _pairs(flat_reply: list[Any]) -> list[tuple[Any, Any]]:
    return sorted(zip(flat_reply[::2], flat_reply[1::2], strict=True))


#: Replies whose order is the hash order in Redis and the byte order here.
UNORDERED: Final = {
    b"keys", b"hkeys", b"hvals", b"smembers", b"sinter", b"sunion", b"sdiff", b"spop",
}  # fmt: skip
UNORDERED_PAIRS: Final = {b"hgetall"}


def check_reply(name: bytes, mine: Any, theirs: Any, context: str) -> None:
    if name in (b"ttl", b"pttl", b"expiretime", b"pexpiretime"):
        assert _tolerant(name, mine, theirs), f"{context}: ours {mine!r} redis {theirs!r}"
    elif name in UNORDERED and isinstance(theirs, list):
        assert isinstance(mine, list), context
        assert sorted(mine) == sorted(theirs), f"{context}: ours {mine!r} redis {theirs!r}"
    elif name in UNORDERED_PAIRS and isinstance(theirs, list):
        assert isinstance(mine, list), context
        assert _pairs(mine) == _pairs(theirs), f"{context}: ours {mine!r} redis {theirs!r}"
    else:
        assert mine == theirs, f"{context}: ours {mine!r} redis {theirs!r}"


def _scan_all(call: Any, args: list[bytes], at: int = 1, pairs: bool = False) -> Any:
    """Run SCAN (HSCAN...: the cursor at ``at``) to the end; the set of keys (of (field, value)
    pairs if ``pairs``), or the first error."""
    seen: set[Any] = set()
    cursor = args[at]
    rounds = 0
    while True:
        reply = call([*args[:at], cursor, *args[at + 1 :]])
        if not isinstance(reply, list):
            return reply
        items = reply[1]
        seen |= set(zip(items[::2], items[1::2], strict=True)) if pairs else set(items)
        cursor = reply[0]
        if cursor == b"0":
            return sorted(seen)
        rounds += 1
        assert rounds < 1000, "SCAN does not terminate"


def _check_random_fields(
    context: str, args: list[bytes], mine: Any, theirs: Any, hgetall: dict[bytes, bytes]
) -> None:
    """HRANDFIELD: the same shape as Redis's reply, made of the hash's fields (and values)."""
    if not isinstance(theirs, list) or not theirs:
        assert mine == theirs, f"{context}: ours {mine!r} redis {theirs!r}"
        return
    assert isinstance(mine, list) and len(mine) == len(theirs), f"{context}: {mine!r} {theirs!r}"
    withvalues = len(args) == 4
    fields = mine[::2] if withvalues else mine
    assert set(fields) <= set(hgetall), context
    if withvalues:
        assert all(hgetall[f] == v for f, v in zip(mine[::2], mine[1::2], strict=True)), context
    if int(args[2]) > 0:
        assert len(set(fields)) == len(fields), context


def _without_blocking(redis: RawRedis, args: list[bytes]) -> Any:
    """A blocking command's reply from Redis without blocking: inside MULTI."""
    assert redis.call("MULTI") == b"OK"
    queued = redis.call(*args)
    if queued != b"QUEUED":
        redis.call("DISCARD")
        return queued
    return redis.call("EXEC")[0]


SEED = [
    (0, [b"mset", b"a", b"1", b"b", b"abc", b"k:1", b"10"]),
    (0, [b"expire", b"b", b"500"]),
    (1, [b"mset", b"a", b"x", b"k:2", b"2.5"]),
    (0, [b"hset", b"h1", b"f", b"1", b"g", b"abc", b"h:1", b"1.5"]),
    (0, [b"sadd", b"s1", b"m", b"n", b"1", b"-5"]),
    (0, [b"sadd", b"s2", b"n", b"1", b"long member"]),
    (1, [b"hset", b"h2", b"n", b"10"]),
    (1, [b"sadd", b"s1", b"m", b""]),
]


def compare(redis: RawRedis, ours: Driver, steps: list[tuple[int, list[bytes]]]) -> None:
    current_db = 0
    redis.call("SELECT", "0")
    for db, args in SEED + steps:
        if db != current_db:
            redis.call("SELECT", str(db))
            current_db = db
        name = args[0].lower()
        now = int(time.time() * 1000)

        def our_call(argv: list[bytes], db: int = db, now: int = now) -> Any:
            return normalize(ours.call(argv, db, now))

        if name == b"scan":
            mine = _scan_all(our_call, args)
            theirs = _scan_all(lambda argv: redis.call(*argv), args)
        elif name in (b"hscan", b"sscan", b"zscan"):
            pairs = name != b"sscan"
            mine = _scan_all(our_call, args, 2, pairs=pairs)
            theirs = _scan_all(lambda argv: redis.call(*argv), args, 2, pairs=pairs)
        elif name in BLOCKING:
            theirs = _without_blocking(redis, args)
            mine = our_call(args)
        else:
            theirs = redis.call(*args)
            mine = our_call(args)
        context = f"db {db}: {args!r}"
        if name in (b"ttl", b"pttl", b"expiretime", b"pexpiretime") or name in (
            UNORDERED | UNORDERED_PAIRS
        ):
            check_reply(name, mine, theirs, context)
        elif name == b"hrandfield" and len(args) > 2:
            everything = our_call([b"hgetall", args[1]])
            hgetall = dict(zip(everything[::2], everything[1::2], strict=True))
            _check_random_fields(context, args, mine, theirs, hgetall)
        elif name == b"zrandmember" and len(args) > 2:
            everything = our_call([b"zrange", args[1], b"0", b"-1", b"withscores"])
            zrange = dict(zip(everything[::2], everything[1::2], strict=True))
            _check_random_fields(context, args, mine, theirs, zrange)
        elif name == b"zrandmember" and isinstance(theirs, bytes):
            assert isinstance(mine, bytes), f"{context}: ours {mine!r} redis {theirs!r}"
            assert mine in our_call([b"zrange", args[1], b"0", b"-1"]), context
        elif name == b"hrandfield" and isinstance(theirs, bytes):
            assert isinstance(mine, bytes), f"{context}: ours {mine!r} redis {theirs!r}"
            assert mine in our_call([b"hkeys", args[1]]), context
        elif name == b"srandmember" and (
            isinstance(theirs, bytes) or (theirs and theirs[0] != "error")
        ):
            members = set(our_call([b"smembers", args[1]]))
            if isinstance(theirs, bytes):
                assert isinstance(mine, bytes) and mine in members, f"{context}: {mine!r}"
            else:
                assert isinstance(mine, list) and len(mine) == len(theirs), f"{context}: {mine!r}"
                assert set(mine) <= members, context
                if int(args[2]) > 0:
                    assert len(set(mine)) == len(mine), context
        elif name == b"randomkey":
            assert (mine is None) == (theirs is None), f"{context}: {mine!r} / {theirs!r}"
            if mine is not None:
                assert mine in our_call([b"keys", b"*"]), context
                assert theirs in redis.call("KEYS", "*"), context
        elif name == b"#expire":
            assert theirs[0] == "error" and mine[0] == "error", context  # clients cannot call it
        else:
            assert mine == theirs, f"{context}: ours {mine!r} redis {theirs!r}"
    # The whole keyspace must agree at the end, in both databases.
    for db in (0, 1):
        redis.call("SELECT", str(db))
        now = int(time.time() * 1000)
        theirs_keys = sorted(redis.call("KEYS", "*"))
        assert sorted(normalize(ours.call([b"keys", b"*"], db, now))) == theirs_keys
        for k in theirs_keys:
            their_type = redis.call("TYPE", k)
            assert normalize(ours.call([b"type", k], db, now)) == their_type, k
            if their_type == b"list":
                mine_list = normalize(ours.call([b"lrange", k, b"0", b"-1"], db, now))
                assert mine_list == redis.call("LRANGE", k, "0", "-1"), k
            elif their_type == b"hash":
                mine_all = normalize(ours.call([b"hgetall", k], db, now))
                assert _pairs(mine_all) == _pairs(redis.call("HGETALL", k)), k
            elif their_type == b"set":
                mine_all = normalize(ours.call([b"smembers", k], db, now))
                assert sorted(mine_all) == sorted(redis.call("SMEMBERS", k)), k
            elif their_type == b"zset":
                everything = [b"zrange", k, b"0", b"-1", b"withscores"]
                assert normalize(ours.call(everything, db, now)) == redis.call(*everything), k
            else:
                assert normalize(ours.call([b"get", k], db, now)) == redis.call("GET", k)


DIFF_SETTINGS = settings(
    max_examples=int(os.environ.get("KV_DIFF_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run_against_redis(redis_port: int, steps: list[tuple[int, list[bytes]]]) -> None:
    redis = RawRedis(redis_port)
    try:
        redis.call("FLUSHALL")
        compare(redis, Driver(), steps)
    finally:
        redis.close()


@DIFF_SETTINGS
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_differential_against_redis(redis_port: int, steps: list[tuple[int, list[bytes]]]) -> None:
    run_against_redis(redis_port, steps)


ZSET_STEP = st.tuples(
    st.sampled_from([0, 0, 0, 0, 1]),
    st.one_of(
        ZSET_COMMANDS,
        cmd(b"zadd", zkey, many_score_members),
        cmd(b"zadd", zkey, many_score_members),
        cmd(b"set", zkey, value),
        cmd(b"del", zkey),
        cmd(b"copy", zkey, zkey, copy_options),
        cmd(b"rename", zkey, zkey),
        cmd(b"move", zkey, db_arg),
    ),
)


LIST_STEP = st.tuples(
    st.sampled_from([0, 0, 0, 1]),
    st.one_of(
        LIST_COMMANDS,
        LIST_COMMANDS,
        cmd(b"rpush", lkey, elements),
        cmd(b"lpos", lkey, element, lpos_options),
        cmd(b"set", st.sampled_from([b"a", b"l2"]), value),
        cmd(b"del", st.lists(lkey, min_size=1, max_size=2)),
        cmd(b"rename", lkey, lkey),
        cmd(b"copy", lkey, lkey, copy_options),
        cmd(b"type", lkey),
    ),
)


LIST_SEED = [
    (0, [b"rpush", b"l1", b"e", b"f", b"g", b"e", b"1", b"f", b"e", b"", b"g"]),
    (0, [b"lpush", b"l2", b"f", b"e", b"g", b"e"]),
    (1, [b"rpush", b"l1", b"g", b"e", b"f"]),
]


@DIFF_SETTINGS
@given(steps=st.lists(ZSET_STEP, min_size=1, max_size=30))
def test_sorted_sets_against_redis(redis_port: int, steps: list[tuple[int, list[bytes]]]) -> None:
    """Mostly sorted-set commands, so that their interplay is explored deeply."""
    run_against_redis(redis_port, steps)


@DIFF_SETTINGS
@given(steps=st.lists(LIST_STEP, min_size=5, max_size=40))
def test_lists_against_redis(redis_port: int, steps: list[tuple[int, list[bytes]]]) -> None:
    """Mostly list commands, on lists that start long enough for their edge cases."""
    run_against_redis(redis_port, LIST_SEED + steps)


def test_every_generated_command_is_known() -> None:
    """The generator covers the table's handled commands (a new handler needs a strategy)."""
    from respkv.kv import COMMANDS

    handled = {name for name, spec in COMMANDS.items() if spec.handler is not None}
    generated = {
        b"get", b"set", b"setnx", b"setex", b"psetex", b"getset", b"getdel", b"getex", b"mget",
        b"mset", b"msetnx", b"incr", b"decr", b"incrby", b"decrby", b"incrbyfloat", b"append",
        b"strlen", b"getrange", b"substr", b"setrange", b"del", b"unlink", b"exists", b"touch",
        b"type", b"keys", b"scan", b"rename", b"renamenx", b"copy", b"move", b"randomkey",
        b"dbsize", b"flushdb", b"swapdb", b"expire", b"pexpire", b"expireat", b"pexpireat",
        b"ttl", b"pttl", b"expiretime", b"pexpiretime", b"persist",
        b"hset", b"hmset", b"hsetnx", b"hget", b"hmget", b"hgetall", b"hdel", b"hexists",
        b"hlen", b"hkeys", b"hvals", b"hstrlen", b"hincrby", b"hincrbyfloat", b"hrandfield",
        b"hscan", b"sadd", b"srem", b"smembers", b"sismember", b"smismember", b"scard", b"spop",
        b"srandmember", b"smove", b"sinter", b"sunion", b"sdiff", b"sinterstore", b"sunionstore",
        b"sdiffstore", b"sintercard", b"sscan",
        b"zadd", b"zincrby", b"zrem", b"zscore", b"zmscore", b"zcard", b"zcount", b"zlexcount",
        b"zrank", b"zrevrank", b"zrange", b"zrevrange", b"zrangebyscore", b"zrevrangebyscore",
        b"zrangebylex", b"zrevrangebylex", b"zrangestore", b"zpopmin", b"zpopmax",
        b"zremrangebyrank", b"zremrangebyscore", b"zremrangebylex", b"zunionstore",
        b"zinterstore", b"zrandmember", b"zscan", b"zunion", b"zinter", b"zdiff", b"zdiffstore",
        b"zintercard", b"zmpop",
        b"lpush", b"rpush", b"lpushx", b"rpushx", b"lpop", b"rpop", b"llen", b"lrange",
        b"lindex", b"lset", b"linsert", b"lrem", b"ltrim", b"lpos", b"lmove", b"rpoplpush",
        b"blpop", b"brpop", b"blmove", b"brpoplpush",
    }  # fmt: skip
    assert {n.decode() for n in generated} | {"flushall"} == handled
    assert all(lookup(n) is not None for n in generated)


def _queueable(args: list[bytes]) -> bool:
    """Commands Redis accepts inside MULTI without EXECABORT (known, right arity) and whose
    reply needs no cross-check against the keyspace."""
    spec = lookup(args[0])
    return (
        spec is not None
        and spec.handler is not None
        and spec.arity_ok(len(args))
        and spec.name
        not in ("scan", "randomkey", "hscan", "hrandfield", "sscan", "srandmember", "zscan")
        and spec.name != "zrandmember"
    )


@settings(
    max_examples=int(os.environ.get("KV_DIFF_EXAMPLES", "300")) // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chunks=st.lists(st.lists(STEP, min_size=1, max_size=8), min_size=1, max_size=5),
    as_batch=st.booleans(),
)
def test_transactions_and_batches_against_redis(
    redis_port: int, chunks: list[list[tuple[int, list[bytes]]]], as_batch: bool
) -> None:
    """MULTI/EXEC on Redis against one transaction payload, or (as_batch) against several
    write payloads applied in one ``apply`` call."""
    redis = RawRedis(redis_port)
    ours = Driver()
    try:
        redis.call("FLUSHALL")
        compare(redis, ours, [])
        for chunk in chunks:
            steps = [(db, args) for db, args in chunk if _queueable(args)]
            if as_batch:
                steps = [(db, a) for db, a in steps if lookup(a[0]).is_write]  # type: ignore[union-attr]
            if not steps:
                continue
            now = int(time.time() * 1000)
            redis.call("SELECT", "0")
            assert redis.call("MULTI") == b"OK"
            current = 0
            for db, args in steps:
                if db != current:
                    assert redis.call("SELECT", str(db)) == b"QUEUED"
                    current = db
                assert redis.call(*args) == b"QUEUED", args
            theirs_all = redis.call("EXEC")
            theirs = []  # without the replies of the SELECTs queued in between
            current = 0
            k = 0
            for db, _ in steps:
                if db != current:
                    k += 1  # the SELECT's OK
                    current = db
                theirs.append(theirs_all[k])
                k += 1
            if as_batch:
                mine = normalize(ours.batch([(a, db) for db, a in steps], now))
            else:
                encoded = ours.sm.prepare_transaction([(a, db) for db, a in steps], now)
                (replies,) = ours.apply([encoded])
                mine = normalize(replies)
            for (db, args), m, t in zip(steps, mine, theirs, strict=True):
                where = "batch" if as_batch else "EXEC"
                check_reply(args[0].lower(), m, t, f"in {where}: db {db} {args!r}")
        compare(redis, ours, [])
    finally:
        redis.close()
