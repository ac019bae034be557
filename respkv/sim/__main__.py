"""python -m respkv.sim: run seeded cluster simulations and report violations.

python -m respkv.sim --seeds 1000          # seeds 0..999, fault rates varying per seed
python -m respkv.sim --seed 42 --voters 5  # one run, exactly reproducible
"""

from __future__ import annotations

import argparse
import sys
import time

from .checks import SimViolation
from .cluster import Cluster, SimOptions


def run_one(options: SimOptions) -> tuple[int, str | None]:
    """(events simulated, violation message or None)."""
    cluster = Cluster(options)
    try:
        cluster.run()
    except AssertionError as e:  # SimViolation, or an invariant the simulated host asserts
        kind = "" if isinstance(e, SimViolation) else f"{type(e).__name__}: "
        return cluster.events, f"{kind}{e}\n  reproduce: {options.command()}"
    return cluster.events, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m respkv.sim", description=__doc__)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", type=int, default=100, help="run seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--voters", type=int, choices=[1, 3, 5])
    parser.add_argument("--fault-ticks", type=int)
    parser.add_argument("--clients", type=int)
    parser.add_argument("--read-mode", choices=["safe", "lease"])
    parser.add_argument(
        "--bug",
        choices=["commit-old-term", "forget-vote", "stale-read"],
        help="switch on a deliberately wrong rule (to see the checks fail)",
    )
    parser.add_argument("--stop-on-failure", action="store_true")
    args = parser.parse_args(argv)
    overrides = {
        name: getattr(args, name)
        for name in ("voters", "fault_ticks", "clients", "read_mode", "bug")
        if getattr(args, name) is not None
    }
    seeds = (
        [args.seed]
        if args.seed is not None
        else range(args.first_seed, args.first_seed + args.seeds)
    )
    failures = 0
    total_events = 0
    started = time.perf_counter()
    for seed in seeds:
        options = SimOptions.randomized(seed, **overrides)
        events, violation = run_one(options)
        total_events += events
        if violation:
            failures += 1
            print(f"seed {seed}: VIOLATION {violation}", flush=True)
            if args.stop_on_failure:
                break
    elapsed = time.perf_counter() - started
    print(
        f"{len(seeds)} seeds, {failures} with violations, {total_events} events in "
        f"{elapsed:.1f}s ({total_events / max(elapsed, 1e-9):,.0f} events/s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
