"""Determinism: the same log gives the same bytes and replies on every replica, whatever the
wall clock, however entries are grouped into apply batches, and across a restart."""

from __future__ import annotations

import time
from typing import Any

from _kv_redis import Driver, normalize
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kv_differential import COMMAND, SEED

from respkv.kv import MemoryBackend, StateMachine, lookup, payload
from respkv.resp.replies import ErrorReply

T0 = 1_700_000_000_000


def build_log(steps: list[tuple[int, list[bytes]]]) -> list[bytes]:
    """Payloads as a leader would propose them, stamps advancing 1 s per command."""
    leader = Driver()
    log: list[bytes] = []
    for i, (db, argv) in enumerate(SEED + steps):
        spec = lookup(argv[0])
        if spec is None or not spec.is_write:
            continue
        encoded = leader.sm.prepare_write(argv, db, T0 + 1000 * i)
        if isinstance(encoded, bytes):
            log.append(encoded)
            leader.apply([encoded])
    return log


def replay(
    log: list[bytes], batch_sizes: list[int], random_bits: Any = None
) -> tuple[dict[bytes, bytes], list[Any]]:
    """``random_bits``: the replica's local random source, which apply must never use."""
    backend = MemoryBackend()
    sm = StateMachine(backend, random_bits=random_bits)
    replies: list[Any] = []
    index = 0
    sizes = iter(batch_sizes)
    while index < len(log):
        size = max(1, next(sizes, 1))
        batch = [(index + 1 + k, p) for k, p in enumerate(log[index : index + size])]
        replies += sm.apply(batch)
        index += len(batch)
    return dict(backend._data), [normalize(r) for r in replies]


#: Random pops too: the differential test draws only SPOPs whose outcome is not random.
RANDOM_POPS = st.tuples(
    st.sampled_from([b"spop", b"SPOP"]),
    st.sampled_from([b"s1", b"s2"]),
    st.sampled_from([[], [b"1"], [b"2"]]),
).map(lambda t: [t[0], t[1], *t[2]])
steps_strategy = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.one_of(RANDOM_POPS, COMMAND)), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(steps=steps_strategy, batches=st.lists(st.integers(1, 8), max_size=40))
def test_replicas_agree_whatever_the_batching(
    steps: list[tuple[int, list[bytes]]], batches: list[int]
) -> None:
    log = build_log(steps)
    one_by_one = replay(log, [])
    batched = replay(log, batches, random_bits=lambda k: 0)
    assert batched == one_by_one


def test_apply_never_reads_the_clock(monkeypatch: Any) -> None:
    log = build_log(
        [
            (0, [b"SET", b"a", b"1", b"EX", b"5"]),
            (0, [b"INCR", b"a"]),
            (0, [b"EXPIRE", b"a", b"-1"]),
            (0, [b"SET", b"b", b"x", b"PX", b"1"]),
            (0, [b"APPEND", b"b", b"y"]),
            (0, [b"GETEX", b"b", b"EX", b"100"]),
        ]
    )
    first = replay(log, [])
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    monkeypatch.setattr(time, "monotonic", lambda: 1.0)
    assert replay(log, [3, 3]) == first


def test_noop_entries_and_applied_index() -> None:
    backend = MemoryBackend()
    sm = StateMachine(backend)
    set_a = sm.prepare_write([b"SET", b"a", b"1"], 0, T0)
    assert isinstance(set_a, bytes)
    assert sm.apply([(1, b""), (2, set_a), (3, b"")]) == [None, normalize_ok(), None]
    assert backend.applied_index == 3
    assert sm.apply([]) == []
    assert backend.applied_index == 3
    assert sm.apply([(4, b"")]) == [None]
    assert backend.applied_index == 4


def normalize_ok() -> Any:
    from respkv.resp.replies import OK

    return OK


def test_restart_continues_from_the_backend() -> None:
    backend = MemoryBackend()
    sm = StateMachine(backend)
    log = build_log(
        [
            (0, [b"SET", b"a", b"1"]),
            (0, [b"SWAPDB", b"0", b"2"]),
            (0, [b"FLUSHDB"]),
            (2, [b"INCR", b"a"]),
            (0, [b"SET", b"n", b"v", b"EX", b"10"]),
        ]
    )
    sm.apply([(i + 1, p) for i, p in enumerate(log[:3])])
    restarted = StateMachine(backend)
    restarted.apply([(i + 4, p) for i, p in enumerate(log[3:])])
    fresh = replay(log, [])
    assert dict(backend._data) == fresh[0]
    assert normalize(restarted.read([b"GET", b"a"], 2, T0)) == b"2"
    assert restarted.read([b"DBSIZE"], 0, T0) == 1


