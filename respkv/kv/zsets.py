"""Sorted set commands: ZADD ZINCRBY ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK
ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZRANGESTORE ZPOPMIN
ZPOPMAX ZMPOP ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZUNIONSTORE ZINTERSTORE ZDIFFSTORE
ZUNION ZINTER ZDIFF ZINTERCARD ZRANDMEMBER ZSCAN. (Not here: the blocking BZPOPMIN BZPOPMAX
BZMPOP.)

Layout
------
A sorted set is a collection (``respkv.kv.collection``) of type ``layout.T_ZSET`` with two
families of member records under its version::

    m member                  -> score (8-byte big-endian IEEE-754 double)
    s order(score) member     -> b""   (the score index)

``order(score)`` is the double's bits with the sign bit flipped for positives and all bits
flipped for negatives, so byte order is numeric order from -inf to inf; -0.0 is stored as 0.0
(Redis's small, listpack-encoded sets do the same), NaN is never stored. The score index is
therefore in Redis's order: by score, then by member bytes. ``size`` (ZCARD) counts members.
ZADD/ZINCRBY/ZREM write only these small records and the key record, whatever the set's size.

Complexity (n: members, k: members returned or removed)
    ZSCORE ZMSCORE ZADD ZINCRBY ZREM: one or two point reads per member.
    ZRANGEBYSCORE / ZRANGE BYSCORE / ZREMRANGEBYSCORE / ZCOUNT: a seek on the score index, then
    O(k) (ZCOUNT: O(count), it walks the range; LIMIT's offset is walked too).
    ZRANGE by index / ZREMRANGEBYRANK: O(min(start, n - end) + k): a seek from whichever end
    is nearer, so ZRANGE 0 9 and ZRANGE -10 -1 are fast on any size. ZRANK/ZREVRANK: O(min(rank,
    n - rank)) (two walks towards each other). There are no rank counters in this layout.
    Lex ranges (ZRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX): when every member has the same score
    (the documented use, checked with two seeks) a seek; otherwise a walk that reproduces what
    Redis does on its listpack encoding (the result is unspecified by Redis).
    ZPOPMIN/ZPOPMAX: O(k) from the matching end, deterministic (score then member order).
    ZUNION/ZINTER/ZDIFF(STORE)/ZINTERCARD: read every input (ZINTER: the smallest, then
    point reads in the others), like Redis. Set inputs (``layout.T_SET``: member records are
    the members with empty values) count with score 1.

Scores are parsed like Redis: ``string2d`` (strtod, the whole argument, no leading space, no
NaN, no overflow or underflow to zero) for ZADD/ZINCRBY/WEIGHTS, ``zslParseRange`` for score
ranges ('(' for exclusive; strtod's leading space and infinities are accepted). Replies carry
scores as Python floats: RESP2 bulk strings in "%.17g", RESP3 doubles, as Redis 7.0 sends them
(ZSCAN sends its scores as strings in both).

Known differences from Redis: Redis keeps -0.0 in large (skiplist-encoded) sets; we always
store 0.0, as Redis does for small sets. A computed score of -0.0 (ZINCRBY, ZADD INCR) is still
replied as "-0", like Redis.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import NULL_ARRAY, ErrorReply, PairsReply

from . import collection, errors
from .collection import Collection
from .layout import T_SET, T_ZSET, U64
from .numbers import LLONG_MAX, parse_int
from .scanning import parse_scan_cursor, parse_scan_options

if TYPE_CHECKING:
    from .commands import Handler, Prepare
    from .statemachine import Db, StateMachine

_LONG_MAX: Final = LLONG_MAX

# -- errors (Redis 7.0.15's words) ---------------------------------------------------------------

MIN_MAX_NOT_FLOAT: Final = ErrorReply("ERR min or max is not a float")
MIN_MAX_NOT_LEX: Final = ErrorReply("ERR min or max not valid string range item")
XX_NX: Final = ErrorReply("ERR XX and NX options at the same time are not compatible")
GT_LT_NX: Final = ErrorReply("ERR GT, LT, and/or NX options at the same time are not compatible")
INCR_SINGLE: Final = ErrorReply("ERR INCR option supports a single increment-element pair")
SCORE_NAN: Final = ErrorReply("ERR resulting score is not a number (NaN)")
WEIGHT_NOT_FLOAT: Final = ErrorReply("ERR weight value is not a float")
COUNT_NOT_POSITIVE: Final = ErrorReply("ERR count should be greater than 0")
LIMIT_NEEDS_RANGE: Final = ErrorReply(
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
WITHSCORES_BYLEX: Final = ErrorReply(
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
)


def _needs_keys(command: str) -> ErrorReply:
    return ErrorReply(f"ERR at least 1 input key is needed for '{command}' command")


# -- numbers ------------------------------------------------------------------------------------

_SPACE: Final = b" \t\n\v\f\r"
_HEX_NUMBER: Final = re.compile(
    rb"[+-]?0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP][+-]?[0-9]+)?"
)
_DEC_NUMBER: Final = re.compile(rb"[+-]?(?:([0-9]+)\.?([0-9]*)|\.([0-9]+))(?:[eE][+-]?[0-9]+)?")
_INFINITY: Final = re.compile(rb"[+-]?inf(?:inity)?", re.IGNORECASE)
_NAN: Final = re.compile(rb"[+-]?nan(?:\([0-9A-Za-z_]*\))?", re.IGNORECASE)


def _strtod(s: bytes, start: int = 0) -> tuple[float, int, bool] | None:
    """C ``strtod`` on ``s[start:]`` (after its leading white space): (value, end index,
    ERANGE), or None when no number starts there."""
    i = start
    n = len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    m = _HEX_NUMBER.match(s, i)
    if m is not None:
        digits = (m.group(1) or b"") + (m.group(2) or b"") + (m.group(3) or b"")
        try:
            value = float.fromhex(m.group().decode())
        except OverflowError:
            value = math.copysign(math.inf, -1.0 if s[i] == 45 else 1.0)
        erange = math.isinf(value) or (value == 0 and digits.strip(b"0") != b"")
        return value, m.end(), erange
    m = _DEC_NUMBER.match(s, i)
    if m is not None:
        digits = (m.group(1) or b"") + (m.group(2) or b"") + (m.group(3) or b"")
        value = float(m.group())
        erange = math.isinf(value) or (value == 0 and digits.strip(b"0") != b"")
        return value, m.end(), erange
    m = _INFINITY.match(s, i)
    if m is not None:
        return (-math.inf if s[i] == 45 else math.inf), m.end(), False
    m = _NAN.match(s, i)
    if m is not None:
        return math.nan, m.end(), False
    return None


def parse_score(arg: bytes) -> float | None:
    """Redis ``string2d``: the double ``arg`` spells exactly, or None (ZADD's "not a valid
    float"). inf and -inf are accepted; NaN, overflow and underflow to zero are not."""
    if not arg or arg[0] in _SPACE:
        return None
    parsed = _strtod(arg)
    if parsed is None:
        return None
    value, end, erange = parsed
    if end != len(arg) or math.isnan(value) or (erange and (math.isinf(value) or value == 0)):
        return None
    return value


def _parse_bound(arg: bytes) -> tuple[float, bool] | None:
    """One end of a score range as ``zslParseRange`` reads it: (value, exclusive) or None."""
    nul = arg.find(b"\0")
    text = arg if nul < 0 else arg[:nul]
    exclusive = text[:1] == b"("
    start = 1 if exclusive else 0
    if start == len(text):
        return 0.0, exclusive  # strtod of "" is 0 and leaves nothing behind
    parsed = _strtod(text, start)
    if parsed is None:
        return None
    value, end, _ = parsed
    if end != len(text) or math.isnan(value):
        return None
    return value, exclusive


class ScoreRange:
    """min/max of ZRANGEBYSCORE and friends, with their exclusive flags."""

    __slots__ = ("max", "max_ex", "min", "min_ex")

    def __init__(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> None:
        self.min = lo
        self.min_ex = lo_ex
        self.max = hi
        self.max_ex = hi_ex

    def index_bounds(self) -> tuple[bytes, bytes | None] | None:
        """[lo, hi) on the score index (keys after the family byte; hi None: no bound), or
        None when the range is empty."""
        lo = _order_int(self.min) + (1 if self.min_ex else 0)
        hi = _order_int(self.max) + (0 if self.max_ex else 1)
        if lo >= hi:
            return None
        return U64.pack(lo), (U64.pack(hi) if hi <= _MASK64 else None)


def parse_score_range(lo: bytes, hi: bytes) -> ScoreRange | None:
    a = _parse_bound(lo)
    b = _parse_bound(hi)
    if a is None or b is None:
        return None
    return ScoreRange(a[0], a[1], b[0], b[1])


#: The ends of lex ranges "-" and "+".
LEX_MIN: Final = 0
LEX_MAX: Final = 1
LexItem = bytes | int


class LexRange:
    __slots__ = ("max", "max_ex", "min", "min_ex")

    def __init__(self, lo: LexItem, lo_ex: bool, hi: LexItem, hi_ex: bool) -> None:
        self.min = lo
        self.min_ex = lo_ex
        self.max = hi
        self.max_ex = hi_ex

    def gte_min(self, member: bytes) -> bool:
        cmp = _lexcmp(member, self.min)
        return cmp > 0 if self.min_ex else cmp >= 0

    def lte_max(self, member: bytes) -> bool:
        cmp = _lexcmp(member, self.max)
        return cmp < 0 if self.max_ex else cmp <= 0

    def is_empty(self) -> bool:
        cmp = _lexcmp(self.min, self.max)
        return cmp > 0 or (cmp == 0 and (self.min_ex or self.max_ex))


def _lexcmp(a: LexItem, b: LexItem) -> int:
    """Redis ``sdscmplex``: "-" below everything, "+" above everything."""
    if a == b and type(a) is type(b):
        return 0
    if isinstance(a, int):
        return -1 if a == LEX_MIN else 1
    if isinstance(b, int):
        return 1 if b == LEX_MIN else -1
    return -1 if a < b else (1 if a > b else 0)


def _parse_lex_item(arg: bytes) -> tuple[LexItem, bool] | None:
    first = arg[:1]
    if first == b"+":
        return (LEX_MAX, True) if arg[1:2] in (b"", b"\0") else None
    if first == b"-":
        return (LEX_MIN, True) if arg[1:2] in (b"", b"\0") else None
    if first == b"(":
        return arg[1:], True
    if first == b"[":
        return arg[1:], False
    return None


def parse_lex_range(lo: bytes, hi: bytes) -> LexRange | None:
    a = _parse_lex_item(lo)
    b = _parse_lex_item(hi)
    if a is None or b is None:
        return None
    return LexRange(a[0], a[1], b[0], b[1])


def _c_lower(arg: bytes) -> bytes:
    """An option as strcasecmp sees it: up to its first NUL, lowercased."""
    nul = arg.find(b"\0")
    return (arg if nul < 0 else arg[:nul]).lower()


# -- the score index ----------------------------------------------------------------------------

_DOUBLE: Final = struct.Struct(">d")
_MASK64: Final = (1 << 64) - 1
_SIGN: Final = 1 << 63
_M: Final = b"m"
_S: Final = b"s"
_M_END: Final = b"n"
_S_END: Final = b"t"


def _order_int(score: float) -> int:
    bits: int = U64.unpack(_DOUBLE.pack(score + 0.0))[0]  # + 0.0: -0.0 becomes 0.0
    return bits ^ _MASK64 if bits & _SIGN else bits | _SIGN


def _order(score: float) -> bytes:
    return U64.pack(_order_int(score))


def _from_order(key: bytes) -> float:
    bits: int = U64.unpack_from(key)[0]
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _MASK64
    return float(_DOUBLE.unpack(U64.pack(bits))[0])


class ZSet:
    """A sorted set over an open ``Collection``: member -> score and the score index."""

    __slots__ = ("c",)

    def __init__(self, c: Collection) -> None:
        self.c = c

    @property
    def size(self) -> int:
        return self.c.size

    def score(self, member: bytes) -> float | None:
        raw = self.c.get(_M + member)
        return None if raw is None else float(_DOUBLE.unpack(raw)[0])

    def set(self, member: bytes, score: float, old: float | None) -> None:
        """Give ``member`` (whose score is ``old``, None: new) the score ``score``."""
        c = self.c
        score += 0.0
        if old is None:
            c.size += 1
        else:
            c.delete(_S + _order(old) + member)
        c.put(_M + member, _DOUBLE.pack(score))
        c.put(_S + _order(score) + member, b"")

    def remove(self, member: bytes, score: float) -> None:
        c = self.c
        c.delete(_M + member)
        c.delete(_S + _order(score) + member)
        c.size -= 1

    def entries(
        self, lo: bytes = b"", hi: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, float]]:
        """(member, score) in score order (descending if ``reverse``) with lo <= index key < hi
        (index keys: 8-byte order(score) then the member)."""
        for key, _ in self.c.members(_S + lo, _S_END if hi is None else _S + hi, reverse=reverse):
            yield key[9:], _from_order(key[1:9])

    def first(self, *, reverse: bool = False) -> tuple[bytes, float] | None:
        return next(self.entries(reverse=reverse), None)

    def by_score(self, spec: ScoreRange, *, reverse: bool = False) -> Iterator[tuple[bytes, float]]:
        bounds = spec.index_bounds()
        if bounds is None:
            return iter(())
        return self.entries(bounds[0], bounds[1], reverse=reverse)

    def by_lex(self, spec: LexRange, *, reverse: bool = False) -> Iterator[tuple[bytes, float]]:
        """The members in ``spec`` from where Redis starts (the first in range from the head,
        or the last from the tail), walking while in range; see ``_lex_walk`` for LIMIT."""
        start = self.lex_start(spec, reverse=reverse)
        if start is None:
            return
        it, first = start
        yield first
        check = spec.gte_min if reverse else spec.lte_max
        for entry in it:
            if not check(entry[0]):
                return
            yield entry

    def lex_start(
        self, spec: LexRange, *, reverse: bool = False
    ) -> tuple[Iterator[tuple[bytes, float]], tuple[bytes, float]] | None:
        """(iterator after the first element, the first element) as Redis's
        zzlFirstInLexRange/zzlLastInLexRange find it, or None when nothing is in range."""
        if spec.is_empty():
            return None
        head = self.first()
        tail = self.first(reverse=True)
        if head is None or tail is None:
            return None
        if not spec.gte_min(tail[0]) or not spec.lte_max(head[0]):
            return None
        if head[1] == tail[1]:  # one score: the index is in member order, seek
            block = _order(head[1])
            if reverse:
                hi: bytes | None
                if spec.max == LEX_MAX:
                    hi = None
                else:
                    assert isinstance(spec.max, bytes)
                    hi = block + spec.max + (b"" if spec.max_ex else b"\0")
                it = self.entries(block, hi, reverse=True)
            else:
                if spec.min == LEX_MIN:
                    lo = block
                else:
                    assert isinstance(spec.min, bytes)
                    lo = block + spec.min + (b"\0" if spec.min_ex else b"")
                it = self.entries(lo)
        else:
            it = self.entries(reverse=reverse)
        found = spec.lte_max if reverse else spec.gte_min
        other = spec.gte_min if reverse else spec.lte_max
        for entry in it:
            if found(entry[0]):
                return (it, entry) if other(entry[0]) else None
        return None

    def rank(self, member: bytes, *, reverse: bool = False) -> int:
        """0-based rank of a present member: two walks from both ends, whichever meets it
        first (O(min(rank, size - rank)))."""
        forward = self.entries()
        backward = self.entries(reverse=True)
        size = self.c.size
        for i in range(size):
            entry = next(forward, None)
            if entry is not None and entry[0] == member:
                return size - 1 - i if reverse else i
            entry = next(backward, None)
            if entry is not None and entry[0] == member:
                return i if reverse else size - 1 - i
        raise RuntimeError("rank of a member not in the score index")

    def by_rank(self, start: int, end: int, *, reverse: bool = False) -> list[tuple[bytes, float]]:
        """Entries at ranks start..end (0 <= start <= end < size) in the direction asked,
        walked from whichever end of the index is nearer."""
        size = self.c.size
        count = end - start + 1
        if start <= size - 1 - end:
            it = self.entries(reverse=reverse)
            skip = start
            out = _take(it, skip, count)
        else:
            it = self.entries(reverse=not reverse)
            out = _take(it, size - 1 - end, count)
            out.reverse()
        return out

    def store(self) -> None:
        self.c.store()


def _take(it: Iterator[tuple[bytes, float]], skip: int, count: int) -> list[tuple[bytes, float]]:
    """``count`` entries (< 0: all) after skipping ``skip``."""
    if count == 0:
        return []
    for _ in range(skip):
        if next(it, None) is None:
            return []
    out = []
    for entry in it:
        out.append(entry)
        if len(out) == count:
            break
    return out


def _open_read(sm: StateMachine, db: Db, key: bytes, now: int) -> ZSet | ErrorReply | None:
    c = collection.open_read(sm, db, key, now, T_ZSET)
    return c if c is None or isinstance(c, ErrorReply) else ZSet(c)


def _open_write(sm: StateMachine, db: Db, key: bytes, stamp: int) -> ZSet | ErrorReply | None:
    c = collection.open_write(sm, db, key, stamp, T_ZSET)
    return c if c is None or isinstance(c, ErrorReply) else ZSet(c)


_prepare_checked = collection.type_checked_prepare(T_ZSET)


def _checked(
    parse: Any,
) -> Prepare:
    """A prepare that runs the command's argument parser, then the WRONGTYPE check."""

    def prepare(
        sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
    ) -> list[bytes] | ErrorReply:
        parsed = parse(argv)
        if isinstance(parsed, ErrorReply):
            return parsed
        return _prepare_checked(sm, argv, db_index, now, check)

    return prepare


def _with_scores(entries: Iterable[tuple[bytes, float]], withscores: bool) -> Any:
    if withscores:
        return PairsReply(entries)
    return [member for member, _ in entries]


# -- reads --------------------------------------------------------------------------------------


def zscore(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z
    return z.score(argv[2])


def zmscore(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    z = _open_read(sm, db, argv[1], now)
    if isinstance(z, ErrorReply):
        return z
    if z is None:
        return [None] * (len(argv) - 2)
    return [z.score(member) for member in argv[2:]]


def zcard(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z or 0
    return z.size


def zcount(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    spec = parse_score_range(argv[2], argv[3])
    if spec is None:
        return MIN_MAX_NOT_FLOAT
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z or 0
    return sum(1 for _ in z.by_score(spec))


def zlexcount(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    spec = parse_lex_range(argv[2], argv[3])
    if spec is None:
        return MIN_MAX_NOT_LEX
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z or 0
    return sum(1 for _ in z.by_lex(spec))


def zrank(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z
    if z.score(argv[2]) is None:
        return None
    return z.rank(argv[2], reverse=argv[0].lower() == b"zrevrank")


# ZRANGE and its family: (range type, direction) fixed by the command, None: from the options.
_RANK, _SCORE, _LEX = "rank", "score", "lex"
_RANGE_COMMANDS: Final[dict[bytes, tuple[str | None, bool | None]]] = {
    b"zrange": (None, None),
    b"zrangestore": (None, None),
    b"zrevrange": (_RANK, True),
    b"zrangebyscore": (_SCORE, False),
    b"zrevrangebyscore": (_SCORE, True),
    b"zrangebylex": (_LEX, False),
    b"zrevrangebylex": (_LEX, True),
}


class RangeQuery:
    __slots__ = ("end", "kind", "lex", "limit", "offset", "reverse", "score", "start", "withscores")

    def __init__(self) -> None:
        self.kind = _RANK
        self.reverse = False
        self.withscores = False
        self.offset = 0
        self.limit = -1
        self.start = 0
        self.end = 0
        self.score: ScoreRange | None = None
        self.lex: LexRange | None = None


def parse_range(argv: list[bytes], first: int, *, store: bool) -> RangeQuery | ErrorReply:
    """Redis's zrangeGenericCommand argument handling: ``argv[first]`` is the source key,
    then min max and the options; the options are checked before the range."""
    kind, reverse = _RANGE_COMMANDS.get(argv[0].lower(), (None, None))
    q = RangeQuery()
    n = len(argv)
    j = first + 3
    while j < n:
        left = n - j - 1
        opt = _c_lower(argv[j])
        if not store and opt == b"withscores":
            q.withscores = True
        elif opt == b"limit" and left >= 2:
            offset = parse_int(argv[j + 1])
            limit = parse_int(argv[j + 2]) if offset is not None else None
            if offset is None or limit is None:
                return errors.NOT_INTEGER
            q.offset, q.limit = offset, limit
            j += 2
        elif reverse is None and opt == b"rev":
            reverse = True
        elif kind is None and opt == b"bylex":
            kind = _LEX
        elif kind is None and opt == b"byscore":
            kind = _SCORE
        else:
            return errors.SYNTAX
        j += 1
    q.kind = kind or _RANK
    q.reverse = bool(reverse)
    if q.limit != -1 and q.kind == _RANK:
        return LIMIT_NEEDS_RANGE
    if q.withscores and q.kind == _LEX:
        return WITHSCORES_BYLEX
    lo, hi = argv[first + 1], argv[first + 2]
    if q.reverse and q.kind != _RANK:
        lo, hi = hi, lo  # given as max min
    if q.kind == _RANK:
        start = parse_int(lo)
        end = parse_int(hi) if start is not None else None
        if start is None or end is None:
            return errors.NOT_INTEGER
        q.start, q.end = start, end
    elif q.kind == _SCORE:
        q.score = parse_score_range(lo, hi)
        if q.score is None:
            return MIN_MAX_NOT_FLOAT
    else:
        q.lex = parse_lex_range(lo, hi)
        if q.lex is None:
            return MIN_MAX_NOT_LEX
    return q


def _rank_bounds(size: int, start: int, end: int) -> tuple[int, int] | None:
    """Redis's index sanitising: (start, end) within 0..size-1, or None for an empty range."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    if start < 0:
        start = 0
    if start > end or start >= size:
        return None
    return start, min(end, size - 1)


def run_range(z: ZSet, q: RangeQuery) -> list[tuple[bytes, float]]:
    if q.kind == _RANK:
        bounds = _rank_bounds(z.size, q.start, q.end)
        if bounds is None:
            return []
        return z.by_rank(bounds[0], bounds[1], reverse=q.reverse)
    if q.offset < 0 or (q.offset > 0 and q.offset >= z.size):
        return []  # a negative offset skips everything in Redis
    if q.kind == _SCORE:
        assert q.score is not None
        it = z.by_score(q.score, reverse=q.reverse)
        return _take(it, q.offset, q.limit)
    assert q.lex is not None
    return _lex_walk(z, q.lex, q.reverse, q.offset, q.limit)


def _lex_walk(
    z: ZSet, spec: LexRange, reverse: bool, offset: int, limit: int
) -> list[tuple[bytes, float]]:
    """Redis's listpack lex walk: from the first element in range, skip ``offset`` elements
    (in range or not), then emit while in range, up to ``limit`` (< 0: no limit)."""
    start = z.lex_start(spec, reverse=reverse)
    if start is None:
        return []
    it, first = start
    entry: tuple[bytes, float] | None = first
    for _ in range(offset):
        entry = next(it, None)
        if entry is None:
            return []
    check = spec.gte_min if reverse else spec.lte_max
    out: list[tuple[bytes, float]] = []
    while entry is not None and len(out) != limit:
        if not check(entry[0]):
            break
        out.append(entry)
        entry = next(it, None)
    return out


def _take_limit(it: Iterator[tuple[bytes, float]], count: int) -> list[tuple[bytes, float]]:
    return _take(it, 0, count)


def zrange(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    q = parse_range(argv, 1, store=False)
    if isinstance(q, ErrorReply):
        return q
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z or []
    return _with_scores(run_range(z, q), q.withscores)


def zrandmember(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    if len(argv) == 2:
        z = _open_read(sm, db, argv[1], now)
        if z is None or isinstance(z, ErrorReply):
            return z
        picked = collection.random_members(_members_view(z), 1, sm.random_bits, unique=True)
        return picked[0][0] if picked else None
    count = parse_int(argv[2])
    if count is None:
        return errors.NOT_INTEGER
    if count < -_LONG_MAX:
        return errors.COUNT_OUT_OF_RANGE
    if len(argv) > 4 or (len(argv) == 4 and _c_lower(argv[3]) != b"withscores"):
        return errors.SYNTAX
    withscores = len(argv) == 4
    if withscores and (count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2):
        return errors.VALUE_OUT_OF_RANGE
    z = _open_read(sm, db, argv[1], now)
    if z is None or isinstance(z, ErrorReply):
        return z or []
    if count == 0:
        return []
    picked = collection.random_members(
        _members_view(z), abs(count), sm.random_bits, unique=count > 0
    )
    if withscores:
        return PairsReply((m, float(_DOUBLE.unpack(v)[0])) for m, v in picked)
    return [m for m, _ in picked]


def _members_view(z: ZSet) -> Collection:
    """The ``m member -> score`` family as a collection of its own (for random picks)."""
    c = z.c
    view = Collection(c.sm, c.db, c.key, c.code, c.version, size=c.size)
    view.prefix = c.prefix + _M
    return view


def zscan(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    """ZSCAN key cursor [MATCH p] [COUNT n]: HSCAN's order of checks; the scores as text."""
    cursor = parse_scan_cursor(argv[2])
    if cursor is None:
        return errors.INVALID_CURSOR
    z = _open_read(sm, db, argv[1], now)
    if z is None:
        return [b"0", []]
    if isinstance(z, ErrorReply):
        return z
    options = parse_scan_options(argv, 3, allow_type=False)
    if isinstance(options, ErrorReply):
        return options
    count, pattern, _ = options
    last, items = collection.scan(
        _members_view(z), sm.cursor_position(cursor, db), count, pattern, values=True
    )
    for i in range(1, len(items), 2):
        items[i] = format_score(float(_DOUBLE.unpack(items[i])[0]))
    if last is None:
        return [b"0", items]
    return [str(sm.new_cursor(db, last)).encode(), items]


def format_score(score: float) -> bytes:
    """A score as Redis writes it in text ("%.17g", inf, -inf)."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    return b"%.17g" % score


# -- writes -------------------------------------------------------------------------------------

_NX, _XX, _GT, _LT, _INCR = 1, 2, 4, 8, 16


def parse_zadd(argv: list[bytes]) -> tuple[int, bool, list[tuple[float, bytes]]] | ErrorReply:
    """(flags, ch, [(score, member)]) as zaddGenericCommand checks them, in its order."""
    flags = _INCR if argv[0].lower() == b"zincrby" else 0
    ch = False
    i = 2
    n = len(argv)
    while i < n:
        opt = _c_lower(argv[i])
        if opt == b"nx":
            flags |= _NX
        elif opt == b"xx":
            flags |= _XX
        elif opt == b"ch":
            ch = True
        elif opt == b"incr":
            flags |= _INCR
        elif opt == b"gt":
            flags |= _GT
        elif opt == b"lt":
            flags |= _LT
        else:
            break
        i += 1
    elements = n - i
    if elements % 2 or not elements:
        return errors.SYNTAX
    if flags & _NX and flags & _XX:
        return XX_NX
    if (flags & _NX and flags & (_GT | _LT)) or (flags & _GT and flags & _LT):
        return GT_LT_NX
    if flags & _INCR and elements > 2:
        return INCR_SINGLE
    pairs: list[tuple[float, bytes]] = []
    for j in range(i, n, 2):
        score = parse_score(argv[j])
        if score is None:
            return errors.NOT_FLOAT
        pairs.append((score, argv[j + 1]))
    return flags, ch, pairs


def zadd(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    parsed = parse_zadd(argv)
    if isinstance(parsed, ErrorReply):
        return parsed
    flags, ch, pairs = parsed
    incr = bool(flags & _INCR)
    c = collection.open_write(sm, db, argv[1], stamp, T_ZSET)
    if isinstance(c, ErrorReply):
        return c
    if c is None:
        if flags & _XX:
            return None if incr else 0
        c = collection.create(sm, db, argv[1], T_ZSET)
    z = ZSet(c)
    added = updated = processed = 0
    reply_score = 0.0
    for score, member in pairs:
        current = z.score(member)
        if current is None:
            if flags & _XX:
                continue
            z.set(member, score, None)
            added += 1
            processed += 1
            reply_score = score
            continue
        if flags & _NX:
            continue
        if incr:
            score += current
            if math.isnan(score):
                z.store()
                return SCORE_NAN
        if (flags & _LT and score >= current) or (flags & _GT and score <= current):
            continue
        processed += 1
        reply_score = score
        if score != current:
            z.set(member, score, current)
            updated += 1
    z.store()
    if incr:
        return reply_score if processed else None
    return added + updated if ch else added


def zrem(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    z = _open_write(sm, db, argv[1], stamp)
    if z is None or isinstance(z, ErrorReply):
        return z or 0
    removed = 0
    for member in argv[2:]:
        score = z.score(member)
        if score is not None:
            z.remove(member, score)
            removed += 1
            if z.size == 0:
                break
    z.store()
    return removed


def _parse_pop_count(argv: list[bytes]) -> int | ErrorReply:
    if len(argv) > 3:
        return errors.SYNTAX
    if len(argv) == 2:
        return -1
    count = parse_int(argv[2])
    if count is None or count < 0:  # getPositiveLongFromObjectOrReply: one message for both
        return errors.VALUE_OUT_OF_RANGE_POSITIVE
    return count


def zpop(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """ZPOPMIN/ZPOPMAX key [count]: without count a flat [member, score]; with it pairs
    (RESP3: an array of [member, score] arrays, as Redis 7.0 sends them)."""
    count = _parse_pop_count(argv)
    if isinstance(count, ErrorReply):
        return count
    z = _open_write(sm, db, argv[1], stamp)
    if z is None or isinstance(z, ErrorReply):
        return z or []
    if count == 0:
        return []
    take = 1 if count < 0 else count
    popped = _take_limit(z.entries(reverse=argv[0].lower() == b"zpopmax"), take)
    for member, score in popped:
        z.remove(member, score)
    z.store()
    if count < 0:
        return [popped[0][0], popped[0][1]] if popped else []
    return PairsReply(popped)


def parse_remrange(argv: list[bytes]) -> Any:
    kind = argv[0].lower()
    if kind == b"zremrangebyrank":
        start = parse_int(argv[2])
        end = parse_int(argv[3]) if start is not None else None
        if start is None or end is None:
            return errors.NOT_INTEGER
        return start, end
    if kind == b"zremrangebyscore":
        spec = parse_score_range(argv[2], argv[3])
        return MIN_MAX_NOT_FLOAT if spec is None else spec
    lex = parse_lex_range(argv[2], argv[3])
    return MIN_MAX_NOT_LEX if lex is None else lex


def zremrange(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    spec = parse_remrange(argv)
    if isinstance(spec, ErrorReply):
        return spec
    z = _open_write(sm, db, argv[1], stamp)
    if z is None or isinstance(z, ErrorReply):
        return z or 0
    victims: Iterable[tuple[bytes, float]]
    if isinstance(spec, tuple):
        bounds = _rank_bounds(z.size, spec[0], spec[1])
        if bounds is None:
            return 0
        victims = z.by_rank(bounds[0], bounds[1])
    elif isinstance(spec, ScoreRange):
        victims = list(z.by_score(spec))
    else:
        victims = list(z.by_lex(spec))
    removed = 0
    for member, score in victims:
        z.remove(member, score)
        removed += 1
    z.store()
    return removed


def _prepare_zrangestore(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    """The source (argv[2]) must be a sorted set; the destination may hold anything."""
    q = parse_range(argv, 2, store=True)
    if isinstance(q, ErrorReply):
        return q
    if check and not collection.has_type(sm, db_index, argv[2], now, T_ZSET):
        return errors.WRONGTYPE
    return argv


def _store(
    sm: StateMachine, db: Db, key: bytes, stamp: int, entries: Iterable[tuple[bytes, float]]
) -> int:
    """Replace whatever ``key`` holds with a sorted set of ``entries`` (distinct members),
    or delete it when there are none; the new size."""
    record = sm.lookup_write(db, key, stamp)
    z = ZSet(collection.create(sm, db, key, T_ZSET, replacing=record))
    for member, score in entries:
        z.set(member, score, None)
    z.store()
    return z.size


def zrangestore(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    q = parse_range(argv, 2, store=True)
    if isinstance(q, ErrorReply):
        return q
    src = _open_write(sm, db, argv[2], stamp)
    if isinstance(src, ErrorReply):
        return src
    result = [] if src is None else run_range(src, q)
    return _store(sm, db, argv[1], stamp, result)


_SUM, _MIN, _MAX = 0, 1, 2
_UNION, _INTER, _DIFF = "union", "inter", "diff"

#: name -> (operation, argv index of numkeys, stores into argv[1], cardinality only)
_SETOPS: Final[dict[bytes, tuple[str, int, bool, bool]]] = {
    b"zunionstore": (_UNION, 2, True, False),
    b"zinterstore": (_INTER, 2, True, False),
    b"zdiffstore": (_DIFF, 2, True, False),
    b"zunion": (_UNION, 1, False, False),
    b"zinter": (_INTER, 1, False, False),
    b"zdiff": (_DIFF, 1, False, False),
    b"zintercard": (_INTER, 1, False, True),
}


class SetOp:
    """A parsed ZUNION/ZINTER/ZDIFF[STORE]/ZINTERCARD."""

    __slots__ = ("aggregate", "card_only", "keys", "limit", "op", "store", "weights", "withscores")

    def __init__(self, op: str, keys: list[bytes], store: bool, card_only: bool) -> None:
        self.op = op
        self.keys = keys
        self.store = store
        self.card_only = card_only
        self.weights = [1.0] * len(keys)
        self.aggregate = _SUM
        self.withscores = False
        self.limit = 0  # ZINTERCARD's LIMIT, 0: none


def parse_setop_keys(argv: list[bytes]) -> SetOp | ErrorReply:
    """The numkeys part, checked before anything else (zunionInterDiffGenericCommand)."""
    op, at, store, card_only = _SETOPS[argv[0].lower()]
    setnum = parse_int(argv[at])
    if setnum is None:
        return errors.NOT_INTEGER
    if setnum < 1:
        return _needs_keys(argv[0].lower().decode())
    if setnum > len(argv) - (at + 1):
        return errors.SYNTAX
    return SetOp(op, argv[at + 1 : at + 1 + setnum], store, card_only)


def parse_setop_options(argv: list[bytes], q: SetOp) -> ErrorReply | None:
    """The options after the keys (checked after the inputs' types, as Redis does)."""
    _, at, _, _ = _SETOPS[argv[0].lower()]
    setnum = len(q.keys)
    j = at + 1 + setnum
    n = len(argv)
    weighted = q.op != _DIFF and not q.card_only
    while j < n:
        remaining = n - j
        opt = _c_lower(argv[j])
        if weighted and remaining >= setnum + 1 and opt == b"weights":
            for i in range(setnum):
                w = parse_score(argv[j + 1 + i])
                if w is None:
                    return WEIGHT_NOT_FLOAT
                q.weights[i] = w
            j += setnum + 1
        elif weighted and remaining >= 2 and opt == b"aggregate":
            how = _c_lower(argv[j + 1])
            if how == b"sum":
                q.aggregate = _SUM
            elif how == b"min":
                q.aggregate = _MIN
            elif how == b"max":
                q.aggregate = _MAX
            else:
                return errors.SYNTAX
            j += 2
        elif not q.store and not q.card_only and opt == b"withscores":
            q.withscores = True
            j += 1
        elif q.card_only and remaining >= 2 and opt == b"limit":
            limit = parse_int(argv[j + 1])
            if limit is None or limit < 0:
                return errors.LIMIT_NEGATIVE
            q.limit = limit
            j += 2
        else:
            return errors.SYNTAX
    return None


def _prepare_setop(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    """numkeys errors come before anything else; WRONGTYPE of an input comes before the
    options' errors in Redis, so those are left to apply unless the types are known good."""
    q = parse_setop_keys(argv)
    if isinstance(q, ErrorReply):
        return q
    if check:
        db = sm.db(db_index)
        for key in q.keys:
            record = sm.lookup_read(db, key, now)
            if record is not None and record[0] & 0x7F not in (T_ZSET, T_SET):
                return errors.WRONGTYPE
        options = parse_setop_options(argv, q)
        if options is not None:
            return options
    return argv


class _Input:
    """One input of a set operation: a sorted set, or a set (every score 1)."""

    __slots__ = ("c", "size", "weight")

    def __init__(self, c: Collection | None, weight: float) -> None:
        self.c = c
        self.size = 0 if c is None else c.size
        self.weight = weight

    def items(self) -> Iterator[tuple[bytes, float]]:
        c = self.c
        if c is None:
            return
        if c.code == T_ZSET:
            yield from ZSet(c).entries()
        else:  # a set's member records are the members, with empty values
            for member, _ in c.members():
                yield member, 1.0

    def find(self, member: bytes) -> float | None:
        c = self.c
        if c is None:
            return None
        if c.code == T_ZSET:
            return ZSet(c).score(member)
        return 1.0 if c.get(member) is not None else None


def _aggregate(target: float, value: float, how: int) -> float:
    if how == _SUM:
        total = target + value
        return 0.0 if math.isnan(total) else total
    if how == _MIN:
        return value if value < target else target
    return value if value > target else target


def _compute(inputs: list[_Input], q: SetOp) -> dict[bytes, float] | int:
    """The result (member -> score), or ZINTERCARD's count. Union and intersection visit
    the inputs smallest first, as Redis does (it matters for sums of floats)."""
    result: dict[bytes, float] = {}
    if q.op == _DIFF:
        first = inputs[0]
        others = inputs[1:]
        for member, score in first.items():
            if all(other.find(member) is None for other in others):
                result[member] = score
        return result
    inputs = sorted(inputs, key=lambda s: s.size)
    how = q.aggregate
    if q.op == _INTER:
        first = inputs[0]
        count = 0
        if first.size == 0:
            return 0 if q.card_only else result
        for member, score in first.items():
            total = first.weight * score
            if math.isnan(total):
                total = 0.0
            for other in inputs[1:]:
                found = other.find(member)
                if found is None:
                    break
                total = _aggregate(total, found * other.weight, how)
            else:
                if q.card_only:
                    count += 1
                    if q.limit and count >= q.limit:
                        break
                else:
                    result[member] = total
        return count if q.card_only else result
    for source in inputs:
        for member, score in source.items():
            value = source.weight * score
            if math.isnan(value):
                value = 0.0
            if member in result:
                result[member] = _aggregate(result[member], value, how)
            else:
                result[member] = value
    return result


def _setop(sm: StateMachine, argv: list[bytes], db: Db, now: int, *, write: bool) -> Any:
    q = parse_setop_keys(argv)
    if isinstance(q, ErrorReply):
        return q
    sources: list[Collection | None] = []
    for key in q.keys:
        record = sm.lookup_write(db, key, now) if write else sm.lookup_read(db, key, now)
        if record is None:
            sources.append(None)
            continue
        if record[0] & 0x7F not in (T_ZSET, T_SET):
            return errors.WRONGTYPE
        sources.append(Collection.decode(sm, db, key, record))
    failed = parse_setop_options(argv, q)
    if failed is not None:
        return failed
    result = _compute([_Input(c, w) for c, w in zip(sources, q.weights, strict=True)], q)
    if isinstance(result, int):
        return result
    if q.store:
        return _store(sm, db, argv[1], now, result.items())
    # Redis answers from its (skiplist) result: in score order, -0.0 kept as it was computed.
    entries = sorted(result.items(), key=lambda e: (e[1], e[0]))
    return _with_scores(entries, q.withscores)


def zsetop_store(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """ZUNIONSTORE/ZINTERSTORE dst numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX];
    ZDIFFSTORE dst numkeys key...; sets count as sorted sets with every score 1."""
    return _setop(sm, argv, db, stamp, write=True)


def zsetop_read(sm: StateMachine, argv: list[bytes], db: Db, now: int) -> Any:
    """ZUNION/ZINTER numkeys key... [WEIGHTS...] [AGGREGATE...] [WITHSCORES]; ZDIFF numkeys
    key... [WITHSCORES]; ZINTERCARD numkeys key... [LIMIT n]."""
    return _setop(sm, argv, db, now, write=False)


_ZMPOP_WHERE: Final = {b"min": False, b"max": True}


def parse_zmpop(argv: list[bytes]) -> tuple[list[bytes], bool, int] | ErrorReply:
    """ZMPOP numkeys key... MIN|MAX [COUNT n]: (keys, from the max end, count)."""
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        return errors.NUMKEYS_NOT_POSITIVE
    where_at = 2 + numkeys
    if where_at >= len(argv):
        return errors.SYNTAX
    reverse = _ZMPOP_WHERE.get(_c_lower(argv[where_at]))
    if reverse is None:
        return errors.SYNTAX
    count = -1
    j = where_at + 1
    while j < len(argv):
        if count == -1 and _c_lower(argv[j]) == b"count" and j + 1 < len(argv):
            count = parse_int(argv[j + 1]) or 0
            if count < 1:
                return COUNT_NOT_POSITIVE
            j += 2
        else:
            return errors.SYNTAX
    return argv[2:where_at], reverse, (1 if count == -1 else count)


def _prepare_zmpop(
    sm: StateMachine, argv: list[bytes], db_index: int, now: int, check: bool
) -> list[bytes] | ErrorReply:
    """Syntax only: which key's type matters depends on which keys exist (found at apply)."""
    parsed = parse_zmpop(argv)
    return parsed if isinstance(parsed, ErrorReply) else argv


def zmpop(sm: StateMachine, argv: list[bytes], db: Db, stamp: int) -> Any:
    """Pops from the first of the keys that holds a sorted set: [key, [[member, score]...]]
    (nested in RESP2 too), or a null array when none does."""
    parsed = parse_zmpop(argv)
    if isinstance(parsed, ErrorReply):
        return parsed
    keys, reverse, count = parsed
    for key in keys:
        z = _open_write(sm, db, key, stamp)
        if z is None:
            continue
        if isinstance(z, ErrorReply):
            return z
        popped = _take_limit(z.entries(reverse=reverse), count)
        for member, score in popped:
            z.remove(member, score)
        z.store()
        return [key, [[member, score] for member, score in popped]]
    return NULL_ARRAY


IMPLEMENTATIONS: dict[str, tuple[Handler, Prepare | None]] = {
    "zadd": (zadd, _checked(parse_zadd)),
    "zincrby": (zadd, _checked(parse_zadd)),
    "zrem": (zrem, _prepare_checked),
    "zscore": (zscore, None),
    "zmscore": (zmscore, None),
    "zcard": (zcard, None),
    "zcount": (zcount, None),
    "zlexcount": (zlexcount, None),
    "zrank": (zrank, None),
    "zrevrank": (zrank, None),
    "zrange": (zrange, None),
    "zrevrange": (zrange, None),
    "zrangebyscore": (zrange, None),
    "zrevrangebyscore": (zrange, None),
    "zrangebylex": (zrange, None),
    "zrevrangebylex": (zrange, None),
    "zrangestore": (zrangestore, _prepare_zrangestore),
    "zpopmin": (zpop, _checked(_parse_pop_count)),
    "zpopmax": (zpop, _checked(_parse_pop_count)),
    "zremrangebyrank": (zremrange, _checked(parse_remrange)),
    "zremrangebyscore": (zremrange, _checked(parse_remrange)),
    "zremrangebylex": (zremrange, _checked(parse_remrange)),
    "zunionstore": (zsetop_store, _prepare_setop),
    "zinterstore": (zsetop_store, _prepare_setop),
    "zdiffstore": (zsetop_store, _prepare_setop),
    "zunion": (zsetop_read, None),
    "zinter": (zsetop_read, None),
    "zdiff": (zsetop_read, None),
    "zintercard": (zsetop_read, None),
    "zmpop": (zmpop, _prepare_zmpop),
    "zrandmember": (zrandmember, None),
    "zscan": (zscan, None),
}
