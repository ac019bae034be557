"""A linearizability checker for histories of GET/SET/INCR/DEL on independent keys.

Theory of operation
-------------------
A history is a list of `Operation`s, each with a call time and a return time as seen by the
client that issued it. The history is linearizable if every operation can be given a single
instant between its call and its return such that, taken in that order, the operations are a
legal sequential run of the model: one register per key, holding nothing, bytes or an integer.

- GET returns the register (or None when the key is missing).
- SET stores its value; its output (Redis replies OK) is not checked.
- INCR adds its `value` (None means 1; INCRBY/DECR are INCR with another increment) to the
  integer held, starting from 0 on a missing key, and returns the new integer. It is illegal on
  a register that does not hold an integer (Redis answers an error then; see below).
- DEL empties the register and returns how many keys it removed (0 or 1).

Values are compared as Redis compares them on the wire: the int 5, the str "5" and the bytes
b"5" are the same value, and b"05" is not an integer (INCR on it is illegal).

Operations on different keys commute, so the history is checked key by key
(P-compositionality): it is linearizable iff each key's sub-history is.

Outcomes the caller must classify:

- Success: the output is known and the return time is finite.
- Definite failure, known not to have taken effect (a retry-safe error, INCR on a string,
  a request refused before it was sent): the caller must leave it out of the history.
- Unknown outcome (timeout, connection lost, "outcome unknown" errors, a request still in
  flight when the test ends): return time `math.inf`, output `UNKNOWN`. It may have taken
  effect at any instant after its call, or never. Reads with an unknown outcome constrain
  nothing and are dropped; writes are kept and may or may not be placed.

Search: the Wing & Gong algorithm with Lowe's memoization, as in Porcupine. The calls and
returns of one key are a doubly linked list sorted by time (a call sorts before a return at the
same time, so intervals that only touch count as concurrent: the checker errs on the permissive
side for integer ticks). The search walks the list from its head: a call is a candidate to
place next; if the model accepts it and the configuration (operations placed, register) was not
entered before, the operation is lifted out of the list (call and return) and the walk restarts
at the head. Reaching a return means that operation had to be placed already: backtrack,
putting back the last operation lifted and trying the candidate after it. The history is
linearizable once no return is left.

On top of that, each one a "without loss of generality" argument spelled out where it is used:

- Reads first: a GET (or a DEL that removed nothing) that fits the register is placed at once
  and its alternatives are never tried; it changes nothing and any candidate may follow it.
- Unknown-outcome writes have no return, so they never have to be placed. They sit outside the
  list and are tried only after the candidates that did return. Interchangeable ones (same kind
  and input) form a class, sorted by call time, and only the first not yet placed is a
  candidate. Unknown writes placed in a row are kept canonical: at most one SET or DEL, first,
  then INCRs in class order. A configuration with a subset of the unknown writes placed (same
  returned operations, same register) dominates and prunes one with more.
- An unknown SET whose value nothing can have observed is dropped up front (see
  `_drop_unobserved_unknown_sets`).
- Before searching, a GET of a value no SET wrote before the GET returned fails at once.

The search counts steps (entries visited) and gives up, with verdict None, when a step budget or
a wall-clock timeout runs out. It is exhaustive when it fails, so proving a long, very
concurrent history wrong costs more than accepting a right one; many unknown writes on one key
(which every dead end must try) cost most. When a key is not linearizable the explanation names
the key, the longest prefix placed (most operations that returned; its last few operations and
the register after it) and the operation that could not be placed next, with its times.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "History",
    "Key",
    "KeyResult",
    "Kind",
    "Operation",
    "Outcome",
    "Unknown",
    "Value",
    "check",
]

Key: TypeAlias = bytes | str | int
# What a client sends or receives: a missing value (None), bytes, text or an integer.
Value: TypeAlias = bytes | str | int | None


class Kind(Enum):
    GET = "GET"
    SET = "SET"
    INCR = "INCR"
    DEL = "DEL"


class Unknown(Enum):
    """The output of an operation whose outcome is unknown (use the `UNKNOWN` member)."""

    UNKNOWN = "UNKNOWN"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown.UNKNOWN
Outcome: TypeAlias = Value | Unknown


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one key, with the times the client saw it start and end.

    `value` is the input (SET: the value stored; INCR: the increment, None meaning 1; GET and
    DEL: None). `output` is the reply (GET: the value or None; INCR: the new integer; DEL: the
    number removed; SET: anything) or `UNKNOWN`. `return_time` is `math.inf` when the outcome
    is unknown. Times are in any unit (simulator ticks, wall-clock seconds), comparable
    across clients.
    """

    client: int
    key: Key
    kind: Kind
    value: Value
    output: Outcome
    call_time: float
    return_time: float

    def __post_init__(self) -> None:
        if not self.call_time <= self.return_time:
            raise ValueError(f"{self}: returns before it is called")
        if math.isinf(self.call_time):
            raise ValueError(f"{self}: call time must be finite")
        if math.isinf(self.return_time) and self.output is not UNKNOWN:
            raise ValueError(f"{self}: an operation that never returned has output UNKNOWN")
        if self.kind is Kind.SET and self.value is None:
            raise ValueError(f"{self}: SET needs a value")
        if self.kind is Kind.INCR and not isinstance(_canon(self.value or 1), int):
            raise ValueError(f"{self}: INCR's increment must be an integer")

    @property
    def outcome_unknown(self) -> bool:
        return math.isinf(self.return_time)


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key's sub-history."""

    key: Key
    ok: bool | None  # None: the search gave up (budget or timeout)
    explanation: str
    steps: int
    operation_count: int  # operations checked, after dropping unknown reads


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict for a whole history.

    `ok` is False if some key is not linearizable (`key` names the first one found), else None
    if the search gave up on some key (`key` names the first one), else True.
    """

    ok: bool | None
    key: Key | None
    explanation: str
    steps: int  # summed over keys
    key_results: tuple[KeyResult, ...]

    def __str__(self) -> str:
        return self.explanation


def check(
    history: Sequence[Operation],
    *,
    budget_steps: int | None = None,
    timeout_s: float | None = None,
) -> CheckResult:
    """Check that `history` is linearizable, key by key.

    `budget_steps` bounds the search steps spent on each key (None: no bound); a key that runs
    out is undecided and the others are still checked. `timeout_s` bounds the wall-clock time
    of the whole call (it makes the verdict depend on the machine: the simulator should use
    the step budget). Keys are checked in order of first appearance; checking stops at the
    first key that is not linearizable.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    by_key: dict[Key, list[tuple[int, Operation]]] = {}
    for index, op in enumerate(history):
        by_key.setdefault(op.key, []).append((index, op))
    results: list[KeyResult] = []
    for key, ops in by_key.items():
        result = _Search(key, ops, budget_steps, deadline).run()
        results.append(result)
        if result.ok is False:
            break
    steps = sum(r.steps for r in results)
    failed = [r for r in results if r.ok is False]
    undecided = [r for r in results if r.ok is None]
    if failed:
        return CheckResult(False, failed[0].key, failed[0].explanation, steps, tuple(results))
    if undecided:
        names = ", ".join(_show_key(r.key) for r in undecided)
        text = f"undecided keys: {names}\n" + "\n".join(r.explanation for r in undecided)
        return CheckResult(None, undecided[0].key, text, steps, tuple(results))
    text = f"linearizable: {len(history)} operations on {len(results)} keys, {steps} steps"
    return CheckResult(True, None, text, steps, tuple(results))


