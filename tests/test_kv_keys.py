"""Key and database commands on MemoryBackend: DEL, EXISTS, RENAME, COPY, MOVE, SWAPDB, FLUSH*,
KEYS, RANDOMKEY, and the garbage collection of flushed databases."""

from __future__ import annotations

import random

import pytest
from _kv_redis import Driver, normalize

from respkv.kv import MemoryBackend, StateMachine

NOW = 1_700_000_000_000


@pytest.fixture
def kv() -> Driver:
    return Driver()


def call(kv: Driver, *args: bytes | str, db: int = 0, now: int = NOW) -> object:
    return normalize(kv.call(list(args), db, now))


def err(message: str) -> tuple[str, str]:
    return ("error", message)


def test_del_unlink_exists_touch_type(kv: Driver) -> None:
    call(kv, "MSET", "a", "1", "b", "2", "c", "3")
    assert call(kv, "EXISTS", "a", "a", "x") == 2
    assert call(kv, "TOUCH", "a", "b", "x") == 2
    assert call(kv, "TYPE", "a") == b"string"
    assert call(kv, "TYPE", "x") == b"none"
    assert call(kv, "DEL", "a", "x", "a") == 1
    assert call(kv, "UNLINK", "b", "c") == 2
    assert call(kv, "DBSIZE") == 0


def test_rename_and_renamenx(kv: Driver) -> None:
    assert call(kv, "RENAME", "a", "b") == err("ERR no such key")
    assert call(kv, "RENAMENX", "a", "b") == err("ERR no such key")
    call(kv, "SET", "a", "1", "EX", "100")
    assert call(kv, "RENAME", "a", "a") == b"OK"
    assert call(kv, "RENAMENX", "a", "a") == 0
    assert call(kv, "RENAME", "a", "b") == b"OK"
    assert call(kv, "GET", "b") == b"1"
    assert call(kv, "TTL", "b") == 100  # the TTL moves along
    assert call(kv, "EXISTS", "a") == 0
    call(kv, "SET", "c", "3")
    assert call(kv, "RENAMENX", "b", "c") == 0
    assert call(kv, "RENAME", "b", "c") == b"OK"
    assert call(kv, "MGET", "b", "c") == [None, b"1"]
    assert call(kv, "DBSIZE") == 1
    assert kv.sm.expired_keys(NOW + 200_000, 10) == [(0, b"c")]  # index follows the key


def test_copy(kv: Driver) -> None:
    call(kv, "SET", "a", "1", "PX", "5000")
    assert call(kv, "COPY", "a", "a") == err("ERR source and destination objects are the same")
    assert call(kv, "COPY", "a", "b") == 1
    assert call(kv, "PTTL", "b") == 5000
    assert call(kv, "COPY", "a", "b") == 0
    call(kv, "SET", "a", "2")
    assert call(kv, "COPY", "a", "b", "REPLACE") == 1
    assert call(kv, "GET", "b") == b"2"
    assert call(kv, "COPY", "a", "a", "DB", "3") == 1
    assert call(kv, "GET", "a", db=3) == b"2"
    assert call(kv, "COPY", "a", "a", "DB", "16") == err("ERR DB index is out of range")
    assert call(kv, "COPY", "a", "a", "DB", "x") == err(
        "ERR value is not an integer or out of range"
    )
    assert call(kv, "COPY", "a", "b", "FOO") == err("ERR syntax error")
    assert call(kv, "COPY", "none", "b") == 0


def test_move(kv: Driver) -> None:
    call(kv, "SET", "k", "v", "EX", "50")
    assert call(kv, "MOVE", "k", "0") == err("ERR source and destination objects are the same")
    assert call(kv, "MOVE", "k", "16") == err("ERR DB index is out of range")
    assert call(kv, "MOVE", "k", "x") == err("ERR value is not an integer or out of range")
    assert call(kv, "MOVE", "k", "2") == 1
    assert call(kv, "EXISTS", "k") == 0
    assert call(kv, "TTL", "k", db=2) == 50
    call(kv, "SET", "k", "other")
    assert call(kv, "MOVE", "k", "2") == 0  # exists there
    assert call(kv, "MOVE", "none", "2") == 0
    assert call(kv, "DBSIZE") == 1
    assert call(kv, "DBSIZE", db=2) == 1
    assert sorted(kv.sm.expired_keys(NOW + 60_000, 10)) == [(2, b"k")]


