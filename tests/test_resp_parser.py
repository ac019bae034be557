"""RequestParser: pipelining, byte-by-byte splits, inline commands, limits, and the fast (hiredis)
path checked against the exact port of Redis's reader on generated streams."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respkv.resp._redis_reader import Limits, RedisRequestReader, split_args, string2ll
from respkv.resp.errors import ProtocolError
from respkv.resp.parser import RequestParser, _encoded_size, _one_command_size


def encode_command(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def drain(parser: RequestParser) -> tuple[list[list[bytes]], str | None]:
    """Every command the parser gives, and the protocol error that ends them (if any)."""
    commands: list[list[bytes]] = []
    try:
        while batch := parser.get_commands():
            commands += batch
    except ProtocolError as error:
        return commands, error.message
    return commands, None


def parse_chunks(chunks: list[bytes], **limits: int) -> tuple[list[list[bytes]], str | None]:
    parser = RequestParser(**limits)
    commands: list[list[bytes]] = []
    for chunk in chunks:
        parser.feed(chunk)
        got, error = drain(parser)
        commands += got
        if error is not None:
            return commands, error
    return commands, None


def parse(data: bytes, **limits: int) -> tuple[list[list[bytes]], str | None]:
    return parse_chunks([data], **limits)


def reference(data: bytes) -> tuple[list[list[bytes]], str | None]:
    """The exact reader alone, all bytes at once."""
    reader = RedisRequestReader(Limits())
    out: list[list[bytes]] = []
    try:
        reader.run(bytearray(data), 0, out)
    except ProtocolError as error:
        return out, error.message
    return out, None


def error_of(data: bytes, **limits: int) -> str | None:
    return parse(data, **limits)[1]


# --- multibulk ----------------------------------------------------------------------------------


def test_pipelined_batch_is_drained_in_one_call() -> None:
    commands = [[b"SET", b"k%d" % i, b"v" * i] for i in range(200)]
    parser = RequestParser()
    parser.feed(b"".join(encode_command(c) for c in commands))
    assert parser.get_commands() == commands
    assert parser.get_commands() == []


def test_binary_args_and_empty_args() -> None:
    args = [b"SET", b"\r\n+:*$\x00\xff", b""]
    assert parse(encode_command(args)) == ([args], None)


def test_feed_accepts_memoryview_and_bytearray() -> None:
    parser = RequestParser()
    data = bytearray(encode_command([b"PING"]))
    parser.feed(memoryview(data)[:5])
    parser.feed(data[5:])
    assert parser.get_commands() == [[b"PING"]]


def test_split_at_every_byte_boundary() -> None:
    stream = (
        encode_command([b"SET", b"key", b"a\r\nb"])
        + b"PING\r\n"
        + encode_command([b"ECHO", b"x" * 300])
        + b"ECHO \"a b\\x41\" 'c'\n"
        + b"*0\r\n*-1\r\n\r\n"
        + encode_command([b"GET", b"+notsimple"])
    )
    expected = reference(stream)
    assert expected[1] is None
    assert len(expected[0]) == 5
    for i in range(len(stream) + 1):
        assert parse_chunks([stream[:i], stream[i:]]) == expected, i


def test_byte_by_byte_feed() -> None:
    stream = encode_command([b"SET", b"k", b"v"]) * 3 + b"PING\r\n"
    assert parse_chunks([stream[i : i + 1] for i in range(len(stream))]) == reference(stream)


def test_zero_and_negative_counts_are_ignored() -> None:
    assert parse(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n") == ([[b"PING"]], None)


def test_bulk_trailer_is_not_checked_like_redis() -> None:
    assert parse(b"*1\r\n$4\r\nPINGXY*1\r\n$4\r\nPING\r\n") == ([[b"PING"], [b"PING"]], None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*2\r\n+PING\r\n:1\r\n", "Protocol error: expected '$', got '+'"),
        (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
        (b"*1\r\n*-1\r\n", "Protocol error: expected '$', got '*'"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", "Protocol error: expected '$', got '*'"),
        (b"*1\r\n_\r\n", "Protocol error: expected '$', got '_'"),
        (b"*1\r\n,1.5\r\n", "Protocol error: expected '$', got ','"),
        (b"*1\r\n#t\r\n", "Protocol error: expected '$', got '#'"),
        (b"*1\r\n(12\r\n", "Protocol error: expected '$', got '('"),
        (b"*1\r\n=8\r\ntxt:abcd\r\n", "Protocol error: expected '$', got '='"),
        (b"*1\r\n%1\r\n$1\r\na\r\n$1\r\nb\r\n", "Protocol error: expected '$', got '%'"),
        (b"*1\r\n~1\r\n$1\r\na\r\n", "Protocol error: expected '$', got '~'"),
        (b"*1\r\n-ERR x\r\n", "Protocol error: expected '$', got '-'"),
        (b"*1\r\n!3\r\nabc\r\n", "Protocol error: expected '$', got '!'"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$-0\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$04\r\nPING\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$+4\r\nPING\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$99999999999999999999\r\n", "Protocol error: invalid bulk length"),
        (b"*01\r\n$4\r\nPING\r\n", "Protocol error: invalid multibulk length"),
        (b"*+1\r\n", "Protocol error: invalid multibulk length"),
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (b"*\r\n", "Protocol error: invalid multibulk length"),
        (b"*2147483648\r\n", "Protocol error: invalid multibulk length"),
        (b'ECHO "abc\r\n', "Protocol error: unbalanced quotes in request"),
        (b"ECHO 'abc\r\n", "Protocol error: unbalanced quotes in request"),
        (b'ECHO "a"b\r\n', "Protocol error: unbalanced quotes in request"),
        (b"ECHO 'a'b\r\n", "Protocol error: unbalanced quotes in request"),
    ],
)
def test_violations_have_redis_texts(data: bytes, message: str) -> None:
    assert error_of(data) == message
    assert reference(data) == ([], message)


def test_expected_dollar_with_non_ascii_byte_round_trips() -> None:
    message = error_of(b"*1\r\n\xff\r\n")
    assert message is not None
    assert message.encode("utf-8", "surrogateescape") == b"Protocol error: expected '$', got '\xff'"


def test_huge_bulk_is_rejected_at_header_time_without_payload() -> None:
    parser = RequestParser()
    parser.feed(b"*2\r\n$3\r\nSET\r\n$600000000\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.get_commands()


def test_bulk_limit_is_a_constructor_argument() -> None:
    assert error_of(encode_command([b"x" * 11]), proto_max_bulk_len=10) == (
        "Protocol error: invalid bulk length"
    )
    assert parse(encode_command([b"x" * 10]), proto_max_bulk_len=10) == ([[b"x" * 10]], None)
    # a complete batch larger than the limit cannot slip through hiredis either
    data = encode_command([b"ok"]) + encode_command([b"y" * 50])
    assert parse(data, proto_max_bulk_len=20) == ([[b"ok"]], "Protocol error: invalid bulk length")


def test_multibulk_limit_is_a_constructor_argument() -> None:
    assert error_of(b"*4\r\n", max_multibulk_len=3) == "Protocol error: invalid multibulk length"
    assert parse(encode_command([b"a"] * 3), max_multibulk_len=3) == ([[b"a"] * 3], None)
    data = encode_command([b"a"] * 2) + encode_command([b"b"] * 4)
    assert parse(data, max_multibulk_len=3) == (
        [[b"a", b"a"]],
        "Protocol error: invalid multibulk length",
    )


def test_too_big_count_and_header_strings() -> None:
    assert error_of(b"*" + b"1" * 70000) == "Protocol error: too big mbulk count string"
    assert error_of(b"*1\r\n$" + b"1" * 70000) == "Protocol error: too big bulk count string"
    assert error_of(b"*1\r\n$" + b"1" * 100, inline_max_size=50) == (
        "Protocol error: too big bulk count string"
    )


def test_nul_before_line_end_stalls_like_strchr() -> None:
    assert parse(b"*1\x00\r\n") == ([], None)
    assert error_of(b"*1\x00\r\n" + b"x" * 70000) == "Protocol error: too big mbulk count string"
    assert parse(b"ECHO a\x00b\r\n") == ([], None)


def test_commands_before_a_violation_are_returned_first() -> None:
    parser = RequestParser()
    parser.feed(encode_command([b"PING"]) + b"PING\r\n" + b"*1\r\n:1\r\n")
    assert parser.get_commands() == [[b"PING"], [b"PING"]]
    assert parser.failed
    with pytest.raises(ProtocolError) as info:
        parser.get_commands()
    assert info.value.reply is not None
    assert info.value.reply.message == "ERR Protocol error: expected '$', got ':'"
    parser.feed(encode_command([b"PING"]))  # ignored after a violation
    with pytest.raises(ProtocolError):
        parser.get_commands()


def test_query_buffer_limit_closes_without_reply() -> None:
    parser = RequestParser(client_max_querybuf_len=1000)
    parser.feed(encode_command([b"PING"]) + b"*2\r\n$3\r\nSET\r\n$5000\r\n" + b"x" * 1200)
    assert parser.get_commands() == [[b"PING"]]
    with pytest.raises(ProtocolError) as info:
        parser.get_commands()
    assert info.value.reply is None
    inline = RequestParser(client_max_querybuf_len=1000, inline_max_size=5000)
    inline.feed(b"ECHO " + b"x" * 1200)
    with pytest.raises(ProtocolError):
        inline.get_commands()


def test_large_value_arriving_in_chunks() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = encode_command([b"SET", b"big", value]) + encode_command([b"GET", b"big"])
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert parse_chunks(chunks) == ([[b"SET", b"big", value], [b"GET", b"big"]], None)


# --- inline -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"PING", [b"PING"]),
        (b"  SET  k   v  ", [b"SET", b"k", b"v"]),
        (b"a\tb", [b"a", b"b"]),
        (b"a\x0bb", [b"a\x0bb"]),
        (b"\x0b\x0ca", [b"a"]),
        (b'ECHO "a\\x41\\n"', [b"ECHO", b"aA\n"]),
        (b'ECHO "\\x4g"', [b"ECHO", b"x4g"]),
        (b'ECHO "\\q\\r\\t\\b\\a\\\\\\""', [b"ECHO", b'q\r\t\b\a\\"']),
        (b"ECHO 'a\\'b'", [b"ECHO", b"a'b"]),
        (b"ECHO 'a\\nb'", [b"ECHO", b"a\\nb"]),
        (b'ECHO ""', [b"ECHO", b""]),
        (b"ECHO ''", [b"ECHO", b""]),
        (b'ECHO a"b c"', [b"ECHO", b"ab c"]),
        (b'ECHO "a b" c', [b"ECHO", b"a b", b"c"]),
        (b"", []),
        (b"   ", []),
    ],
)
def test_split_args(line: bytes, args: list[bytes]) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize("line", [b'"abc', b"'abc", b'"a"b', b"'a'b", b'"a\\"', b"'a\\'"])
def test_split_args_unbalanced(line: bytes) -> None:
    assert split_args(line) is None


def test_inline_line_ends() -> None:
    assert parse(b"PING\r\nPING\nECHO a\rb\r\n") == (
        [[b"PING"], [b"PING"], [b"ECHO", b"a", b"b"]],
        None,
    )
    assert parse(b"PING\rPING\n") == ([[b"PING", b"PING"]], None)


def test_empty_inline_lines_are_ignored() -> None:
    assert parse(b"\r\n\n   \r\nPING\n") == ([[b"PING"]], None)


def test_inline_then_multibulk_then_inline() -> None:
    data = b"SET a 1\r\n" + encode_command([b"GET", b"a"]) + b"GET a\r\n"
    assert parse(data) == ([[b"SET", b"a", b"1"], [b"GET", b"a"], [b"GET", b"a"]], None)


def test_top_level_resp_types_are_inline_commands() -> None:
    data = b"+PING\r\n:1\r\n~1\r\n$4\r\nPING\r\n#f\r\n"
    assert parse(data) == (
        [[b"+PING"], [b":1"], [b"~1"], [b"$4"], [b"PING"], [b"#f"]],
        None,
    )


def test_too_big_inline_request() -> None:
    assert error_of(b"x" * 65537) == "Protocol error: too big inline request"
    assert parse(b"x" * 65536) == ([], None)
    assert error_of(b"ECHO " + b"x" * 100, inline_max_size=50) == (
        "Protocol error: too big inline request"
    )


def test_long_inline_line_fed_in_small_chunks_is_linear() -> None:
    line = b"ECHO " + b"y" * 60000 + b"\r\n"
    chunks = [line[i : i + 7] for i in range(0, len(line), 7)]
    assert parse_chunks(chunks) == ([[b"ECHO", b"y" * 60000]], None)


# --- auth ---------------------------------------------------------------------------------------


def test_unauthenticated_limits_and_one_command_per_call() -> None:
    parser = RequestParser()
    parser.auth_required = True
    parser.feed(encode_command([b"AUTH", b"pw"]) + encode_command([b"SET", b"k", b"v" * 20000]))
    assert parser.get_commands() == [[b"AUTH", b"pw"]]
    parser.auth_required = False  # AUTH succeeded before the next command is read
    assert parser.get_commands() == [[b"SET", b"k", b"v" * 20000]]

    parser = RequestParser()
    parser.auth_required = True
    parser.feed(encode_command([b"SET", b"k", b"v" * 20000]))
    with pytest.raises(ProtocolError, match="unauthenticated bulk length"):
        parser.get_commands()
    parser = RequestParser()
    parser.auth_required = True
    parser.feed(encode_command([b"x"] * 11))
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        parser.get_commands()


# --- string2ll ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"12", 12),
        (b"-3", -3),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"", None),
        (b"-", None),
        (b"1x", None),
    ],
)
def test_string2ll(text: bytes, value: int | None) -> None:
    assert string2ll(text, 0, len(text)) == value


# --- properties ---------------------------------------------------------------------------------

_args = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


@given(commands=st.lists(_args, max_size=20), data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_any_split(commands: list[list[bytes]], data: st.DataObject) -> None:
    stream = b"".join(encode_command(c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse_chunks(chunks) == (commands, None)


_token = st.sampled_from(
    [
        b"PING\r\n",
        b"ECHO 'a b'\r\n",
        b'ECHO "x\\x41"\r\n',
        b"\r\n",
        b"\n",
        b"\r",
        b"\x00",
        b"+PING\r\n",
        b":1\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*-5\r\n",
        b"*1\r\n",
        b"*2\r\n",
        b"$1\r\na\r\n",
        b"$3\r\nabc\r\n",
        b"$-1\r\n",
        b"$04\r\n",
        b"~1\r\n",
        b">1\r\n",
        b"|1\r\n",
        b"%1\r\n",
        b"=8\r\ntxt:abcd\r\n",
        b"(12\r\n",
        b"#f\r\n",
        b"_\r\n",
        b",1.5\r\n",
        b"-ERR x\r\n",
        b"'",
        b'"',
        b"XY",
    ]
)
_piece = st.one_of(
    _args.map(encode_command),
    _token,
    st.binary(max_size=8),
)


@given(pieces=st.lists(_piece, max_size=25), data=st.data())
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_matches_exact_reader(pieces: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(pieces)
    expected = reference(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse_chunks(chunks) == expected


@given(lines=st.lists(st.lists(st.binary(max_size=12), min_size=1, max_size=4), max_size=8))
def test_inline_quoting_round_trip(lines: list[list[bytes]]) -> None:
    """Arguments written the way redis-cli quotes them (sdscatrepr) parse back unchanged."""

    def quote(arg: bytes) -> bytes:
        out = bytearray(b'"')
        for byte in arg:
            if byte in b'\\"':
                out += b"\\" + bytes([byte])
            elif 32 <= byte < 127:
                out.append(byte)
            else:
                out += b"\\x%02x" % byte
        return bytes(out + b'"')

    stream = b"".join(b" ".join(quote(a) for a in line) + b"\r\n" for line in lines)
    assert parse(stream) == (lines, None)


def test_partial_command_after_a_clean_boundary_is_checked_from_its_start() -> None:
    """Regression: the partial-command checker kept its position across a batch that ended on
    a command boundary, and misread the next partial command (found by hypothesis)."""
    stream = b"*2\r\n$0\r\n\r\n$0\r\n\r\n*2\r\n$2\r\nxx\r\n$0\r\n\r\n"
    assert parse_chunks([stream[:11], stream[11:16], stream[16:31], stream[31:]]) == (
        [[b"", b""], [b"xx", b""]],
        None,
    )


def test_huge_declared_argument_count_allocates_nothing_up_front() -> None:
    """Regression: hiredis allocated a list as long as the declared count (2**31 - 1 is a
    count Redis accepts), which stalled the server in garbage collection for seconds."""
    import tracemalloc

    parser = RequestParser()
    tracemalloc.start()
    try:
        parser.feed(b"*2147483647\r\n$3\r\nSET\r\n")
        assert parser.get_commands() == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"{peak} bytes allocated for one partial command"


def test_a_line_that_hiredis_reads_as_a_map_is_an_inline_command() -> None:
    """Regression: hiredis raised TypeError (unhashable key) on `%1` followed by an array;
    Redis reads `%1` as an inline command."""
    parser = RequestParser()
    parser.feed(b"*1\r\n$0\r\n\r\n%1\r\n*1\r\n$0\r\n\r\n")
    assert parser.get_commands() == [[b""], [b"%1"], [b""]]


@pytest.mark.parametrize(
    "command",
    [
        [b"GET", b"k"],
        [b"a" * 9, b"b" * 10, b"c" * 99, b"d" * 100, b""],
        [b"SET", b"k" * 70_000, b"v"],  # a length beyond the framing table
        [b"x"] * 70_000,  # a count beyond it
    ],
)
def test_one_command_size_is_the_batch_size_of_one(command: list[bytes]) -> None:
    assert _one_command_size(command) == _encoded_size([command], command)


@pytest.mark.parametrize("result", [[], [b"a", 1], [b"a", [b"b"]], 5, b"x"])
def test_one_command_size_refuses_what_no_client_array_reads_as(result: object) -> None:
    assert _one_command_size(result) == -1
