"""Client request parser: feed bytes, drain every complete command.

Theory of operation
-------------------
Redis's request language (see `_redis_reader`, a faithful port of networking.c) is *stricter*
than what hiredis reads: hiredis parses replies, so inside an array it also takes `+simple`,
`:int`, `_`, nested arrays, RESP3 types... and at top level it does not know inline commands.
`RedisRequestReader` defines the behaviour; hiredis is only a fast way to get the same answer for
the stream every real client sends: `*N` arrays of `$len` bulk strings.

The parser has two modes.

* Fast (hiredis): bytes go to a `hiredis.Reader` and into `_buf`, our copy of every byte not yet
  returned, which starts at a command boundary. Before feeding, a regex looks in the new bytes for
  a line end followed by a RESP type byte that hiredis would turn into bytes or a list
  (`+ ( = ~ > |`); after draining, the results must be non-empty lists of bytes, and their
  canonical RESP size tells how many bytes of `_buf` they used (so any element that was not
  `$len` framing, which changes the size, is noticed too). Whatever remains is one partial
  command that hiredis holds; `_tail`, a validating `RedisRequestReader`, checks its headers as
  they arrive so that a huge declared length fails at once, like Redis, without buffering it.
* Exact: any doubt (inline command, hiredis error, unexpected type, size mismatch, a batch
  large enough to hold an over-limit argument, a client that must still AUTH) drops the hiredis
  reader and runs `RedisRequestReader` over `_buf` from the last boundary. The parser goes back
  to fast mode as soon as it is at a command boundary again and the next byte is '*'.

Both modes return the same commands and raise the same errors for any input (the tests check
this on generated streams, split at every byte).

Errors: `ProtocolError` is the client's fault. When complete commands precede the violation in
the buffer, they are returned first and the error is raised by the next call (Redis also runs
the commands before the bad one, then replies with the error and closes). Afterwards every call
raises the same error and `feed` discards its input.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Final

import hiredis

from respkv.resp._redis_reader import Limits, RedisRequestReader
from respkv.resp.errors import ProtocolError

__all__ = ["ProtocolError", "RequestParser"]

_INCOMPLETE: Final = object()
_ONLY_LIST: Final = {list}
_ONLY_BYTES: Final = {bytes}
_EMPTY: Final[list[bytes]] = []

# A line end followed by a type byte that hiredis reads as bytes (+ ( =), as a list (~ > |)
# or as a dict (% : a key can be unhashable and make hiredis raise TypeError),
# or an array header of 10,000 elements or more (hiredis would allocate a list that long
# up front; Redis reserves room as the arguments arrive, and so does the exact reader).
# Two patterns, not one with "(?:^|\n)": a pattern that starts with a literal "\n" is searched
# with a fast scan for that byte, about 7x faster than the alternation on a pipelined batch.
_SUSPECT: Final = re.compile(rb"\n(?:[+(=~>|%]|\*[0-9]{5})").search
_SUSPECT_AT_START: Final = re.compile(rb"\*[0-9]{5}").match

# Framing bytes around a bulk of length L ("$L\r\n" + "\r\n") and around an array of N elements
# ("*N\r\n"), tabulated for sizes that do not fit in a byte.
_TABLE_SIZE: Final = 1 << 16
_BULK_OVERHEAD: Final = bytes(len(str(size)) + 5 for size in range(_TABLE_SIZE))
_ARRAY_OVERHEAD: Final = bytes(len(str(count)) + 3 for count in range(_TABLE_SIZE))
_BELOW_10: Final = bytes(range(10))
_BELOW_100: Final = bytes(range(100))


def _encoded_size(commands: list[list[bytes]], args: list[bytes]) -> int:
    """Bytes that `commands` (whose elements, flattened, are `args`) take as canonical RESP."""
    sizes = list(map(len, args))
    counts = list(map(len, commands))
    try:
        # Usual case, all sizes below 256: count the decimal digits with C-level passes.
        small_sizes = bytes(sizes)
        small_counts = bytes(counts)
    except ValueError:
        try:
            framing = sum(map(_BULK_OVERHEAD.__getitem__, sizes))
            framing += sum(map(_ARRAY_OVERHEAD.__getitem__, counts))
        except IndexError:
            framing = sum(len(str(size)) + 5 for size in sizes)
            framing += sum(len(str(count)) + 3 for count in counts)
        return framing + sum(sizes)
    framing = 6 * len(sizes) + 4 * len(counts)  # one digit each
    framing += len(small_sizes.translate(None, _BELOW_10))  # a second digit
    framing += len(small_sizes.translate(None, _BELOW_100))  # a third digit
    framing += len(small_counts.translate(None, _BELOW_10))
    framing += len(small_counts.translate(None, _BELOW_100))
    return framing + sum(sizes)


def _one_command_size(command: object) -> int:
    """``_encoded_size`` of one command, about twice as fast for one; -1 if it is not a
    non-empty list of bytes (then not what a client's array of bulk strings reads as)."""
    if type(command) is not list or not command:
        return -1
    count = len(command)
    size = _ARRAY_OVERHEAD[count] if count < _TABLE_SIZE else len(str(count)) + 3
    for arg in command:
        if type(arg) is not bytes:
            return -1
        length = len(arg)
        size += (_BULK_OVERHEAD[length] if length < _TABLE_SIZE else len(str(length)) + 5) + length
    return size


class RequestParser:
    """Parses what one client sends. Not thread-safe; one per connection.

    Usage::

        parser.feed(data)
        while commands := parser.get_commands():   # raises ProtocolError
            handle(commands)

    Limits default to Redis 7.0's (proto-max-bulk-len, INT_MAX arguments, 64 KiB inline and header
    lines, client-query-buffer-limit 1 GiB).
    """

    __slots__ = (
        "_buf",
        "_error",
        "_exact",
        "_fed",
        "_limits",
        "_many_bytes",
        "_reader",
        "_tail",
        "_tail_pos",
    )

    def __init__(
        self,
        *,
        proto_max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 2**31 - 1,
        inline_max_size: int = 64 * 1024,
        client_max_querybuf_len: int = 1024 * 1024 * 1024,
    ) -> None:
        self._limits = Limits(
            proto_max_bulk_len=proto_max_bulk_len,
            max_multibulk_len=max_multibulk_len,
            inline_max_size=inline_max_size,
            client_max_querybuf_len=client_max_querybuf_len,
        )
        # A batch at least this big may hide an over-limit argument or argument count, which
        # hiredis would accept: such batches take the exact path.
        self._many_bytes = min(proto_max_bulk_len, 6 * max_multibulk_len)
        self._buf = bytearray()  # every byte not yet returned, from a command boundary
        self._fed = 0  # bytes of _buf given to _reader (fast mode)
        self._reader: hiredis.Reader | None = self._new_reader()  # None: exact mode
        self._exact = RedisRequestReader(self._limits)  # exact mode state
        self._tail = RedisRequestReader(self._limits)  # validates hiredis's partial command
        self._tail_pos = 0  # bytes of the partial command _tail has consumed
        self._error: ProtocolError | None = None

    @staticmethod
    def _new_reader() -> hiredis.Reader:
        return hiredis.Reader(notEnoughData=_INCOMPLETE)

    @property
    def auth_required(self) -> bool:
        """Set while the client must still authenticate: Redis then caps commands at 10
        arguments of 16 KiB ("Protocol error: unauthenticated ..."), and the parser returns one
        command per call so that a successful AUTH can clear the flag before the next one."""
        return self._exact.auth_required

    @auth_required.setter
    def auth_required(self, value: bool) -> None:
        self._exact.auth_required = value
        self._tail.auth_required = value

    @property
    def failed(self) -> bool:
        """A violation was found; the next get_commands() raises it."""
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the client (copied; the caller may reuse its buffer)."""
        if self._error is None:
            self._buf += data

    def get_commands(self) -> list[list[bytes]]:
        """Every complete command buffered now, in order; [] when none is complete."""
        if self._error is not None:
            raise self._error
        reader = self._reader
        if reader is None:
            return self._exact_commands([])
        buf = self._buf
        n = len(buf)
        fed = self._fed
        if n == fed:
            return []
        if (
            self._exact.auth_required
            or (fed == 0 and buf[0] != 0x2A)
            or _SUSPECT(buf, fed - 1 if fed else 0) is not None
            or (fed == 0 and _SUSPECT_AT_START(buf) is not None)
            or n >= self._many_bytes
        ):
            return self._switch_to_exact([])
        reader.feed(buf, fed)  # type: ignore[arg-type]  # any buffer works
        self._fed = n
        out: list[list[bytes]] = []
        append = out.append
        gets = reader.gets
        try:
            while (command := gets()) is not _INCOMPLETE:
                append(command)
        except (hiredis.ProtocolError, TypeError):  # TypeError: an unhashable map key
            return self._switch_to_exact([])
        if out:
            if len(out) == 1:  # one command per read (a client that does not pipeline)
                consumed = _one_command_size(out[0])
            elif set(map(type, out)) != _ONLY_LIST or _EMPTY in out:
                return self._switch_to_exact([])
            else:
                args = list(chain.from_iterable(out))
                if set(map(type, args)) != _ONLY_BYTES:
                    return self._switch_to_exact([])
                consumed = _encoded_size(out, args)
            if consumed < 0:
                return self._switch_to_exact([])
            if consumed == n:  # the common case: the batch ended on a command boundary
                buf.clear()
                self._fed = 0
                # The partial command the tail checker followed (if any) is complete now.
                self._tail.reset()
                self._tail_pos = 0
                return out
            if consumed > n:
                return self._switch_to_exact([])
            del buf[:consumed]
            self._fed = n - consumed
            self._tail.reset()
            self._tail_pos = 0
        return self._check_tail(out)

    def _check_tail(self, out: list[list[bytes]]) -> list[list[bytes]]:
        """_buf holds one partial command, all of it fed to hiredis: check it as Redis would."""
        buf = self._buf
        if buf[0] != 0x2A:
            return self._switch_to_exact(out)
        completed: list[list[bytes]] = []
        try:
            self._tail_pos = self._tail.run(buf, self._tail_pos, completed, keep=False)
        except ProtocolError as error:
            return self._fail(out, error)
        if completed:  # Redis reads a command here that hiredis does not: trust Redis's reading
            return self._switch_to_exact(out)
        if len(buf) > self._limits.client_max_querybuf_len:
            return self._fail(out, ProtocolError("query buffer limit", send_reply=False))
        return out

    def _switch_to_exact(self, out: list[list[bytes]]) -> list[list[bytes]]:
        self._reader = None
        self._fed = 0
        self._exact.reset()
        self._tail.reset()
        self._tail_pos = 0
        return self._exact_commands(out)

    def _exact_commands(self, out: list[list[bytes]]) -> list[list[bytes]]:
        buf = self._buf
        exact = self._exact
        try:
            pos = exact.run(buf, 0, out)
        except ProtocolError as error:
            return self._fail(out, error)
        if pos:
            del buf[:pos]
        if exact.at_boundary and not exact.auth_required and (not buf or buf[0] == 0x2A):
            exact.reset()
            self._reader = self._new_reader()
            self._fed = 0
        elif len(buf) + exact.argv_len_sum > self._limits.client_max_querybuf_len:
            return self._fail(out, ProtocolError("query buffer limit", send_reply=False))
        return out

    def _fail(self, out: list[list[bytes]], error: ProtocolError) -> list[list[bytes]]:
        self._error = error
        self._reader = None
        self._buf = bytearray()
        if out:
            return out
        raise error
