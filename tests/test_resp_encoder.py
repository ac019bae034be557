"""Encoder: every reply value in RESP2 and RESP3, doubles as Redis formats them, batches."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from respkv.resp.encoder import encode, encode_into, encode_many, format_double
from respkv.resp.replies import (
    NULL_ARRAY,
    OK,
    PONG,
    QUEUED,
    ErrorReply,
    Push,
    Raw,
    SetReply,
    SimpleString,
    Verbatim,
)

CASES: list[tuple[object, bytes, bytes]] = [
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"abc", b"$3\r\nabc\r\n", b"$3\r\nabc\r\n"),
    (b"x" * 2000, b"$2000\r\n" + b"x" * 2000 + b"\r\n", b"$2000\r\n" + b"x" * 2000 + b"\r\n"),
    (bytearray(b"ab"), b"$2\r\nab\r\n", b"$2\r\nab\r\n"),
    (memoryview(b"ab"), b"$2\r\nab\r\n", b"$2\r\nab\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (1, b":1\r\n", b":1\r\n"),
    (-1, b":-1\r\n", b":-1\r\n"),
    (-2, b":-2\r\n", b":-2\r\n"),
    (10000, b":10000\r\n", b":10000\r\n"),
    (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
    (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (PONG, b"+PONG\r\n", b"+PONG\r\n"),
    (QUEUED, b"+QUEUED\r\n", b"+QUEUED\r\n"),
    (SimpleString(b"string"), b"+string\r\n", b"+string\r\n"),
    (ErrorReply("ERR syntax error"), b"-ERR syntax error\r\n", b"-ERR syntax error\r\n"),
    (ErrorReply("ERR a\r\nb\nc"), b"-ERR a  b c\r\n", b"-ERR a  b c\r\n"),
    (ErrorReply("ERR \udcff"), b"-ERR \xff\r\n", b"-ERR \xff\r\n"),
    (Raw(b"+RAW\r\n"), b"+RAW\r\n", b"+RAW\r\n"),
    (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (float("inf"), b"$3\r\ninf\r\n", b",inf\r\n"),
    (float("-inf"), b"$4\r\n-inf\r\n", b",-inf\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
    ((b"a", [b"b"]), b"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n", b"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n"),
    ({b"f": b"v", b"n": 2}, b"*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nn\r\n:2\r\n",
     b"%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nn\r\n:2\r\n"),
    ({}, b"*0\r\n", b"%0\r\n"),
    (SetReply([b"a", b"b"]), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"~2\r\n$1\r\na\r\n$1\r\nb\r\n"),
    (Push([b"message", b"ch", b"hi"]),
     b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
     b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
    (Verbatim(b"txt", b"hello"), b"$5\r\nhello\r\n", b"=9\r\ntxt:hello\r\n"),
    (list(range(1100)), b"*1100\r\n" + b"".join(b":%d\r\n" % i for i in range(1100)),
     b"*1100\r\n" + b"".join(b":%d\r\n" % i for i in range(1100))),
]  # fmt: skip


@pytest.mark.parametrize(("value", "resp2", "resp3"), CASES)
def test_encode(value: object, resp2: bytes, resp3: bytes) -> None:
    assert encode(value, 2) == resp2
    assert encode(value, 3) == resp3
    out = bytearray(b"prefix")
    encode_into(out, value, 3)
    assert out == b"prefix" + resp3


def test_encode_many_is_one_buffer() -> None:
    values = [OK, 1, b"v", None, ErrorReply("ERR x")]
    assert encode_many(values, 2) == b"+OK\r\n:1\r\n$1\r\nv\r\n$-1\r\n-ERR x\r\n"
    assert encode_many([], 3) == b""


def test_str_is_a_caller_error() -> None:
    with pytest.raises(TypeError):
        encode("text", 2)
    with pytest.raises(TypeError):
        encode([object()], 3)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, b"0.10000000000000001"),
        (3.0, b"3"),
        (-0.0, b"-0"),
        (1e300, b"1.0000000000000001e+300"),
        (1e-7, b"9.9999999999999995e-08"),
        (123456789012345678.0, b"1.2345678901234568e+17"),
        (float("inf"), b"inf"),
        (float("-inf"), b"-inf"),
        (2.5, b"2.5"),
    ],
)
def test_format_double_like_redis_7_0(value: float, text: bytes) -> None:
    # Texts taken from redis-server 7.0.15 (ZADD then ZSCORE, RESP2 and RESP3).
    assert format_double(value) == text


_values: st.SearchStrategy[object] = st.recursive(
    st.one_of(
        st.binary(max_size=50),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False),
        st.builds(SimpleString, st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)),
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)  # fmt: skip


def _expected(value: object, protocol: int) -> object:
    """What hiredis should read back for `value` encoded in `protocol`."""
    if isinstance(value, bool):
        return value if protocol == 3 else int(value)
    if isinstance(value, float):
        return value if protocol == 3 else format_double(value)
    if isinstance(value, SimpleString):
        return value.value
    if isinstance(value, list):
        return [_expected(item, protocol) for item in value]
    return value


@given(value=_values)
def test_hiredis_reads_back_what_we_encode(value: object) -> None:
    for protocol in (2, 3):
        reader = hiredis.Reader()
        reader.feed(encode(value, protocol))
        got = reader.gets()
        expected = _expected(value, protocol)
        if isinstance(value, float) and protocol == 3:
            assert got == pytest.approx(expected) or got == expected
        else:
            assert got == expected
        assert not reader.has_data()


@given(
    values=st.lists(
        st.one_of(_values, st.sampled_from([OK, PONG, QUEUED, NULL_ARRAY, Raw(b"+R\r\n")]))
    )
)
def test_encode_many_equals_concatenated_encode(values: list[object]) -> None:
    for protocol in (2, 3):
        assert encode_many(values, protocol) == b"".join(encode(v, protocol) for v in values)
