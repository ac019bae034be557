"""Tests of the linearizability checker: hand-written histories, a brute-force cross-check on
tiny random histories, histories generated from true sequential runs (and perturbed), and a
performance bound in search steps."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest

from respkv.sim.linearizability import (
    UNKNOWN,
    CheckResult,
    History,
    Kind,
    Operation,
    Outcome,
    Value,
    check,
)

GET, SET, INCR, DEL = Kind.GET, Kind.SET, Kind.INCR, Kind.DEL
INF = math.inf


def op(
    client: int,
    kind: Kind,
    value: Value,
    output: Outcome,
    call: float,
    ret: float,
    key: bytes = b"k",
) -> Operation:
    return Operation(client, key, kind, value, output, call, ret)


def get(client: int, output: Value, call: float, ret: float, key: bytes = b"k") -> Operation:
    return op(client, GET, None, output, call, ret, key)


def set_(client: int, value: Value, call: float, ret: float, key: bytes = b"k") -> Operation:
    output: Outcome = UNKNOWN if ret == INF else b"OK"
    return op(client, SET, value, output, call, ret, key)


def incr(client: int, output: Outcome, call: float, ret: float, key: bytes = b"k") -> Operation:
    return op(client, INCR, None, output, call, ret, key)


def delete(client: int, output: Outcome, call: float, ret: float, key: bytes = b"k") -> Operation:
    return op(client, DEL, None, output, call, ret, key)


def assert_ok(result: CheckResult) -> None:
    assert result.ok is True, result.explanation


def assert_not_linearizable(result: CheckResult, key: bytes = b"k") -> None:
    assert result.ok is False, result.explanation
    assert result.key == key
    assert repr(key) in result.explanation


# --- hand-written histories -------------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    assert_ok(check([]))


def test_sequential_reads_and_writes() -> None:
    assert_ok(check([get(0, None, 0, 1), set_(0, b"a", 2, 3), get(1, b"a", 4, 5)]))


def test_stale_read_after_completed_write() -> None:
    history = [set_(0, b"1", 0, 1), set_(0, b"2", 2, 3), get(1, b"1", 4, 5)]
    result = check(history)
    assert_not_linearizable(result)
    # The explanation names the operation that could not be placed, with its times.
    assert "#2 client 1 GET -> b'1'  (called 4, returned 5)" in result.explanation
    assert "would return 2" in result.explanation


def test_read_concurrent_with_write_may_see_either_value() -> None:
    for seen in (b"1", b"2"):
        assert_ok(check([set_(0, b"1", 0, 1), set_(0, b"2", 2, 6), get(1, seen, 3, 4)]))


def test_read_of_missing_key_after_write_is_stale() -> None:
    assert_not_linearizable(check([set_(0, b"a", 0, 1), get(1, None, 2, 3)]))


def test_read_of_value_never_written() -> None:
    result = check([set_(0, b"a", 0, 1), get(1, b"zzz", 0, 3)])
    assert_not_linearizable(result)
    assert "returned b'zzz', but no operation wrote it" in result.explanation


def test_read_from_the_future() -> None:
    result = check([get(1, b"a", 0, 3), set_(0, b"a", 4, 5)])
    assert_not_linearizable(result)
    assert "first written by an operation called at 4" in result.explanation


def test_concurrent_writes_observed_in_the_same_order() -> None:
    history = [
        set_(0, b"1", 0, 10),
        set_(1, b"2", 0, 10),
        get(2, b"1", 1, 2),
        get(2, b"2", 3, 4),
        get(3, b"1", 1, 2),
        get(3, b"2", 3, 4),
    ]
    assert_ok(check(history))


def test_concurrent_writes_observed_in_opposite_orders() -> None:
    # Reader 2 sees 1 then 2 (so SET 1 before SET 2), reader 3 sees 2 then 1: no order fits.
    history = [
        set_(0, b"1", 0, 10),
        set_(1, b"2", 0, 10),
        get(2, b"1", 1, 2),
        get(2, b"2", 3, 4),
        get(3, b"2", 1, 2),
        get(3, b"1", 3, 4),
    ]
    assert_not_linearizable(check(history))


def test_value_reappearing_after_overwrite_completed() -> None:
    history = [set_(0, b"1", 0, 1), set_(1, b"2", 2, 3), get(2, b"2", 4, 5), get(2, b"1", 6, 7)]
    assert_not_linearizable(check(history))


def test_concurrent_incrs_in_either_order() -> None:
    assert_ok(check([incr(0, 2, 0, 10), incr(1, 1, 0, 10), incr(2, 3, 11, 12)]))


def test_incr_returning_duplicate_values() -> None:
    result = check([incr(0, 1, 0, 10), incr(1, 1, 0, 10)])
    assert_not_linearizable(result)
    assert "would return 2" in result.explanation


def test_incr_skipping_a_value() -> None:
    assert_not_linearizable(check([incr(0, 1, 0, 1), incr(0, 3, 2, 3)]))


def test_incr_builds_on_set_with_any_representation() -> None:
    history = [
        set_(0, b"41", 0, 1),
        incr(0, 42, 2, 3),
        get(1, b"42", 4, 5),
        set_(0, 7, 6, 7),
        incr(0, b"8", 8, 9),
        op(0, INCR, -10, -2, 10, 11),
    ]
    assert_ok(check(history))


def test_incr_on_non_integer_cannot_have_succeeded() -> None:
    assert_not_linearizable(check([set_(0, b"abc", 0, 1), incr(0, 1, 2, 3)]))
    # b"05" is not an integer to Redis.
    assert_not_linearizable(check([set_(0, b"05", 0, 1), incr(0, 6, 2, 3)]))


def test_del() -> None:
    assert_ok(check([set_(0, b"a", 0, 1), delete(0, 1, 2, 3), get(1, None, 4, 5)]))
    assert_ok(check([delete(0, 0, 0, 1), incr(0, 1, 2, 3), delete(0, 1, 4, 5)]))
    assert_not_linearizable(check([set_(0, b"a", 0, 1), delete(0, 1, 2, 3), get(1, b"a", 4, 5)]))
    assert_not_linearizable(check([set_(0, b"a", 0, 1), delete(0, 0, 2, 3)]))


def test_unknown_write_assumed_applied_to_explain_a_later_read() -> None:
    history = [set_(0, b"1", 0, 1), set_(1, b"2", 2, INF), get(2, b"2", 50, 51)]
    assert_ok(check(history))


def test_unknown_write_never_shows_up() -> None:
    history = [set_(0, b"1", 0, 1), set_(1, b"2", 2, INF), get(2, b"1", 5, 6), get(2, b"1", 7, 8)]
    assert_ok(check(history))


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    history = [set_(0, b"1", 0, 1), get(2, b"2", 1, 2), set_(1, b"2", 3, INF)]
    assert_not_linearizable(check(history))


def test_unknown_write_cannot_vanish_once_seen() -> None:
    history = [set_(0, b"1", 0, 1), set_(1, b"2", 2, INF), get(2, b"2", 5, 6), get(2, b"1", 7, 8)]
    assert_not_linearizable(check(history))


def test_unknown_incrs_may_or_may_not_apply() -> None:
    for seen in (2, 3):
        assert_ok(check([incr(0, 1, 0, 1), incr(1, UNKNOWN, 2, INF), incr(0, seen, 5, 6)]))
    assert_not_linearizable(check([incr(0, 1, 0, 1), incr(1, UNKNOWN, 2, INF), incr(0, 4, 5, 6)]))


def test_many_unknown_incrs_do_not_explode() -> None:
    # 2**40 subsets of the unknown INCRs, but they are interchangeable.
    history = [incr(c, UNKNOWN, c, INF) for c in range(40)]
    history += [incr(99, 25, 100, 101), get(99, b"25", 102, 103), incr(99, 40, 104, 105)]
    result = check(history, budget_steps=20_000)
    assert_ok(result)
    # 24 + 14 unknown INCRs were used by then; the other 2 reach at most 43.
    assert_ok(check([*history, incr(99, 43, 106, 107)], budget_steps=20_000))
    assert_not_linearizable(check([*history, incr(99, 44, 106, 107)], budget_steps=20_000))


def test_many_unobserved_unknown_sets_do_not_explode() -> None:
    history = [set_(c, f"lost{c}".encode(), c, INF) for c in range(40)]
    history += [set_(99, b"x", 100, 101), get(99, b"x", 102, 103)]
    assert_ok(check(history, budget_steps=20_000))


def test_unknown_reads_are_ignored() -> None:
    history = [set_(0, b"1", 0, 1), op(1, GET, None, UNKNOWN, 2, INF), get(1, b"1", 3, 4)]
    assert_ok(check(history))


def test_keys_are_checked_independently() -> None:
    # Each key alone is fine; interleaved on one register it would not be.
    history = [
        set_(0, b"1", 0, 1, key=b"a"),
        set_(0, b"2", 2, 3, key=b"b"),
        get(1, b"1", 4, 5, key=b"a"),
        get(1, b"2", 4, 5, key=b"b"),
    ]
    result = check(history)
    assert_ok(result)
    assert len(result.key_results) == 2
    bad = [*history, get(2, b"2", 6, 7, key=b"a")]
    assert_not_linearizable(check(bad), key=b"a")


def test_touching_intervals_count_as_concurrent() -> None:
    assert_ok(check([set_(0, b"1", 0, 5), get(1, None, 5, 6)]))


def test_input_order_does_not_matter() -> None:
    history = [
        set_(0, b"1", 0, 10),
        set_(1, b"2", 0, 10),
        get(2, b"1", 1, 2),
        get(2, b"2", 3, 4),
        get(3, b"2", 1, 2),
        get(3, b"1", 3, 4),
    ]
    for seed in range(5):
        shuffled = history[:]
        random.Random(seed).shuffle(shuffled)
        assert check(shuffled).ok is False


def test_gives_up_within_the_budget() -> None:
    # Many concurrent writes of which no read is possible: exhausting the orders takes long.
    history = [set_(c, c, 0, 100) for c in range(16)]
    history += [incr(c, 1000 + c, 101, 102) for c in range(16)]
    result = check(history, budget_steps=500)
    assert result.ok is None
    assert result.key == b"k"
    assert "gave up" in result.explanation
    assert 500 <= result.steps < 600


def test_gives_up_at_the_timeout() -> None:
    history = [set_(c, c, 0, 100) for c in range(16)]
    history += [incr(c, 1000 + c, 101, 102) for c in range(16)]
    result = check(history, timeout_s=0.05)
    assert result.ok is None
    assert "gave up" in result.explanation


def test_budget_is_per_key_and_a_failure_elsewhere_still_counts() -> None:
    hard = [set_(c, c, 0, 100, key=b"hard") for c in range(16)]
    hard += [incr(c, 1000 + c, 101, 102, key=b"hard") for c in range(16)]
    history = [*hard, set_(0, b"1", 0, 1), get(1, b"2", 2, 3)]
    result = check(history, budget_steps=500)
    assert_not_linearizable(result)
    assert [r.ok for r in result.key_results] == [None, False]


def test_invalid_operations_are_rejected() -> None:
    with pytest.raises(ValueError, match="returns before"):
        get(0, None, 5, 4)
    with pytest.raises(ValueError, match="UNKNOWN"):
        get(0, b"x", 5, INF)
    with pytest.raises(ValueError, match="SET needs"):
        op(0, SET, None, b"OK", 0, 1)
    with pytest.raises(ValueError, match="increment"):
        op(0, INCR, b"abc", 1, 0, 1)


# --- the recorder -----------------------------------------------------------------------------


def test_history_recorder() -> None:
    now = [0]

    def clock() -> float:
        now[0] += 1
        return now[0]

    history = History(clock)
    a = history.invoke(0, b"k", SET, b"1")  # t=1
    b = history.invoke(1, b"k", SET, b"2")  # t=2
    c = history.invoke(2, b"k", SET, b"3")  # t=3
    history.ok(a, b"OK")  # t=4
    history.fail(b)  # dropped
    history.info(c)  # unknown outcome
    d = history.invoke(0, b"k", GET)  # t=5
    history.ok(d, b"3")  # t=6
    e = history.invoke(0, b"k", INCR)  # t=7, never resolved: unknown
    ops = history.operations()
    assert [o.kind for o in ops] == [SET, SET, GET, INCR]
    assert ops[0] == Operation(0, b"k", SET, b"1", b"OK", 1, 4)
    assert ops[1] == Operation(2, b"k", SET, b"3", UNKNOWN, 3, INF)
    assert ops[3].outcome_unknown and ops[3].output is UNKNOWN
    assert len(history) == 4
    assert_ok(history.check())
    with pytest.raises(ValueError, match="not pending"):
        history.ok(b, b"OK")
    history.ok(e, 1)
    assert history.operations()[3].return_time == 9


# --- brute force cross-check on tiny histories ------------------------------------------------


def brute_force(history: list[Operation]) -> bool:
    """Try every subset of unknown writes and every order consistent with real time."""

    def canon(v: Outcome) -> object:
        if isinstance(v, str):
            v = v.encode()
        if isinstance(v, bytes):
            try:
                if str(int(v)).encode() == v:
                    return int(v)
            except ValueError:
                pass
        return v

    ops = [o for o in history if not (o.kind is GET and o.output is UNKNOWN)]
    known = [o for o in ops if not o.outcome_unknown]
    unknown = [o for o in ops if o.outcome_unknown]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            group = known + list(chosen)
            for order in itertools.permutations(group):
                # real time: if a returned before b was called, a comes first
                if any(
                    order[j].return_time < order[i].call_time
                    for i in range(len(order))
                    for j in range(i + 1, len(order))
                ):
                    continue
                state: object = None
                for o in order:
                    if o.kind is GET:
                        if canon(o.output) != state:
                            break
                    elif o.kind is SET:
                        state = canon(o.value)
                    elif o.kind is INCR:
                        if state is not None and not isinstance(state, int):
                            break
                        state = (state or 0) + 1
                        if o.output is not UNKNOWN and canon(o.output) != state:
                            break
                    else:
                        removed = 0 if state is None else 1
                        state = None
                        if o.output is not UNKNOWN and canon(o.output) != removed:
                            break
                else:
                    return True
    return False


def random_tiny_history(rng: random.Random) -> list[Operation]:
    history = []
    for client in range(rng.randint(1, 6)):
        call = rng.randint(0, 8)
        ret = call + rng.randint(0, 6)
        kind = rng.choice([GET, GET, SET, INCR, DEL])
        unknown = kind is not GET and rng.random() < 0.25
        choices: list[Value] = [b"1", b"a", 1]
        value = rng.choice(choices) if kind is SET else None
        output: Outcome
        if unknown:
            output, ret_time = UNKNOWN, INF
        else:
            ret_time = ret
            if kind is GET:
                outputs: list[Value] = [None, b"1", b"2", b"a"]
                output = rng.choice(outputs)
            elif kind is INCR:
                output = rng.randint(1, 3)
            elif kind is DEL:
                output = rng.randint(0, 1)
            else:
                output = b"OK"
        history.append(Operation(client, b"k", kind, value, output, call, ret_time))
    return history


@pytest.mark.parametrize("seed", range(300))
def test_agrees_with_brute_force(seed: int) -> None:
    history = random_tiny_history(random.Random(seed))
    assert check(history).ok is brute_force(history), history


# --- histories from true sequential runs ------------------------------------------------------


def generate(
    rng: random.Random,
    *,
    clients: int,
    ops_per_client: int,
    keys: int,
    unknown_rate: float = 0.0,
) -> list[Operation]:
    """A linearizable history: each client runs operations one after another with random
    latencies; each takes effect at a random instant inside its interval, and outputs come
    from running the operations in the order of those instants. SET values are unique."""
    planned = []  # (effect time, call, return, client, key, kind, value, applied)
    serial = itertools.count()
    for client in range(clients):
        t = rng.uniform(0, 5)
        for _ in range(ops_per_client):
            call = t
            ret = call + rng.uniform(0.1, 10)
            effect = rng.uniform(call, ret)
            key = b"key%d" % rng.randrange(keys)
            kind = rng.choice([GET, GET, GET, SET, SET, INCR, DEL])
            value: Value = None
            if kind is SET:
                n = next(serial)
                value = b"v%d" % n if rng.random() < 0.5 else 1000 * n
            unknown = kind is not GET and rng.random() < unknown_rate
            applied = not unknown or rng.random() < 0.5
            planned.append((effect, call, ret, client, key, kind, value, unknown, applied))
            t = ret + rng.uniform(0, 2)
    planned.sort(key=lambda p: p[0])
    registers: dict[bytes, Value] = {}
    history = []
    for _, call, ret, client, key, kind, value, unknown, applied in planned:
        state = registers.get(key)
        output: Outcome = None
        if kind is GET:
            output = state
        elif kind is SET:
            if applied:
                registers[key] = value
            output = b"OK"
        elif kind is INCR:
            if state is not None and not isinstance(state, int):
                continue  # Redis would answer an error: a definite failure, left out
            if applied:
                registers[key] = output = (state or 0) + 1
        else:
            output = 0 if state is None else 1
            if applied:
                registers.pop(key, None)
        if unknown:
            history.append(Operation(client, key, kind, value, UNKNOWN, call, INF))
        else:
            history.append(Operation(client, key, kind, value, output, call, ret))
    rng.shuffle(history)
    return history


@pytest.mark.parametrize("seed", range(40))
def test_generated_histories_pass_and_impossible_reads_fail(seed: int) -> None:
    rng = random.Random(seed)
    history = generate(rng, clients=5, ops_per_client=30, keys=2, unknown_rate=0.1)
    assert_ok(check(history, budget_steps=200_000))

    reads = [i for i, o in enumerate(history) if o.kind is GET]
    # A value never written by anyone.
    i = rng.choice(reads)
    bad = history[:]
    bad[i] = replace(history[i], output=b"never-written")
    result = check(bad, budget_steps=200_000)
    assert result.ok is False and result.key == history[i].key, result.explanation

    # A value from the future: written only by a SET called after the read returned.
    # SET values are unique, and the b"v.." ones can come from nothing else.
    for i in reads:
        future = [
            o.value
            for o in history
            if o.kind is SET
            and o.key == history[i].key
            and isinstance(o.value, bytes)
            and o.call_time > history[i].return_time
        ]
        if future:
            bad = history[:]
            bad[i] = replace(history[i], output=future[0])
            result = check(bad, budget_steps=200_000)
            assert result.ok is False, result.explanation
            break

    # A stale value: the read returns what a SET wrote, though another write both started
    # after that SET returned and returned before the read was called. This one needs the
    # search (the quick look for unwritten values does not see it).
    definite = [o for o in history if not o.outcome_unknown]
    stale = [
        (i, w1.value)
        for i in reads
        for w1 in definite
        if w1.kind is SET
        and isinstance(w1.value, bytes)
        and w1.key == history[i].key
        and any(
            w2.kind is not GET
            and w2.key == w1.key
            and w1.return_time < w2.call_time
            and w2.return_time < history[i].call_time
            for w2 in definite
        )
    ]
    i, value = rng.choice(stale)
    bad = history[:]
    bad[i] = replace(history[i], output=value)
    result = check(bad, budget_steps=200_000)
    assert result.ok is False and result.key == history[i].key, result.explanation
    assert result.steps > 0


# Step counts measured when these were written: about 1,000 per key for the 5-key histories,
# 60,000-110,000 for the hot key and 400,000-600,000 to prove the stale read impossible.
# Python does roughly a million steps a second.


def test_performance_2000_ops_5_keys_8_clients() -> None:
    history = generate(random.Random(7), clients=8, ops_per_client=250, keys=5)
    assert len(history) > 1900
    assert_ok(check(history, budget_steps=20_000))  # per key


def test_performance_with_unknown_outcomes() -> None:
    history = generate(random.Random(8), clients=8, ops_per_client=250, keys=5, unknown_rate=0.02)
    assert_ok(check(history, budget_steps=20_000))


def test_performance_one_hot_key() -> None:
    history = generate(random.Random(9), clients=10, ops_per_client=200, keys=1)
    assert_ok(check(history, budget_steps=500_000))
    # A stale read late in the history: proving it impossible means exhausting the search.
    reads = sorted(
        (i for i, o in enumerate(history) if o.kind is GET), key=lambda i: history[i].call_time
    )
    for i in reversed(reads):
        stale = [
            w1.value
            for w1 in history
            if w1.kind is SET
            and isinstance(w1.value, bytes)
            and any(
                w2.kind is not GET
                and w1.return_time < w2.call_time
                and w2.return_time < history[i].call_time
                for w2 in history
            )
        ]
        if stale:
            break
    bad = history[:]
    bad[i] = replace(history[i], output=stale[-1])
    result = check(bad, budget_steps=2_000_000)
    assert result.ok is False, result.explanation
