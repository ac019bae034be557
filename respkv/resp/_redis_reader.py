"""A line-for-line port of Redis 7.0's request reader (networking.c), in pure Python.

This is the reference semantics of `RequestParser`: inline commands, the strict multibulk format,
every limit and every error text. It is slow (~2 us a command); the parser uses it for inline
commands, for anything hiredis might read differently from Redis, and to check the header of a
partial command at the end of the buffer. Redis quirks kept on purpose, because clients see them:

* Line ends are found with C's strchr: a NUL byte before the '\\r' (multibulk) or '\\n' (inline)
  hides the line end, so the request stalls until the size limit trips.
* A '\\r' must be followed by one more byte, which is not checked to be '\\n'; the two bytes after
  a bulk payload are skipped unchecked too.
* `*0` and `*-N` are valid and ignored; so is an empty inline line.
"""

from __future__ import annotations

import re
from typing import Final

from respkv.resp.errors import ProtocolError, arg_text

__all__ = ["Limits", "RedisRequestReader", "split_args", "string2ll"]

_LONG_STR_SIZE: Final = 21  # Redis refuses number strings this long or longer
_LLONG_MIN: Final = -(2**63)
_LLONG_MAX: Final = 2**63 - 1
_STRICT_INT = re.compile(rb"-?[1-9][0-9]*|0")

_NONE: Final = 0
_MULTIBULK: Final = 1
_INLINE: Final = 2

# Redis's "unauthenticated" caps (networking.c): a client that must still AUTH may send at most
# this many arguments per command and this many bytes per argument.
_UNAUTH_MAX_ARGS: Final = 10
_UNAUTH_MAX_BULK: Final = 16384


class Limits:
    """Request limits; defaults are Redis 7.0's."""

    __slots__ = (
        "client_max_querybuf_len",
        "inline_max_size",
        "max_multibulk_len",
        "proto_max_bulk_len",
    )

    def __init__(
        self,
        *,
        proto_max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 2**31 - 1,
        inline_max_size: int = 64 * 1024,
        client_max_querybuf_len: int = 1024 * 1024 * 1024,
    ) -> None:
        self.proto_max_bulk_len = proto_max_bulk_len  # proto-max-bulk-len
        self.max_multibulk_len = max_multibulk_len  # INT_MAX in Redis 7.0
        self.inline_max_size = inline_max_size  # PROTO_INLINE_MAX_SIZE
        self.client_max_querybuf_len = client_max_querybuf_len  # client-query-buffer-limit


def string2ll(data: bytes | bytearray, start: int, end: int) -> int | None:
    """Redis's strict string2ll over data[start:end]: no sign but '-', no leading zero, no '-0'."""
    if end - start >= _LONG_STR_SIZE or end <= start:
        return None
    if _STRICT_INT.fullmatch(data, start, end) is None:
        return None
    value = int(data[start:end])
    if value < _LLONG_MIN or value > _LLONG_MAX:
        return None
    return value


def _find_line_end(buf: bytearray, char: bytes, start: int) -> int:
    """strchr(buf + start, char) on a NUL-terminated buffer: -1 if a NUL comes first."""
    end = buf.find(char, start)
    limit = end if end >= 0 else len(buf)
    if buf.find(b"\0", start, limit) >= 0:
        return -1
    return end


_BLANKS: Final = frozenset(b" \t\n\v\f\r")  # C isspace
_TOKEN_END: Final = frozenset(b" \n\r\t\0")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


def split_args(line: bytes) -> list[bytes] | None:
    """Redis's sdssplitargs: None for unbalanced quotes (or a closing quote not followed by a
    blank). Blanks between tokens are C isspace; inside a token only ' ', \\t, \\r, \\n end it."""
    if b'"' not in line and b"'" not in line and b"\v" not in line and b"\f" not in line:
        return line.split()  # same token rules when there are no quotes and no \v \f
    args: list[bytes] = []
    n = len(line)
    p = 0
    while True:
        while p < n and line[p] in _BLANKS:
            p += 1
        if p >= n:
            return args
        current = bytearray()
        in_dq = in_sq = False
        while True:
            c = line[p] if p < n else 0
            nxt = line[p + 1] if p + 1 < n else 0
            if in_dq:
                if (
                    c == 0x5C
                    and nxt == 0x78
                    and p + 3 < n
                    and line[p + 2] in _HEX
                    and line[p + 3] in _HEX
                ):
                    current.append(int(line[p + 2 : p + 4], 16))
                    p += 3
                elif c == 0x5C and nxt:
                    p += 1
                    current.append(_ESCAPES.get(nxt, nxt))
                elif c == 0x22:
                    if nxt and nxt not in _BLANKS:
                        return None
                    p += 1
                    break
                elif p >= n:
                    return None
                else:
                    current.append(c)
            elif in_sq:
                if c == 0x5C and nxt == 0x27:
                    p += 1
                    current.append(0x27)
                elif c == 0x27:
                    if nxt and nxt not in _BLANKS:
                        return None
                    p += 1
                    break
                elif p >= n:
                    return None
                else:
                    current.append(c)
            elif p >= n or c in _TOKEN_END:
                p += 1
                break
            elif c == 0x22:
                in_dq = True
            elif c == 0x27:
                in_sq = True
            else:
                current.append(c)
            p += 1
        args.append(bytes(current))


