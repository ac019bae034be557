"""Redis glob-style matching (KEYS, SCAN MATCH), a transcription of ``stringmatchlen``.

Redis 7.0's ``util.c`` semantics, byte for byte: ``*`` any run, ``?`` one byte, ``[abc]``,
``[^abc]``, ``[a-z]`` (bounds in either order; compared as *signed* C chars, as on x86-64),
``\\x`` escapes x (also inside brackets), an unterminated ``[`` matches up to the pattern end.
The quirks are kept on purpose so KEYS and SCAN select exactly the keys Redis would.

``compile_pattern`` returns a fast predicate for the common shapes (``*``, ``prefix*``,
literal) and falls back to the transcription otherwise; ``literal_prefix`` gives the leading
literal bytes, which lets KEYS and SCAN seek instead of scanning the whole keyspace.
"""

from __future__ import annotations

from collections.abc import Callable

_SPECIAL = frozenset(b"*?[\\")


def _signed(c: int) -> int:
    return c - 256 if c >= 128 else c


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def stringmatch(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """True if ``string`` matches the glob ``pattern`` (Redis ``stringmatchlen``)."""
    skip = [False]
    return _match(pattern, 0, string, 0, nocase, skip)


def _match(pat: bytes, p: int, s: bytes, i: int, nocase: bool, skip: list[bool]) -> bool:
    plen = len(pat)
    slen = len(s)

    def pc(k: int) -> int:  # the C string ends in a NUL
        return pat[k] if k < plen else 0

    while p < plen and i < slen:
        c = pat[p]
        if c == 42:  # '*'
            while p + 1 < plen and pat[p + 1] == 42:
                p += 1
            if p + 1 == plen:
                return True
            while i < slen:
                if _match(pat, p + 1, s, i, nocase, skip):
                    return True
                if skip[0]:
                    return False
                i += 1
            skip[0] = True
            return False
        elif c == 63:  # '?'
            i += 1
        elif c == 91:  # '['
            p += 1
            negate = pc(p) == 94  # '^'
            if negate:
                p += 1
            matched = False
            sc = s[i]
            while True:
                cur = pc(p)
                if cur == 92 and plen - p >= 2:  # backslash escape
                    p += 1
                    if pat[p] == sc:
                        matched = True
                elif cur == 93 and p < plen:  # ']'
                    break
                elif p >= plen:
                    p -= 1
                    break
                elif plen - p >= 3 and pat[p + 1] == 45:  # range a-z
                    start, end, ch = _signed(pat[p]), _signed(pat[p + 2]), _signed(sc)
                    if start > end:
                        start, end = end, start
                    if nocase:
                        start, end, ch = _lower(start), _lower(end), _lower(ch)
                    p += 2
                    if start <= ch <= end:
                        matched = True
                elif nocase:
                    if _lower(cur) == _lower(sc):
                        matched = True
                elif cur == sc:
                    matched = True
                p += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            i += 1
        else:
            if c == 92 and plen - p >= 2:  # '\\' escapes the next byte
                p += 1
                c = pat[p]
            if nocase:
                if _lower(c) != _lower(s[i]):
                    return False
            elif c != s[i]:
                return False
            i += 1
        p += 1
        if i == slen:
            while p < plen and pat[p] == 42:
                p += 1
            break
    return p >= plen and i == slen


def literal_prefix(pattern: bytes) -> bytes:
    """The bytes every match must start with (the pattern up to its first special byte)."""
    for k, c in enumerate(pattern):
        if c in _SPECIAL:
            return pattern[:k]
    return pattern


def compile_pattern(pattern: bytes) -> Callable[[bytes], bool] | None:
    """A predicate for ``pattern``; None when every key matches (``*``)."""
    if pattern == b"*":
        return None
    prefix = literal_prefix(pattern)
    if prefix == pattern:
        return pattern.__eq__
    rest = pattern[len(prefix) :]
    if rest.strip(b"*") == b"":  # "prefix*", "prefix**"
        if not prefix:
            return bool  # stringmatchlen never matches the empty string against "**"
        return lambda key: key.startswith(prefix)
    return lambda key: stringmatch(pattern, key)
