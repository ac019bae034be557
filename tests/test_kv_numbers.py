"""Redis's integer and long double arithmetic: unit cases and INCRBYFLOAT against redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _kv_redis import Driver, RawRedis, normalize, redis_server
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.kv.numbers import (
    add_long_double,
    format_long_double,
    parse_int,
    parse_long_double,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"", None),
        (b"-", None),
        (b"1e3", None),
        (b"\xd9\xa1", None),  # a non-ASCII digit
    ],
)
def test_parse_int(text: bytes, value: int | None) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    ("a", "b", "text"),
    [
        (b"0.1", b"0.2", b"0.3"),
        (b"10", b"1e30", b"1000000000000000000024696061952"),
        (b"1.5", b"-1.5", b"0"),
        (b"-0", b"-0", b"0"),
        (b"0x1p3", b"1", b"9"),
        (b"1e-20", b"0", b"0"),
        (b"5.0e3", b"0.125", b"5000.125"),
    ],
)
def test_long_double_sums(a: bytes, b: bytes, text: bytes) -> None:
    x, y = parse_long_double(a), parse_long_double(b)
    assert x is not None and y is not None
    total = add_long_double(x, y)
    assert total is not None
    assert format_long_double(total) == text


def test_long_double_refusals() -> None:
    for text in [b"", b" 1", b"1 ", b"nan", b"1e", b".", b"0x", b"1e5000", b"1e-5000", b"1\x00"]:
        assert parse_long_double(text) is None, text
    assert parse_long_double(b"inf") == "inf"
    assert add_long_double(parse_long_double(b"inf"), (1, 0)) is None  # type: ignore[arg-type]
    huge = parse_long_double(b"1.18e4932")
    assert huge is not None
    assert add_long_double(huge, huge) is None  # overflow to infinity


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


def _decimal_text(draw_float: float, style: int) -> bytes:
    return [repr(draw_float), f"{draw_float:.3e}", f"{draw_float:.20f}", f"{draw_float:g}"][
        style
    ].encode()


number_text = st.one_of(
    st.tuples(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
        st.integers(0, 3),
    ).map(lambda t: _decimal_text(*t)),
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
    st.sampled_from([b"1e400", b"-1e400", b"1e-4940", b"0x1.8p1", b"1.", b".5", b"3e-310"]),
)


@settings(max_examples=300, deadline=None)
@given(start=number_text, increments=st.lists(number_text, min_size=1, max_size=4))
def test_incrbyfloat_matches_redis(redis_port: int, start: bytes, increments: list[bytes]) -> None:
    redis = RawRedis(redis_port)
    kv = Driver()
    try:
        redis.call("SET", "f", start)
        kv.call([b"SET", b"f", start])
        for increment in increments:
            theirs = redis.call("INCRBYFLOAT", "f", increment)
            ours = normalize(kv.call([b"INCRBYFLOAT", b"f", increment]))
            assert ours == theirs, (start, increment)
    finally:
        redis.close()