class RedisRequestReader:
    """Redis's per-client request state (reqtype, multibulklen, bulklen, argv), fed a buffer.

    `run(buf, pos, out, keep)` consumes complete requests from buf[pos:], appends each command to
    `out` and returns the new position; the state remembers a partial command across calls (its
    consumed bytes must not be offered again). With keep=False it only validates: payloads are not
    copied and completed commands are appended as empty lists. Violations raise ProtocolError
    with Redis's text, after `out` got every command that preceded them.
    """

    __slots__ = (
        "argv",
        "argv_len_sum",
        "auth_required",
        "bulklen",
        "limits",
        "multibulklen",
        "reqtype",
        "scan_from",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.auth_required = False
        self.reqtype = _NONE
        self.multibulklen = 0
        self.bulklen = -1
        self.argv: list[bytes] = []
        self.argv_len_sum = 0
        self.scan_from = 0  # inline: bytes of the partial line already known to hold no '\n'

    def reset(self) -> None:
        self.reqtype = _NONE
        self.multibulklen = 0
        self.bulklen = -1
        self.argv = []
        self.argv_len_sum = 0
        self.scan_from = 0

    @property
    def at_boundary(self) -> bool:
        """No byte of the next command has been consumed."""
        return self.multibulklen == 0 and self.reqtype != _INLINE

    def run(self, buf: bytearray, pos: int, out: list[list[bytes]], keep: bool = True) -> int:
        n = len(buf)
        while pos < n:
            if self.reqtype == _NONE:
                self.reqtype = _MULTIBULK if buf[pos] == 0x2A else _INLINE
            if self.reqtype == _INLINE:
                new_pos = self._inline(buf, pos, out)
            else:
                new_pos = self._multibulk(buf, pos, out, keep)
            if self.reqtype != _NONE:  # incomplete: wait for more bytes
                return new_pos
            pos = new_pos
            if out and (self.auth_required or not keep):
                # auth: one command at a time, as Redis checks auth per command; validation:
                # the caller only needs to know that a command completed.
                return pos
        return pos

    def _inline(self, buf: bytearray, pos: int, out: list[list[bytes]]) -> int:
        n = len(buf)
        start = pos + self.scan_from
        nul = buf.find(b"\0", start)
        limit = nul if nul >= 0 else n
        newline = buf.find(b"\n", start, limit)
        if newline < 0:
            self.scan_from = limit - pos
            if n - pos > self.limits.inline_max_size:
                raise ProtocolError("Protocol error: too big inline request")
            return pos
        end = newline - 1 if newline != pos and buf[newline - 1] == 0x0D else newline
        args = split_args(bytes(buf[pos:end]))
        if args is None:
            raise ProtocolError("Protocol error: unbalanced quotes in request")
        self.reqtype = _NONE
        self.scan_from = 0
        if args:
            out.append(args)
        return newline + 1

    def _multibulk(self, buf: bytearray, pos: int, out: list[list[bytes]], keep: bool) -> int:
        n = len(buf)
        limits = self.limits
        if self.multibulklen == 0:
            newline = _find_line_end(buf, b"\r", pos)
            if newline < 0:
                if n - pos > limits.inline_max_size:
                    raise ProtocolError("Protocol error: too big mbulk count string")
                return pos
            if newline > n - 2:
                return pos
            count = string2ll(buf, pos + 1, newline)
            if count is None or count > limits.max_multibulk_len:
                raise ProtocolError("Protocol error: invalid multibulk length")
            if count > _UNAUTH_MAX_ARGS and self.auth_required:
                raise ProtocolError("Protocol error: unauthenticated multibulk length")
            pos = newline + 2
            if count <= 0:
                self.reqtype = _NONE
                return pos
            self.multibulklen = count
            self.argv = []
            self.argv_len_sum = 0
        while self.multibulklen:
            if self.bulklen == -1:
                newline = _find_line_end(buf, b"\r", pos)
                if newline < 0:
                    if n - pos > limits.inline_max_size:
                        raise ProtocolError("Protocol error: too big bulk count string")
                    return pos
                if newline > n - 2:
                    return pos
                if buf[pos] != 0x24:
                    got = arg_text(bytes(buf[pos : pos + 1]))
                    raise ProtocolError(f"Protocol error: expected '$', got '{got}'")
                size = string2ll(buf, pos + 1, newline)
                if size is None or size < 0 or size > limits.proto_max_bulk_len:
                    raise ProtocolError("Protocol error: invalid bulk length")
                if size > _UNAUTH_MAX_BULK and self.auth_required:
                    raise ProtocolError("Protocol error: unauthenticated bulk length")
                pos = newline + 2
                self.bulklen = size
            size = self.bulklen
            if n - pos < size + 2:
                return pos
            if keep:
                self.argv.append(bytes(buf[pos : pos + size]))
            self.argv_len_sum += size
            pos += size + 2
            self.bulklen = -1
            self.multibulklen -= 1
        out.append(self.argv)
        self.argv = []
        self.argv_len_sum = 0
        self.reqtype = _NONE
        return pos