class History:
    """Records a client history as it happens.

    Call `invoke` just before sending a request and one of `ok` (reply received), `fail`
    (definitely not applied: the operation is dropped) or `info` (outcome unknown) after.
    `clock` gives the times (simulator ticks or `time.monotonic`). Safe to use from several
    threads.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        # op id -> (client, key, kind, value, call time) for invoked, unresolved operations
        self._pending: dict[int, tuple[int, Key, Kind, Value, float]] = {}
        # op id -> finished (or unknown-outcome) operation; insertion order is by op id
        self._done: dict[int, Operation] = {}

    def invoke(self, client: int, key: Key, kind: Kind, value: Value = None) -> int:
        now = self._clock()
        with self._lock:
            op_id = next(self._ids)
            self._pending[op_id] = (client, key, kind, value, now)
        return op_id

    def ok(self, op_id: int, output: Value) -> None:
        now = self._clock()
        self._finish(op_id, output, now)

    def fail(self, op_id: int) -> None:
        with self._lock:
            self._take(op_id)

    def info(self, op_id: int) -> None:
        self._finish(op_id, UNKNOWN, math.inf)

    def operations(self) -> list[Operation]:
        """Every recorded operation in invocation order; still-pending ones have unknown outcome."""
        with self._lock:
            done = dict(self._done)
            for op_id, (client, key, kind, value, call_time) in self._pending.items():
                done[op_id] = Operation(client, key, kind, value, UNKNOWN, call_time, math.inf)
        return [done[op_id] for op_id in sorted(done)]

    def check(
        self, *, budget_steps: int | None = None, timeout_s: float | None = None
    ) -> CheckResult:
        return check(self.operations(), budget_steps=budget_steps, timeout_s=timeout_s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._done)

    def _finish(self, op_id: int, output: Outcome, return_time: float) -> None:
        with self._lock:
            client, key, kind, value, call_time = self._take(op_id)
            self._done[op_id] = Operation(
                client, key, kind, value, output, call_time, max(return_time, call_time)
            )

    def _take(self, op_id: int) -> tuple[int, Key, Kind, Value, float]:
        try:
            return self._pending.pop(op_id)
        except KeyError:
            raise ValueError(f"operation {op_id} is not pending (caller error)") from None


# --- the model --------------------------------------------------------------------------------

# The register, canonical: None (missing), int (a value Redis would accept as an integer) or
# bytes (anything else).
_State: TypeAlias = int | bytes | None
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class _Reject(Enum):
    REJECT = "REJECT"


_REJECT: Final = _Reject.REJECT
# Op codes, as ints for a fast inner loop.
_GET, _SET, _INCR, _DEL = 0, 1, 2, 3
_CODE: Final = {Kind.GET: _GET, Kind.SET: _SET, Kind.INCR: _INCR, Kind.DEL: _DEL}


def _canon(value: Value) -> _State:
    if value is None:
        return None
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value).encode()
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if 0 < len(raw) <= 20 and raw[-1:].isdigit():
        try:
            number = int(raw)
        except ValueError:
            return raw
        if str(number).encode() == raw and _INT64_MIN <= number <= _INT64_MAX:
            return number
    return raw


def _step(state: _State, code: int, arg: _State, out: _State | Unknown) -> _State | _Reject:
    """The register after the operation, or _REJECT if it cannot have produced `out`."""
    if code == _GET:
        return state if out is UNKNOWN or out == state else _REJECT
    if code == _SET:
        return arg
    if code == _INCR:
        if state is None:
            state = 0
        elif not isinstance(state, int):
            return _REJECT
        assert isinstance(arg, int)
        new = state + arg
        if not _INT64_MIN <= new <= _INT64_MAX:
            return _REJECT
        return new if out is UNKNOWN or out == new else _REJECT
    # DEL
    removed = 0 if state is None else 1
    return None if out is UNKNOWN or out == removed else _REJECT


def _would(state: _State, code: int, arg: _State) -> str:
    """What the operation would do on `state`, for explanations."""
    if code == _GET:
        return f"would return {_show(state)}"
    if code == _INCR:
        if state is not None and not isinstance(state, int):
            return "is illegal on a non-integer"
        assert isinstance(arg, int)
        return f"would return {(state or 0) + arg}"
    if code == _DEL:
        return f"would return {0 if state is None else 1}"
    return "fits"


# --- the search -------------------------------------------------------------------------------


class _Search:
    """Wing & Gong / Lowe search over one key's operations."""

    def __init__(
        self,
        key: Key,
        ops: list[tuple[int, Operation]],
        budget_steps: int | None,
        deadline: float | None,
    ) -> None:
        self.key = key
        self.budget_steps = budget_steps
        self.deadline = deadline
        ops = [(i, op) for i, op in ops if _matters(op)]
        ops = _drop_unobserved_unknown_sets(ops)
        self.ops = [op for _, op in ops]
        self.index = [i for i, _ in ops]  # position in the caller's history, for messages
        self.code = [_CODE[op.kind] for op in self.ops]
        self.arg: list[_State] = [
            (1 if op.value is None else _canon(op.value))
            if op.kind is Kind.INCR
            # SET: the value stored
            else _canon(op.value)
            for op in self.ops
        ]
        self.out: list[_State | Unknown] = [
            UNKNOWN if op.output is UNKNOWN else _canon(op.output) for op in self.ops
        ]
        # Unknown-outcome writes are not in the event list (they have no return). They come in
        # classes of interchangeable ones (same kind and input), each sorted by call time; only
        # the first not yet placed in a class is a candidate.
        self.unknown = [op.outcome_unknown for op in self.ops]
        self.klass = [-1] * len(self.ops)
        classes: dict[tuple[int, _State], int] = {}
        self.members: list[list[int]] = []
        for i in sorted(range(len(self.ops)), key=lambda i: (self.ops[i].call_time, i)):
            if self.unknown[i]:
                c = classes.setdefault((self.code[i], self.arg[i]), len(classes))
                if c == len(self.members):
                    self.members.append([])
                self.members[c].append(i)
                self.klass[i] = c
        self.placed_in_class = [0] * len(self.members)
        # Reads that leave the register as they found it: GETs, DELs that removed nothing.
        self.read_only = [
            self.code[i] == _GET or (self.code[i] == _DEL and self.out[i] == 0)
            for i in range(len(self.ops))
        ]
        # The event list of the other operations. Node 0 is the head; node k + 1 is events[k];
        # -1 is the end. A call sorts before a return at the same time.
        events: list[tuple[float, int, int]] = []
        for i, op in enumerate(self.ops):
            if not self.unknown[i]:
                events.append((op.call_time, 0, i))
                events.append((op.return_time, 1, i))
        events.sort()
        size = len(events) + 1
        self.next = [*range(1, size), -1]
        self.prev = list(range(-1, size - 1))
        self.node_op = [-1] + [i for _, _, i in events]
        self.node_is_call = [False] + [kind == 0 for _, kind, _ in events]
        self.node_time = [-math.inf] + [t for t, _, _ in events]
        self.call_node = [-1] * len(self.ops)
        self.return_node = [-1] * len(self.ops)
        for node, (_, kind, i) in enumerate(events, start=1):
            if kind == 0:
                self.call_node[i] = node
            else:
                self.return_node[i] = node
        self.returns_left = len(events) // 2
        # The deepest dead end seen (counting operations that returned): the operations placed
        # in order, the register, the operation whose return was reached.
        self.best: tuple[list[int], _State, int] | None = None

    def run(self) -> KeyResult:
        impossible = self._impossible_read()
        if impossible is not None:
            return KeyResult(self.key, False, impossible, 0, len(self.ops))
        return self._search()

    def _impossible_read(self) -> str | None:
        """A quick look for a GET of a value nothing wrote in time (no search needed)."""
        first_written: dict[_State, float] = {}
        for i, op in enumerate(self.ops):
            if self.code[i] == _SET:
                value = self.arg[i]
                first_written[value] = min(first_written.get(value, math.inf), op.call_time)
        can_count = any(code == _INCR for code in self.code)
        for i, op in enumerate(self.ops):
            got = self.out[i]
            if self.code[i] != _GET or got is None or got is UNKNOWN:
                continue
            if can_count and isinstance(got, int):
                continue
            called = first_written.get(got, math.inf)
            if called > op.return_time:
                why = (
                    "no operation wrote it"
                    if math.isinf(called)
                    else f"it was first written by an operation called at {_show_time(called)}"
                )
                return (
                    f"key {_show_key(self.key)} is not linearizable "
                    f"({len(self.ops)} operations).\n"
                    f"This read returned {_show(got)}, but {why}:\n  {self._describe(i)}"
                )
        return None

    def _search(self) -> KeyResult:
        nxt = self.next
        node_op, node_is_call, node_time = self.node_op, self.node_is_call, self.node_time
        code, arg, out, reads = self.code, self.arg, self.out, self.read_only
        unknown, klass, members, placed = (
            self.unknown,
            self.klass,
            self.members,
            self.placed_in_class,
        )
        call_time = [op.call_time for op in self.ops]
        budget = math.inf if self.budget_steps is None else self.budget_steps
        deadline = self.deadline
        state: _State = None
        # What is placed, as bitsets of op indices: the operations that returned, and the
        # unknown-outcome ones (a prefix of each class).
        done = 0
        maybe = 0
        # (op, register before it, placed greedily so its alternatives need not be tried,
        #  the first return still in the list when it was placed)
        stack: list[tuple[int, _State, bool, int]] = []
        # Configurations entered: (done, register) -> the `maybe` sets seen with them. One with
        # fewer unknown writes placed dominates: it has the same options and more.
        seen: dict[tuple[int, _State, int], list[int]] = {}
        steps = 0
        fresh = True  # at a configuration not yet scanned for a greedy read
        best_depth = -1  # most operations with a return placed at a dead end
        node = 0  # where the scan of the event list is
        first_return = 0  # once the scan reached the first return: that node
        next_class = 0  # then: the next class of unknown writes to try
        next_clock_check: float = 0  # in steps: when to look at the budget and the clock
        while self.returns_left:
            if steps >= next_clock_check:
                if steps > budget or (deadline is not None and time.monotonic() > deadline):
                    return self._gave_up(steps, stack)
                next_clock_check = min(steps + 1000, budget + 1)
            if fresh:
                fresh = False
                first_return = 0
                # A read that fits can go first without loss: it does not change the register,
                # and every other candidate may follow it. So its alternatives need no trying.
                node = nxt[0]
                while node_is_call[node]:
                    steps += 1
                    op = node_op[node]
                    if reads[op] and _step(state, code[op], arg[op], out[op]) is not _REJECT:
                        if _enter(seen, done | (1 << op), maybe, state, -1):
                            stack.append((op, state, True, 0))
                            done |= 1 << op
                            self._lift(op)
                            fresh = True
                        break
                    node = nxt[node]
                if fresh:
                    continue
                # the read's configuration was seen already (dead end), or the scan hit a return
                node = -1 if node_is_call[node] else nxt[0]
            if node >= 0 and first_return == 0:
                # Candidates from the event list: the calls before the first return.
                steps += 1
                op = node_op[node]
                if node_is_call[node]:
                    if not reads[op]:
                        new_state = _step(state, code[op], arg[op], out[op])
                        if new_state is not _REJECT and _enter(
                            seen, done | (1 << op), maybe, new_state, -1
                        ):
                            stack.append((op, state, False, 0))
                            state = new_state
                            done |= 1 << op
                            self._lift(op)
                            fresh = True
                            continue
                    node = nxt[node]
                    continue
                first_return = node
                next_class = 0
            if node >= 0:
                # Then the unknown writes called before that return. Unknown writes placed in
                # a row (a run) are canonical: at most one SET or DEL, first, then INCRs by
                # class (whatever came before a SET or DEL in a run is overwritten unseen, and
                # INCRs commute). `run` is the class of the last INCR in the current run, 0
                # after a SET or DEL (INCRs only from here), -1 outside a run.
                limit = node_time[first_return]
                top = stack[-1][0] if stack else -1
                run = -1 if top < 0 or not unknown[top] else klass[top] if code[top] == _INCR else 0
                while next_class < len(members):
                    steps += 1
                    c = next_class
                    next_class += 1
                    if placed[c] == len(members[c]):
                        continue
                    op = members[c][placed[c]]
                    if call_time[op] > limit or (run >= 0 and (c < run or code[op] != _INCR)):
                        continue
                    new_state = _step(state, code[op], arg[op], out[op])
                    if new_state is not _REJECT and _enter(
                        seen, done, maybe | (1 << op), new_state, c if code[op] == _INCR else 0
                    ):
                        stack.append((op, state, False, first_return))
                        state = new_state
                        maybe |= 1 << op
                        self._lift(op)
                        fresh = True
                        break
                if fresh:
                    continue
                # Nothing fits before the first return: its operation cannot be placed.
                depth = done.bit_count()
                if depth > best_depth:
                    best_depth = depth
                    self.best = ([o for o, _, _, _ in stack], state, node_op[first_return])
            # Backtrack past every greedy placement to the last real choice.
            while True:
                if not stack:
                    return KeyResult(self.key, False, self._explain_failure(), steps, len(self.ops))
                op, state, greedy, first_return = stack.pop()
                if unknown[op]:
                    maybe ^= 1 << op
                else:
                    done ^= 1 << op
                self._unlift(op)
                if not greedy:
                    break
            if unknown[op]:
                node = first_return
                next_class = klass[op] + 1
            else:
                node = nxt[self.call_node[op]]
                first_return = 0
        text = f"key {_show_key(self.key)}: linearizable ({len(self.ops)} operations)"
        return KeyResult(self.key, True, text, steps, len(self.ops))

    def _lift(self, op: int) -> None:
        """Place the operation: take its call and return out of the list."""
        c = self.klass[op]
        if c >= 0:
            self.placed_in_class[c] += 1
            return
        nxt, prv = self.next, self.prev
        for node in (self.call_node[op], self.return_node[op]):
            p, q = prv[node], nxt[node]
            nxt[p] = q
            if q >= 0:
                prv[q] = p
        self.returns_left -= 1

    def _unlift(self, op: int) -> None:
        """Undo `_lift`, in reverse order: the return, then the call."""
        c = self.klass[op]
        if c >= 0:
            self.placed_in_class[c] -= 1
            return
        nxt, prv = self.next, self.prev
        for node in (self.return_node[op], self.call_node[op]):
            nxt[prv[node]] = node
            if nxt[node] >= 0:
                prv[nxt[node]] = node
        self.returns_left += 1

    # --- explanations ---

    def _describe(self, op: int) -> str:
        o = self.ops[op]
        arg = ""
        if o.kind is Kind.SET or (o.kind is Kind.INCR and o.value is not None):
            arg = f" {_show(o.value)}"
        output = "?" if o.output is UNKNOWN else _show(o.output)
        returned = (
            "never returned" if o.outcome_unknown else f"returned {_show_time(o.return_time)}"
        )
        return (
            f"#{self.index[op]} client {o.client} {o.kind.value}{arg} -> {output}"
            f"  (called {_show_time(o.call_time)}, {returned})"
        )

    def _explain_failure(self) -> str:
        assert self.best is not None
        order, state, blocking = self.best
        lines = [
            f"key {_show_key(self.key)} is not linearizable ({len(self.ops)} operations).",
            f"At best {len(order)} operations could be linearized; "
            f"the register then holds {_show(state)}.",
        ]
        if order:
            tail = order[-8:]
            more = f" (last {len(tail)} of {len(order)})" if len(tail) < len(order) else ""
            lines.append(f"That prefix, in linearization order{more}:")
            lines += [f"  {self._describe(op)}" for op in tail]
        o = self.ops[blocking]
        lines.append(
            f"Then this operation must take effect by {_show_time(o.return_time)} "
            f"but cannot: it {self._why(state, blocking)}:"
        )
        lines.append(f"  {self._describe(blocking)}")
        others = [op for op in self._candidates(order) if op != blocking and self.klass[op] < 0]
        if others:
            lines.append("Other operations that could go next (none leads to a full order):")
            for op in others[:8]:
                lines.append(f"  {self._describe(op)}: {self._why(state, op)}")
        return "\n".join(lines)

    def _why(self, state: _State, op: int) -> str:
        if _step(state, self.code[op], self.arg[op], self.out[op]) is _REJECT:
            return _would(state, self.code[op], self.arg[op])
        return "fits here, but no order of the remaining operations works after it"

    def _candidates(self, order: list[int]) -> list[int]:
        """Operations whose call precedes the first return still to place, after `order`."""
        placed = set(order)
        first_return = min(
            (
                self.ops[op].return_time
                for op in range(len(self.ops))
                if op not in placed and not self.ops[op].outcome_unknown
            ),
            default=math.inf,
        )
        return [
            op
            for op in range(len(self.ops))
            if op not in placed and self.ops[op].call_time <= first_return
        ]

    def _gave_up(self, steps: int, stack: list[tuple[int, _State, bool, int]]) -> KeyResult:
        best = 0 if self.best is None else len(self.best[0])
        best = max(best, len(stack))
        text = (
            f"key {_show_key(self.key)}: gave up after {steps} steps "
            f"({len(self.ops)} operations, at best {best} linearized); "
            "it may or may not be linearizable"
        )
        return KeyResult(self.key, None, text, steps, len(self.ops))


