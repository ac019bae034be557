"""Redis's number parsing and formatting, reproduced exactly.

``parse_int`` is Redis's ``string2ll``: the strict decimal form Redis accepts for integers
(no sign but '-', no leading zeros, no spaces, no '+', fits a signed 64-bit integer).

INCRBYFLOAT is computed in C ``long double``, which on x86-64 (where Redis 7.0 runs and was
compared against) is the x87 80-bit extended format: a 64-bit significand and exponents down to
2^-16445 and up to 2^16383. Python floats are 64-bit doubles, so this module does the arithmetic
exactly on integers instead: a value is ``num * 2**exp`` with ``num`` rounded to 64 significant
bits (round half to even, with the x87 subnormal range), parsing follows glibc ``strtold``
(decimal, hexadecimal, inf/infinity; nan is refused like Redis's ``string2ld`` does), and the
result is printed the way ``ld2string(..., LD_STR_HUMAN)`` does: ``%.17Lf`` then trailing zeros
(and a bare '.') removed, "-0" written as "0". The results are therefore bit-identical to
Redis's, including values beyond the double range such as 1e400.
"""

from __future__ import annotations

from typing import Final

LLONG_MAX: Final = (1 << 63) - 1
LLONG_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 31) - 1
INT_MIN: Final = -(1 << 31)


def parse_int(b: bytes) -> int | None:
    """Redis ``string2ll``: the integer ``b`` spells, or None."""
    n = len(b)
    if n == 0 or n >= 21:
        return None
    c = b[0]
    if 49 <= c <= 57:  # '1'..'9'
        if n == 1:
            return c - 48
        if not b.isdigit():
            return None
        v = int(b)
        return v if v <= LLONG_MAX else None
    if c == 48:  # '0' only alone
        return 0 if n == 1 else None
    if c == 45 and n >= 2 and 49 <= b[1] <= 57:  # '-' then '1'..'9'
        if n > 2 and not b[2:].isdigit():
            return None
        v = int(b)
        return v if v >= LLONG_MIN else None
    return None


def format_int(v: int) -> bytes:
    return str(v).encode()


_CHUNK: Final = 4000  # below Python's int <-> str digit limit (4300)


def _digits_to_int(digits: bytes) -> int:
    if len(digits) <= _CHUNK:
        return int(digits)
    v = 0
    for i in range(0, len(digits), _CHUNK):
        chunk = digits[i : i + _CHUNK]
        v = v * 10 ** len(chunk) + int(chunk)
    return v


def _int_to_digits(v: int) -> str:
    if v < 10**_CHUNK:
        return str(v)
    parts: list[str] = []
    base = 10**_CHUNK
    while v >= base:
        v, low = divmod(v, base)
        parts.append(str(low).rjust(_CHUNK, "0"))
    parts.append(str(v))
    return "".join(reversed(parts))


# --- x87 80-bit long double -------------------------------------------------------------------

_MANT_BITS: Final = 64
_MIN_EXP: Final = -16445  # exponent of the smallest subnormal: 2^(-16382 - 63)
_MAX_FINITE_TOP: Final = 16384  # a value >= 2^16384 overflows
_INF: Final = "inf"
_NINF: Final = "-inf"

#: A finite long double as (num, exp) meaning num * 2**exp, or "inf" / "-inf".
LongDouble = tuple[int, int] | str


def _round_ratio(p: int, q: int) -> LongDouble:
    """Round the rational p/q (q > 0) to the nearest long double (ties to even)."""
    if p == 0:
        return (0, 0)
    neg = p < 0
    if neg:
        p = -p
    # Choose e with 2^63 <= p / (q * 2^e) < 2^64, then clamp to the subnormal range.
    e = p.bit_length() - q.bit_length() - (_MANT_BITS - 1)
    num, den = (p, q << e) if e >= 0 else (p << -e, q)
    if num < den << (_MANT_BITS - 1):
        e -= 1
        num <<= 1
    # now 2^63 <= num/den < 2^64
    if e < _MIN_EXP:
        shift = _MIN_EXP - e
        den <<= shift
        e = _MIN_EXP
    m, r = divmod(num, den)
    twice = r << 1
    if twice > den or (twice == den and m & 1):
        m += 1
    if m.bit_length() > _MANT_BITS:
        m >>= 1
        e += 1
    if m == 0:
        return (0, 0)
    if m.bit_length() + e > _MAX_FINITE_TOP:
        return _NINF if neg else _INF
    return (-m if neg else m, e)


def _is_space(c: int) -> bool:
    return c in (32, 9, 10, 11, 12, 13)


_HEX = b"0123456789abcdefABCDEF"


def parse_long_double(b: bytes) -> LongDouble | None:
    """Redis ``string2ld``: the long double ``b`` spells, or None if Redis refuses it.

    Refused: empty or >= 5120 bytes, leading whitespace, trailing garbage, NaN, and values
    that overflow to infinity or underflow to zero (``strtold`` reports ERANGE). ``inf`` and
    ``infinity`` are accepted (the caller then reports that the result is not finite).
    """
    n = len(b)
    if n == 0 or n >= 5120:
        return None
    if b"\0" in b:
        return None  # strtold would stop early: Redis checks that every byte was used
    if _is_space(b[0]):
        return None
    i = 0
    neg = False
    if b[0] in b"+-":
        neg = b[0] == 45
        i = 1
    rest = b[i:].lower()
    if rest in (b"inf", b"infinity"):
        return _NINF if neg else _INF
    if rest[:2] == b"0x" and len(rest) > 2 and (rest[2] in _HEX or rest[2:3] == b"."):
        value = _parse_hex(rest[2:])
    else:
        value = _parse_decimal(rest)
    if value is None:
        return None
    if isinstance(value, str):
        return None  # overflow: ERANGE with HUGE_VAL
    num, exp = value
    if num == 0:
        return (0, 0)
    return (-num if neg else num, exp)


