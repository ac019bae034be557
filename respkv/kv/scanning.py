"""SCAN's cursor and options, and the member scan of HSCAN/SSCAN/ZSCAN.

Cursors are local to a node (``StateMachine.new_cursor``): a cursor number stands for the last
key (or member) returned, and the scan resumes after it in byte order, so everything present
for the whole scan is returned at least once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from respkv.resp.replies import ErrorReply

from . import errors
from .collection import open_read, scan
from .numbers import parse_int

if TYPE_CHECKING:
    from .statemachine import Db, StateMachine

_ULONG_MAX: Final = (1 << 64) - 1


def _c_string(arg: bytes) -> bytes:
    nul = arg.find(b"\0")
    return arg if nul < 0 else arg[:nul]


def parse_scan_cursor(arg: bytes) -> int | None:
    """strtoul(arg, 10) as Redis's parseScanCursorOrReply accepts it, or None."""
    if arg and arg[0] in b" \t\n\v\f\r":
        return None
    text = _c_string(arg)
    if not text:
        return 0
    negative = False
    if text[0] in b"+-":
        negative = text[0] == 45
        text = text[1:]
    if not text or not text.isdigit():
        return None
    text = text.lstrip(b"0") or b"0"
    if len(text) > 20:
        return None
    value = int(text)
    if value > _ULONG_MAX:
        return None
    return (-value) & _ULONG_MAX if negative else value


def parse_scan_options(
    argv: list[bytes], start: int, *, allow_type: bool
) -> tuple[int, bytes | None, bytes | None] | ErrorReply:
    """Redis's scanGenericCommand options from ``argv[start:]``: (count, pattern, type name).

    TYPE is SCAN's only (``allow_type``); HSCAN/SSCAN/ZSCAN answer a syntax error for it.
    """
    count = 10
    pattern: bytes | None = None
    type_name: bytes | None = None
    i = start
    n = len(argv)
    while i < n:
        opt = _c_string(argv[i]).lower()
        if opt == b"count" and n - i >= 2:
            value = parse_int(argv[i + 1])
            if value is None:
                return errors.NOT_INTEGER
            if value < 1:
                return errors.SYNTAX
            count = value
        elif opt == b"match" and n - i >= 2:
            pattern = argv[i + 1]
        elif opt == b"type" and allow_type and n - i >= 2:
            type_name = _c_string(argv[i + 1]).lower()
        else:
            return errors.SYNTAX
        i += 2
    return count, pattern, type_name


def scan_command(
    sm: StateMachine, argv: list[bytes], db: Db, now: int, code: int, *, values: bool
) -> Any:
    """HSCAN/SSCAN/ZSCAN key cursor [MATCH p] [COUNT n], in Redis's order of checks: the
    cursor, then a missing key (an empty scan, options unchecked), WRONGTYPE, the options."""
    cursor = parse_scan_cursor(argv[2])
    if cursor is None:
        return errors.INVALID_CURSOR
    c = open_read(sm, db, argv[1], now, code)
    if c is None:
        return [b"0", []]
    if isinstance(c, ErrorReply):
        return c
    options = parse_scan_options(argv, 3, allow_type=False)
    if isinstance(options, ErrorReply):
        return options
    count, pattern, _ = options
    last, items = scan(c, sm.cursor_position(cursor, db), count, pattern, values=values)
    if last is None:
        return [b"0", items]
    return [str(sm.new_cursor(db, last)).encode(), items]
