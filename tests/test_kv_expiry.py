"""Expiry with explicit stamps: relative TTLs made absolute before the log, reads against the
caller's clock, writes against the entry's stamp, and active expiry by replicated deletes."""

from __future__ import annotations

from _kv_redis import Driver, normalize

from respkv.kv import payload

T0 = 1_700_000_000_000


def call(kv: Driver, *args: bytes | str, db: int = 0, now: int = T0) -> object:
    return normalize(kv.call(list(args), db, now))


def test_relative_ttls_are_absolute_in_the_payload() -> None:
    kv = Driver()
    for argv, canonical in [
        ([b"SET", b"k", b"v", b"EX", b"10"], [b"set", b"k", b"v", b"PXAT", b"%d" % (T0 + 10_000)]),
        ([b"SETEX", b"k", b"2", b"v"], [b"set", b"k", b"v", b"PXAT", b"%d" % (T0 + 2000)]),
        ([b"PSETEX", b"k", b"5", b"v"], [b"set", b"k", b"v", b"PXAT", b"%d" % (T0 + 5)]),
        ([b"EXPIRE", b"k", b"3", b"NX"], [b"pexpireat", b"k", b"%d" % (T0 + 3000), b"NX"]),
        ([b"PEXPIRE", b"k", b"-3"], [b"pexpireat", b"k", b"%d" % (T0 - 3)]),
        ([b"EXPIREAT", b"k", b"7"], [b"pexpireat", b"k", b"7000"]),
        ([b"GETEX", b"k", b"PX", b"9"], [b"getex", b"k", b"PXAT", b"%d" % (T0 + 9)]),
        ([b"INCR", b"n"], [b"incrby", b"n", b"1"]),
    ]:
        encoded = kv.sm.prepare_write(argv, 0, T0)
        assert isinstance(encoded, bytes)
        kind, stamp, commands = payload.decode(encoded)
        assert (kind, stamp, commands) == (payload.SINGLE, T0, [(0, canonical)]), argv


def test_reads_use_the_callers_clock() -> None:
    kv = Driver()
    call(kv, "SET", "k", "v", "PX", "100")
    assert call(kv, "GET", "k", now=T0 + 100) == b"v"  # expired only when now > expiry
    assert call(kv, "PTTL", "k", now=T0 + 100) == 0
    assert call(kv, "GET", "k", now=T0 + 101) is None
    assert call(kv, "TTL", "k", now=T0 + 101) == -2
    assert call(kv, "EXISTS", "k", now=T0 + 101) == 0
    assert call(kv, "GET", "k", now=T0 + 50) == b"v"  # a read never deletes
    assert call(kv, "TTL", "none") == -2
    call(kv, "SET", "p", "v")
    assert call(kv, "TTL", "p") == -1
    assert call(kv, "EXPIRETIME", "p") == -1
    call(kv, "SET", "r", "v", "PX", "1499")
    assert call(kv, "TTL", "r") == 1  # rounded like Redis: (ttl + 500) / 1000
    call(kv, "SET", "r", "v", "PX", "1500")
    assert call(kv, "TTL", "r") == 2
    assert call(kv, "EXPIRETIME", "r") == (T0 + 1500 + 500) // 1000


def test_writes_use_the_entry_stamp() -> None:
    kv = Driver()
    call(kv, "SET", "k", "5", "PX", "100")
    # INCR at stamp T0+200: the key had expired, so it starts from 0 again.
    assert call(kv, "INCR", "k", now=T0 + 200) == 1
    assert call(kv, "TTL", "k", now=T0 + 200) == -1
    assert kv.sm.expired_keys(T0 + 10_000, 10) == []  # the old index entry went with it
    call(kv, "SET", "n", "v", "PX", "100")
    assert call(kv, "SET", "n", "w", "NX", now=T0 + 101) == b"OK"  # expired: NX succeeds
    assert call(kv, "DBSIZE", now=T0 + 101) == 2


def test_expire_in_the_past_deletes_and_answers_1() -> None:
    kv = Driver()
    call(kv, "SET", "k", "v")
    assert call(kv, "EXPIRE", "k", "-1") == 1
    assert call(kv, "EXISTS", "k") == 0
    assert call(kv, "DBSIZE") == 0
    assert call(kv, "EXPIRE", "k", "10") == 0
    call(kv, "SET", "k", "v")
    assert call(kv, "PEXPIREAT", "k", str(T0)) == 1  # when <= stamp: already expired
    assert call(kv, "EXISTS", "k") == 0