def _parse_decimal(s: bytes) -> LongDouble | None:
    """Unsigned decimal [digits][.digits][e[+-]digits]; None if not all of ``s`` is used."""
    n = len(s)
    i = 0
    while i < n and 48 <= s[i] <= 57:
        i += 1
    int_digits = s[:i]
    frac_digits = b""
    if i < n and s[i] == 46:  # '.'
        j = i + 1
        while j < n and 48 <= s[j] <= 57:
            j += 1
        frac_digits = s[i + 1 : j]
        i = j
    if not int_digits and not frac_digits:
        return None
    exp10 = 0
    if i < n and s[i] in b"eE":
        j = i + 1
        if j < n and s[j] in b"+-":
            j += 1
        k = j
        while k < n and 48 <= s[k] <= 57:
            k += 1
        if k == j:
            return None  # "1e" leaves "e" unparsed
        exp_text = s[j:k].lstrip(b"0")[:12] or b"0"  # beyond 12 digits it only over/underflows
        exp10 = int(exp_text) * (-1 if s[i + 1] == 45 else 1)
        i = k
    if i != n:
        return None
    digits = (int_digits + frac_digits).lstrip(b"0")
    if not digits:
        return (0, 0)
    exp10 -= len(frac_digits)
    # Magnitude guard before building huge powers of ten: the value is in
    # [10^(len-1+exp10), 10^(len+exp10)).
    top = len(digits) + exp10
    if top > 4940:
        return _INF
    if top < -4960:
        return None  # underflow to zero: ERANGE with 0
    mant = _digits_to_int(digits)
    if exp10 >= 0:
        result = _round_ratio(mant * 10**exp10, 1)
    else:
        result = _round_ratio(mant, 10**-exp10)
    if result == (0, 0):
        return None  # underflow to zero
    return result


def _parse_hex(s: bytes) -> LongDouble | None:
    """Unsigned hex after "0x": [hexdigits][.hexdigits][p[+-]digits]."""
    n = len(s)
    i = 0
    while i < n and s[i] in _HEX:
        i += 1
    int_digits = s[:i]
    frac_digits = b""
    if i < n and s[i] == 46:
        j = i + 1
        while j < n and s[j] in _HEX:
            j += 1
        frac_digits = s[i + 1 : j]
        i = j
    if not int_digits and not frac_digits:
        return None
    exp2 = 0
    if i < n and s[i] in b"pP":
        j = i + 1
        if j < n and s[j] in b"+-":
            j += 1
        k = j
        while k < n and 48 <= s[k] <= 57:
            k += 1
        if k > j:
            exp_text = s[j:k].lstrip(b"0")[:12] or b"0"
            exp2 = int(exp_text) * (-1 if s[i + 1] == 45 else 1)
            i = k
    if i != n:
        return None
    mant = int(int_digits + frac_digits, 16)
    if mant == 0:
        return (0, 0)
    exp2 -= 4 * len(frac_digits)
    if exp2 + mant.bit_length() > _MAX_FINITE_TOP + 1:
        return _INF
    if exp2 + mant.bit_length() < _MIN_EXP - 2:
        return None
    result = _round_ratio(mant << exp2, 1) if exp2 >= 0 else _round_ratio(mant, 1 << -exp2)
    if result == (0, 0):
        return None
    return result


def add_long_double(a: LongDouble, b: LongDouble) -> tuple[int, int] | None:
    """a + b rounded to long double; None when the result is NaN or infinite."""
    if isinstance(a, str) or isinstance(b, str):
        return None  # inf + x is inf, inf - inf is nan: both refused by the caller
    an, ae = a
    bn, be = b
    if ae > be:
        an <<= ae - be
        ae = be
    elif be > ae:
        bn <<= be - ae
    total = an + bn
    if total == 0:
        return (0, 0)
    result: LongDouble = _round_ratio(total << ae, 1) if ae >= 0 else _round_ratio(total, 1 << -ae)
    return None if isinstance(result, str) else result


def format_long_double(v: tuple[int, int]) -> bytes:
    """``%.17Lf`` with trailing zeros and a trailing '.' removed; "-0" becomes "0"."""
    num, exp = v
    neg = num < 0
    if neg:
        num = -num
    # scaled = num * 2^exp * 10^17, rounded half to even.
    if exp >= 0:
        scaled = (num << exp) * 10**17
    else:
        p = num * 10**17
        shift = -exp
        scaled = p >> shift
        r = p - (scaled << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and scaled & 1):
            scaled += 1
    digits = _int_to_digits(scaled).rjust(18, "0")
    int_part, frac = digits[:-17], digits[-17:].rstrip("0")
    text = f"{int_part}.{frac}" if frac else int_part
    if neg and text != "0":
        text = "-" + text
    return text.encode()
