"""Raft scenario scripts: commands followed by the expected trace (see respkv/sim/scenario.py).

After an intended behaviour change: pytest tests/test_raft_scenarios.py --rewrite-scenarios,
then read the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from respkv.sim.scenario import run_script

SCENARIOS = sorted((Path(__file__).parent / "raft_scenarios").glob("*.txt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, request: pytest.FixtureRequest) -> None:
    expected = path.read_text()
    actual = run_script(expected)
    if request.config.getoption("--rewrite-scenarios"):
        path.write_text(actual)
        return
    assert actual == expected, f"trace changed; rerun with --rewrite-scenarios to accept:\n{actual}"


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 5