def test_expire_flags() -> None:
    kv = Driver()
    call(kv, "SET", "k", "v")
    assert call(kv, "EXPIRE", "k", "100", "XX") == 0
    assert call(kv, "EXPIRE", "k", "100", "GT") == 0  # no TTL counts as infinite
    assert call(kv, "EXPIRE", "k", "100", "LT") == 1
    assert call(kv, "EXPIRE", "k", "200", "NX") == 0
    assert call(kv, "EXPIRE", "k", "200", "GT") == 1
    assert call(kv, "EXPIRE", "k", "150", "GT") == 0
    assert call(kv, "EXPIRE", "k", "150", "LT", "XX") == 1
    assert call(kv, "TTL", "k") == 150
    assert call(kv, "EXPIRE", "k", "1", "NX", "XX") == (
        "error",
        "ERR NX and XX, GT or LT options at the same time are not compatible",
    )
    assert call(kv, "EXPIRE", "k", "1", "GT", "LT") == (
        "error",
        "ERR GT and LT options at the same time are not compatible",
    )
    assert call(kv, "EXPIRE", "k", "1", "ZZ") == ("error", "ERR Unsupported option ZZ")
    assert call(kv, "EXPIRE", "k", "9223372036854775807") == (
        "error",
        "ERR invalid expire time in 'expire' command",
    )
    assert call(kv, "PERSIST", "k") == 1
    assert call(kv, "PERSIST", "k") == 0
    assert call(kv, "TTL", "k") == -1
    assert kv.sm.expired_keys(T0 + 10**9, 10) == []


def test_active_expiry_is_a_replicated_conditional_delete() -> None:
    kv = Driver()
    call(kv, "SET", "a", "1", "PX", "10")
    call(kv, "SET", "b", "2", "PX", "20", db=3)
    call(kv, "SET", "c", "3", "PX", "1000")
    call(kv, "SET", "d", "4")
    assert kv.sm.expired_keys(T0 + 10, 10) == []
    found = kv.sm.expired_keys(T0 + 21, 10)
    assert sorted(found) == [(0, b"a"), (3, b"b")]
    # Meanwhile a client extends "a": the racing SET wins over the expiry delete.
    call(kv, "SET", "a", "new", now=T0 + 21)
    entry = kv.sm.prepare_expire(found, T0 + 22)
    (replies,) = kv.apply([entry])
    assert dict(zip(found, replies, strict=True)) == {(0, b"a"): 0, (3, b"b"): 1}
    assert call(kv, "GET", "a", now=T0 + 22) == b"new"
    assert call(kv, "DBSIZE", db=3) == 0
    assert kv.sm.expired_keys(T0 + 10**6, 10) == [(0, b"c")]
    assert kv.sm.expired_keys(T0 + 10**6, 0) == []
    # An #expire stamped before the expiry does nothing either.
    assert kv.apply([kv.sm.prepare_expire([(0, b"c")], T0 + 500)]) == [[0]]
    assert call(kv, "EXISTS", "c", now=T0 + 500) == 1


def test_expired_keys_visits_databases_fairly() -> None:
    kv = Driver()
    for db in range(4):
        for i in range(5):
            call(kv, "SET", f"k{i}", "v", "PX", "1", db=db)
    firsts = {kv.sm.expired_keys(T0 + 5, 2)[0][0] for _ in range(4)}
    assert firsts == {0, 1, 2, 3}


def test_expiry_index_tracks_every_change() -> None:
    """After any mix of commands the index holds exactly the keys with an expiry."""
    kv = Driver()
    script = [
        ("SET", "a", "1", "EX", "10"),
        ("SET", "b", "1", "PX", "10"),
        ("EXPIRE", "a", "20"),
        ("RENAME", "b", "c"),
        ("GETEX", "c", "PERSIST"),
        ("SET", "d", "1", "EX", "5"),
        ("MOVE", "d", "1"),
        ("COPY", "a", "e"),
        ("APPEND", "e", "x"),
        ("SET", "a", "2", "KEEPTTL"),
        ("GETSET", "e", "3"),
        ("SET", "f", "1", "EX", "7"),
        ("DEL", "f"),
    ]
    for args in script:
        call(kv, *args)
    assert sorted(kv.sm.expired_keys(T0 + 10**9, 100)) == [(0, b"a"), (1, b"d")]