def test_transaction_payload_is_atomic_and_answers_a_list() -> None:
    kv = Driver()
    encoded = kv.sm.prepare_transaction(
        [
            ([b"SET", b"k", b"1"], 0),
            ([b"INCR", b"k"], 0),
            ([b"GET", b"k"], 0),  # reads inside see the earlier writes
            ([b"SET", b"k", b"v", b"EX", b"0"], 0),  # invalid: answered in place
            ([b"INCR", b"s"], 0),
            ([b"DBSIZE"], 0),
            ([b"KEYS", b"*"], 0),
            ([b"SET", b"x", b"y"], 1),
            ([b"MOVE", b"k", b"1"], 0),
            ([b"RANDOMKEY"], 1),
            ([b"SCAN", b"0"], 1),
        ],
        T0,
    )
    (replies,) = kv.apply([encoded])
    assert normalize(replies) == [
        b"OK",
        2,
        b"2",
        ("error", "ERR invalid expire time in 'set' command"),
        1,
        2,
        [b"k", b"s"],
        b"OK",
        1,
        replies[9],
        [b"0", [b"k", b"x"]],
    ]
    assert replies[9] in (b"k", b"x")
    assert normalize(kv.call([b"MGET", b"k", b"s"])) == [None, b"1"]
    assert normalize(kv.call([b"MGET", b"k", b"x"], db=1)) == [b"2", b"y"]
    kind, stamp, commands = payload.decode(encoded)
    assert kind == payload.TRANSACTION and stamp == T0 and len(commands) == 11


def test_prepare_rejects_what_redis_rejects_up_front() -> None:
    sm = StateMachine(MemoryBackend())
    cases = {
        (b"SET", b"k"): "ERR wrong number of arguments for 'set' command",
        (b"NOSUCH", b"a"): "ERR unknown command 'NOSUCH', with args beginning with: 'a' ",
        (b"EXPIRE", b"k", b"x"): "ERR value is not an integer or out of range",
        (b"FLUSHALL", b"x"): "ERR syntax error",
    }
    for argv, message in cases.items():
        assert sm.prepare_write(list(argv), 0, T0) == ErrorReply(message)
    assert isinstance(sm.prepare_write([b"GET", b"k"], 0, T0), ErrorReply)
    assert isinstance(sm.read([b"SET", b"k", b"v"], 0, T0), ErrorReply)
    assert sm.prepare_write([b"SET", b"k", b"v"], 16, T0) == ErrorReply(
        "ERR DB index is out of range"
    )


@given(
    stamp=st.integers(-(2**63), 2**63 - 1),
    db=st.integers(0, 0xFFFE),
    argv=st.lists(st.binary(max_size=20), min_size=1, max_size=6),
)
def test_payload_round_trip(stamp: int, db: int, argv: list[bytes]) -> None:
    single = payload.encode_single(stamp, db, b"name", argv)
    assert payload.decode(single) == (payload.SINGLE, stamp, [(db, [b"name", *argv[1:]])])
    assert payload.decode_single(single) == (stamp, db, [b"name", *argv[1:]])
    txn = payload.encode_transaction(stamp, [(db, argv), (0, argv[:1])])
    assert payload.decode(txn) == (payload.TRANSACTION, stamp, [(db, argv), (0, argv[:1])])
    assert payload.decode_single(txn) is None


def test_a_failed_batch_leaves_no_trace() -> None:
    backend = MemoryBackend()
    sm = StateMachine(backend)
    good = sm.prepare_write([b"SWAPDB", b"0", b"1"], 0, T0)
    assert isinstance(good, bytes)
    try:
        sm.apply([(1, good), (2, b"\x07garbage")])
    except payload.PayloadError:
        pass
    else:
        raise AssertionError("a corrupt payload must raise")
    assert backend.applied_index == 0 and dict(backend._data) == {}
    assert sm.db_mapping()[:2] == [0, 1]  # the swap was rolled back in memory too
