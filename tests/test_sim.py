"""The deterministic simulator: a bounded seed sweep, and proof that its checks can fail."""

from __future__ import annotations

import os

import pytest

from respkv.raft.node import RaftNode
from respkv.sim.__main__ import main, run_one
from respkv.sim.checks import Checker, SimViolation
from respkv.sim.cluster import Cluster, SimOptions, _CommitsOldTerms
from respkv.sim.scenario import Scenario

SWEEP_SEEDS = int(os.environ.get("RESPKV_SIM_SEEDS", "300"))


@pytest.mark.sim
def test_seed_sweep_finds_no_violation() -> None:
    failures = []
    for seed in range(SWEEP_SEEDS):
        _, violation = run_one(SimOptions.randomized(seed))
        if violation:
            failures.append(f"seed {seed}: {violation}")
    assert not failures, "\n".join(failures[:5])


@pytest.mark.sim
@pytest.mark.parametrize("voters", [1, 3, 5])
def test_clusters_of_each_size_make_progress(voters: int) -> None:
    cluster = Cluster(SimOptions(seed=7, voters=voters))
    cluster.run()
    acknowledged = [op for op in cluster.history.operations() if not op.outcome_unknown]
    assert len(acknowledged) > 50, "the workload barely ran"
    assert len(cluster.checker.committed) > 30


@pytest.mark.sim
def test_a_run_is_reproducible_from_its_seed() -> None:
    a, b = Cluster(SimOptions.randomized(11)), Cluster(SimOptions.randomized(11))
    a.run()
    b.run()
    assert a.events == b.events
    assert a.history.operations() == b.history.operations()


@pytest.mark.sim
def test_snapshots_and_membership_changes_happen_in_the_sweep() -> None:
    installs = joins = 0
    for seed in range(12):
        cluster = Cluster(SimOptions.randomized(seed))
        cluster.run()
        installs += sum(1 for n in cluster.nodes.values() if n.disk.snapshot.index > 0)
        joins += len(cluster.nodes) - cluster.options.voters
    assert installs > 0 and joins > 0


def _first_violation(bug: str, seeds: int = 60) -> str | None:
    for seed in range(seeds):
        _, violation = run_one(SimOptions.randomized(seed, bug=bug))
        if violation:
            return violation
    return None


@pytest.mark.sim
def test_checker_catches_a_forgotten_vote() -> None:
    violation = _first_violation("forget-vote")
    assert violation is not None and "vote" in violation
    assert "python -m respkv.sim --seed" in violation  # the reproduction command


@pytest.mark.sim
def test_checker_catches_reads_without_read_index() -> None:
    violation = _first_violation("stale-read")
    assert violation is not None and "linearizable" in violation


FIGURE_8 = """nodes 5
campaign 1
stabilize
partition 1 2 | 3 4 5
propose 1 x=1
stabilize
crash 1
campaign 5
deliver
deliver
crash 5
heal
restart 1
campaign 1
stabilize
campaign 1
deliver
deliver
deliver
deliver
deliver
deliver 1
partition 1 | 2 3 4 5
crash 1
restart 5
campaign 5
stabilize
campaign 5
stabilize"""


def _figure_8(raft_class: type[RaftNode]) -> Scenario:
    """The Raft paper's figure 8: an entry of an earlier term reaches a majority under a later
    leader, which then crashes; a node whose log ends in a term in between is elected."""
    scenario = Scenario(
        raft_class, max_message_bytes=1, checker=Checker(), pre_vote=False, check_quorum=False
    )
    for line in FIGURE_8.splitlines():
        scenario.run(line)
    return scenario


def test_figure_8_is_safe_with_the_real_commit_rule() -> None:
    scenario = _figure_8(RaftNode)
    five = scenario.nodes[5].raft  # type: ignore[index]
    assert five.role.value == "leader" and five.term == 5
    # Node 5 overwrote the old-term entry at index 7; nobody had applied it.
    assert five.log.term(7) == 3  # type: ignore[arg-type]


def test_checker_catches_commit_by_counting_an_old_term() -> None:
    with pytest.raises(SimViolation, match="lacks committed entry 7"):
        _figure_8(_CommitsOldTerms)


def test_cli_prints_speed_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "2"]) == 0
    assert "events/s" in capsys.readouterr().out
    seed = next(s for s in range(60) if run_one(SimOptions.randomized(s, bug="forget-vote"))[1])
    assert main(["--seed", str(seed), "--bug", "forget-vote"]) == 1
    out = capsys.readouterr().out
    assert f"reproduce: python -m respkv.sim --seed {seed} --bug forget-vote" in out