def _enter(
    seen: dict[tuple[int, _State, int], list[int]], done: int, maybe: int, state: _State, run: int
) -> bool:
    """Record a configuration; False if it, or one that dominates it, was entered before."""
    key = (done, state, run)
    entries = seen.get(key)
    if entries is None:
        seen[key] = [maybe]
        return True
    if any(other & maybe == other for other in entries):
        return False
    entries[:] = [other for other in entries if other & maybe != maybe]
    entries.append(maybe)
    return True


def _matters(op: Operation) -> bool:
    """Reads with an unknown output constrain nothing; leave them out."""
    return not (op.kind is Kind.GET and op.output is UNKNOWN)


def _drop_unobserved_unknown_sets(ops: list[tuple[int, Operation]]) -> list[tuple[int, Operation]]:
    """Leave out unknown SETs whose value nothing can have observed.

    If such a SET is placed in a valid order, removing it leaves a valid order: the next write
    after it overwrites the register, and nothing in between read it. That holds as long as
    no GET returned its value, no INCR can have built on it (an integer value, on a key with
    INCRs) and no DEL reported removing something.
    """
    got = {_canon(op.output) for _, op in ops if op.kind is Kind.GET and op.output is not UNKNOWN}
    has_incr = any(op.kind is Kind.INCR for _, op in ops)
    del_removed = any(
        op.kind is Kind.DEL and op.output is not UNKNOWN and _canon(op.output) != 0 for _, op in ops
    )
    if del_removed:
        return ops
    kept = []
    for i, op in ops:
        if op.kind is Kind.SET and op.outcome_unknown:
            value = _canon(op.value)
            if value not in got and not (has_incr and isinstance(value, int)):
                continue
        kept.append((i, op))
    return kept


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _show_key(key: Key) -> str:
    return _show(key)


def _show_time(t: float) -> str:
    if isinstance(t, int) or (isinstance(t, float) and t.is_integer()):
        return str(int(t))
    if math.isinf(t):
        return "never"
    return f"{t:.6f}".rstrip("0")
