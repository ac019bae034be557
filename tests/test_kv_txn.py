"""Transactions with WATCH fingerprints and PUBLISH entries in the state machine alone."""

from __future__ import annotations

from respkv.kv import StateMachine
from respkv.kv.backend import MemoryBackend
from respkv.resp.replies import NULL_ARRAY, OK


def _sm() -> StateMachine:
    sm = StateMachine(MemoryBackend())
    sm.apply([(1, sm.prepare_write([b"SET", b"k", b"v", b"PXAT", b"5000"], 0, 1000))])
    return sm


def test_unchanged_watched_key_commits_and_reads_see_earlier_writes() -> None:
    sm = _sm()
    watches = [
        (0, b"k", sm.fingerprint(0, b"k", 1000)),
        (0, b"none", sm.fingerprint(0, b"none", 1000)),
    ]
    assert watches[1][2] == b""
    txn = sm.prepare_transaction([([b"SET", b"a", b"1"], 0), ([b"GET", b"a"], 0)], 2000, watches)
    assert sm.apply([(2, txn)]) == [[OK, b"1"]]


def test_changed_or_expired_watched_key_aborts_without_effects() -> None:
    for change, stamp in (([b"SET", b"k", b"w"], 2000), ([b"PERSIST", b"k"], 2000), (None, 6000)):
        sm = _sm()
        fingerprint = sm.fingerprint(0, b"k", 1000)
        if change is not None:
            sm.apply([(2, sm.prepare_write(change, 0, 1500))])
        txn = sm.prepare_transaction([([b"SET", b"a", b"1"], 0)], stamp, [(0, b"k", fingerprint)])
        assert sm.apply([(3, txn)]) == [NULL_ARRAY], change
        assert sm.read([b"EXISTS", b"a"], 0, stamp) == 0


def test_replicas_decide_alike_and_publish_leaves_the_keyspace_alone() -> None:
    received: list[tuple[bytes, bytes]] = []
    replicas = [_sm(), _sm()]
    replicas[0].on_publish = lambda c, m: received.append((c, m)) or 7
    fingerprint = replicas[0].fingerprint(0, b"k", 1000)
    txn = replicas[0].prepare_transaction(
        [([b"INCR", b"n"], 0), ([b"PUBLISH", b"ch", b"hi"], 0)], 2000, [(0, b"k", fingerprint)]
    )
    publish = replicas[0].prepare_publish(b"ch", b"again", 2001)
    results = [sm.apply([(2, txn), (3, publish)]) for sm in replicas]
    assert results == [[[1, 7], 7], [[1, 0], 0]]  # each node counts its own receivers
    assert received == [(b"ch", b"hi"), (b"ch", b"again")]
    for sm in replicas:
        assert sm.read([b"DBSIZE"], 0, 2002) == 2  # k and n: no trace of the messages