def test_swapdb_is_a_mapping_swap(kv: Driver) -> None:
    call(kv, "SET", "a", "in0")
    call(kv, "SET", "b", "in1", "EX", "10", db=1)
    before = dict(kv.backend._data)
    assert call(kv, "SWAPDB", "0", "1") == b"OK"
    changed = {k for k in kv.backend._data if kv.backend._data.get(k) != before.get(k)}
    assert changed == {b"\x00dbmap"}  # O(1): no key record moved
    assert call(kv, "GET", "a", db=1) == b"in0"
    assert call(kv, "GET", "b", db=0) == b"in1"
    assert kv.sm.expired_keys(NOW + 20_000, 10) == [(0, b"b")]
    assert call(kv, "SWAPDB", "0", "0") == b"OK"
    assert call(kv, "SWAPDB", "0", "16") == err("ERR DB index is out of range")
    assert call(kv, "SWAPDB", "x", "1") == err("ERR invalid first DB index")
    assert call(kv, "SWAPDB", "1", "y") == err("ERR invalid second DB index")


def test_flushdb_flushall_and_garbage_collection(kv: Driver) -> None:
    for i in range(50):
        call(kv, "SET", f"k{i}", "v", "EX", "100")
        call(kv, "SET", f"k{i}", "v", db=1)
    assert call(kv, "FLUSHDB", "FOO") == err("ERR syntax error")
    assert call(kv, "FLUSHDB", "ASYNC", "SYNC") == err("ERR syntax error")
    size_before = len(kv.backend._data)
    assert call(kv, "FLUSHDB") == b"OK"
    assert len(kv.backend._data) <= size_before + 2  # O(1): records stay until collected
    assert call(kv, "DBSIZE") == 0
    assert call(kv, "KEYS", "*") == []
    assert call(kv, "DBSIZE", db=1) == 50
    assert kv.sm.expired_keys(NOW + 200_000, 100) == []
    assert call(kv, "SET", "k1", "new") == b"OK"
    assert kv.sm.collect_garbage(30) is True
    while kv.sm.collect_garbage(30):
        pass
    assert call(kv, "GET", "k1") == b"new"
    assert call(kv, "DBSIZE", db=1) == 50
    assert call(kv, "FLUSHALL", "sync") == b"OK"
    assert call(kv, "DBSIZE", db=1) == 0
    while kv.sm.collect_garbage(1000):
        pass
    assert sorted(kv.backend._data) == [b"\x00dbmap"]  # every flushed record is gone


def test_keys_and_glob(kv: Driver) -> None:
    call(kv, "MSET", "user:1", "a", "user:2", "b", "user:10", "c", "other", "d", "", "e")
    assert call(kv, "KEYS", "*") == [b"", b"other", b"user:1", b"user:10", b"user:2"]
    assert call(kv, "KEYS", "user:*") == [b"user:1", b"user:10", b"user:2"]
    assert call(kv, "KEYS", "user:?") == [b"user:1", b"user:2"]
    assert call(kv, "KEYS", "user:[^1]") == [b"user:2"]
    assert call(kv, "KEYS", "*1*") == [b"user:1", b"user:10"]
    assert call(kv, "KEYS", "**") == [b"other", b"user:1", b"user:10", b"user:2"]
    assert call(kv, "KEYS", "") == [b""]
    call(kv, "SET", "user:3", "x", "PXAT", str(NOW + 1))
    assert call(kv, "KEYS", "user:3", now=NOW + 2) == []


def test_randomkey_uses_the_injected_randomness() -> None:
    rng = random.Random(7)
    kv = Driver()
    kv.sm = StateMachine(kv.backend, 16, random_bits=rng.getrandbits)
    assert call(kv, "RANDOMKEY") is None
    keys = [f"key:{i:03d}".encode() for i in range(30)]
    for k in keys:
        call(kv, "SET", k, "v")
    seen = {call(kv, "RANDOMKEY") for _ in range(300)}
    assert seen <= set(keys) and len(seen) > 5
    call(kv, "SET", "only", "v", "PXAT", str(NOW + 1), db=2)
    assert call(kv, "RANDOMKEY", db=2) == b"only"
    assert call(kv, "RANDOMKEY", db=2, now=NOW + 5) is None  # expired keys are never returned


def test_more_databases_than_stored_mapping() -> None:
    backend = MemoryBackend()
    kv = Driver(databases=2, backend=backend)
    call(kv, "SWAPDB", "0", "1")
    call(kv, "SET", "k", "v", db=1)
    bigger = StateMachine(backend, databases=4)
    assert normalize(bigger.read([b"GET", b"k"], 1, NOW)) == b"v"
    assert bigger.db_mapping()[:2] == [1, 0] and len(set(bigger.db_mapping())) == 4
