"""Unit tests of the Raft core's small pieces and its public API contract."""

from __future__ import annotations

import random

import pytest

from respkv.raft.confchange import InvalidConfChange, apply_conf_change, bootstrap_entries, validate
from respkv.raft.log import LogError, RaftLog
from respkv.raft.node import (
    PersistedState,
    RaftConfig,
    RaftNode,
    ReadMode,
    bootstrap_state,
    joiner_state,
)
from respkv.raft.progress import Inflights, Progress, ProgressState
from respkv.raft.quorum import committed_index, has_quorum, majority, vote_result
from respkv.raft.readonly import ReadOnly, ReadRequest
from respkv.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Index,
    Member,
    NodeId,
    NotLeader,
    ProposalDropped,
    RaftError,
    Role,
    SnapshotMeta,
    Term,
)

N = NodeId
I = Index  # noqa: E741
T = Term


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(T(t), I(start + i), EntryType.NORMAL, b"x") for i, t in enumerate(terms)]


# --- quorum ------------------------------------------------------------------------------------


def test_majority_and_committed_index() -> None:
    voters = {N(1), N(2), N(3)}
    assert majority(voters) == 2 and majority({N(1), N(2), N(3), N(4)}) == 3
    assert committed_index(voters, {N(1): I(5), N(2): I(3), N(3): I(1)}) == 3
    assert committed_index(voters, {N(1): I(5)}) == 0
    assert committed_index(set(), {}) == 0
    assert has_quorum(voters, {N(1), N(3)}) and not has_quorum(voters, {N(1), N(4)})


def test_vote_result() -> None:
    voters = {N(1), N(2), N(3)}
    assert vote_result(voters, {N(1): True}) is None
    assert vote_result(voters, {N(1): True, N(2): True}) is True
    assert vote_result(voters, {N(1): True, N(2): False, N(3): False}) is False
    assert vote_result(voters, {N(1): True, N(9): True}) is None  # non-voters do not count


# --- log ---------------------------------------------------------------------------------------


def test_log_append_conflict_truncates_only_uncommitted() -> None:
    log = RaftLog(I(0), T(0), entries(1, 1, 2), I(0))
    assert log.last_index == 3 and log.last_term == 2
    assert log.maybe_append(I(1), T(1), tuple(entries(3, 3, start=2))) == 3
    assert [e.term for e in log.entries] == [1, 3, 3]
    assert log.unstable_from == 2
    assert log.maybe_append(I(3), T(9), ()) is None  # prev does not match
    log.commit_to(I(3))
    with pytest.raises(LogError):
        log.maybe_append(I(1), T(1), tuple(entries(4, start=2)))


def test_log_matching_entries_are_skipped_not_rewritten() -> None:
    log = RaftLog(I(0), T(0), entries(1, 1, 1), I(0))
    log.unstable_from = I(4)
    assert log.maybe_append(I(0), T(0), tuple(entries(1, 1))) == 2
    assert log.last_index == 3 and log.unstable_from == 4  # nothing new to persist


def test_find_conflict_by_term_and_up_to_date() -> None:
    log = RaftLog(I(0), T(0), entries(1, 1, 2, 2, 4), I(0))
    assert log.find_conflict_by_term(I(5), T(3)) == (4, 2)
    assert log.find_conflict_by_term(I(9), T(1)) == (2, 1)
    assert log.find_conflict_by_term(I(5), T(0)) == (0, 0)
    assert log.is_up_to_date(I(1), T(5)) and log.is_up_to_date(I(5), T(4))
    assert not log.is_up_to_date(I(4), T(4)) and not log.is_up_to_date(I(9), T(3))


def test_log_compact_and_restore() -> None:
    log = RaftLog(I(0), T(0), entries(1, 1, 2, 2), I(0))
    log.commit_to(I(3))
    log.applied = I(3)
    with pytest.raises(LogError):
        log.compact(I(4))  # not applied yet
    log.compact(I(2))
    assert (log.first_index, log.term(I(2)), log.term(I(1))) == (3, 1, None)
    assert log.slice(I(3), I(5), 10**6) == entries(2, 2, start=3)
    with pytest.raises(LogError):
        log.slice(I(2), I(4), 10)
    log.restore(I(10), T(5))
    assert (log.last_index, log.committed, log.applied, log.entries) == (10, 10, 10, [])


def test_slice_respects_byte_cap_but_returns_one() -> None:
    log = RaftLog(I(0), T(0), entries(1, 1, 1), I(0))
    assert len(log.slice(I(1), I(4), 1)) == 1
    assert len(log.slice(I(1), I(4), 2 * entries(1)[0].size_bytes())) == 2


# --- progress ----------------------------------------------------------------------------------


def test_inflights_bound_by_count_and_bytes() -> None:
    window = Inflights(max_count=2, max_bytes=100)
    window.add(I(5), 10)
    assert not window.full()
    window.add(I(7), 10)
    assert window.full()
    window.free_le(I(5))
    assert not window.full() and len(window) == 1
    window.add(I(9), 200)
    assert window.full()
    window.free_first()
    window.free_first()
    assert len(window) == 0 and window.bytes == 0


def test_progress_probe_replicate_and_stale_rejections() -> None:
    pr = Progress(match=I(0), next=I(10), inflights=Inflights(4, 10**6))
    pr.sent_entries(I(10), 30)
    assert pr.is_paused()  # probe: one in flight
    assert not pr.maybe_decrease_to(I(3), I(2))  # not the probe we sent: stale
    assert pr.maybe_decrease_to(I(9), I(4)) and pr.next == 5 and not pr.is_paused()
    assert pr.maybe_update(I(6)) and pr.match == 6 and pr.next == 7
    pr.become_replicate()
    for last in (8, 9, 10, 11):
        pr.sent_entries(I(last), 10)
    assert pr.is_paused() and pr.next == 12
    assert not pr.maybe_decrease_to(I(5), I(0))  # below match: stale
    assert pr.maybe_decrease_to(I(9), I(0)) and pr.next == 7
    assert pr.state is ProgressState.REPLICATE


# --- membership --------------------------------------------------------------------------------


def test_conf_changes_validate_and_apply() -> None:
    conf = ConfState((Member(N(1), False),))
    conf = apply_conf_change(conf, ConfChange(ConfChangeType.ADD_LEARNER, N(2), b"a"))
    assert conf.learners == {2} and conf.voters == {1}
    conf = apply_conf_change(conf, ConfChange(ConfChangeType.PROMOTE, N(2)))
    assert conf.voters == {1, 2} and conf.member(N(2)) == Member(N(2), False, b"a")
    with pytest.raises(InvalidConfChange):
        validate(conf, ConfChange(ConfChangeType.PROMOTE, N(2)))
    with pytest.raises(InvalidConfChange):
        validate(conf, ConfChange(ConfChangeType.ADD_LEARNER, N(1)))
    with pytest.raises(InvalidConfChange):
        validate(ConfState((Member(N(1), False),)), ConfChange(ConfChangeType.REMOVE, N(1)))
    # An invalid entry that reached the log changes nothing, on every node alike.
    assert apply_conf_change(conf, ConfChange(ConfChangeType.REMOVE, N(9))) == conf


def test_conf_change_codec_round_trip() -> None:
    change = ConfChange(ConfChangeType.UPDATE, N(2**40), b"\x00ctx")
    assert ConfChange.decode(change.encode()) == change


def test_bootstrap_is_identical_for_every_node() -> None:
    members = [Member(N(3), False), Member(N(1), False), Member(N(2), False)]
    assert bootstrap_entries(members) == bootstrap_entries(list(reversed(members)))
    state = bootstrap_state(members)
    assert state.hard_state.term == 1 and state.hard_state.commit == 3


# --- readonly ----------------------------------------------------------------------------------


def test_read_rounds_batch_and_confirm_earlier_rounds() -> None:
    ro = ReadOnly()
    assert ro.start_round(I(5), N(1)) is None
    ro.queue(ReadRequest(b"a", N(1)))
    ro.queue(ReadRequest(b"b", N(2)))
    first = ro.start_round(I(5), N(1))
    ro.queue(ReadRequest(b"c", N(1)))
    second = ro.start_round(I(6), N(1))
    assert first is not None and second is not None and len(first.requests) == 2
    voters = frozenset({N(1), N(2), N(3)})
    assert ro.ack(b"nope", N(2), voters) == []
    confirmed = ro.ack(second.context, N(3), voters)
    assert [r.index for r in confirmed] == [5, 6] and len(ro) == 0


# --- node API ----------------------------------------------------------------------------------


class _NoSnapshots:
    def snapshot_meta(self) -> SnapshotMeta | None:
        return None

    def read_chunk(self, meta: SnapshotMeta, offset: int, max_bytes: int) -> None:
        return None


def single_node(**config: object) -> RaftNode:
    state = bootstrap_state([Member(N(1), False)])
    return RaftNode(RaftConfig(N(1), **config), state, random.Random(1), _NoSnapshots())  # type: ignore[arg-type]


def drain(node: RaftNode) -> list[Entry]:
    applied: list[Entry] = []
    while node.has_ready():
        rd = node.ready()
        applied += rd.committed_entries
        node.advance(rd)
    return applied


def test_single_voter_elects_itself_and_commits_after_persisting() -> None:
    node = single_node()
    drain(node)
    node.campaign()
    drain(node)
    assert node.role is Role.LEADER and node.term == 2
    index = node.propose(b"cmd")
    rd = node.ready()
    assert [e.index for e in rd.entries] == [index]
    assert rd.committed_entries == []  # not durable yet: nothing to apply
    node.advance(rd)
    assert [e.data for e in drain(node)] == [b"cmd"]


def test_a_restart_takes_applied_entries_as_committed() -> None:
    """The runtime applies entries made durable by one fsync while the next one runs, so a
    crash can leave the stored applied index above the stored commit index."""
    node = single_node()
    drain(node)
    node.campaign()
    drain(node)
    for data in (b"a", b"b", b"c"):
        node.propose(data)
    drain(node)
    hard_state = node._hard_state()
    stale = type(hard_state)(hard_state.term, hard_state.vote, I(1))  # commit stored long ago
    state = PersistedState(stale, SnapshotMeta(I(0), T(0), node.conf), node.log.entries, I(4))
    restarted = RaftNode(RaftConfig(N(1)), state, random.Random(1), _NoSnapshots())  # type: ignore[arg-type]
    assert (restarted.log.committed, restarted.log.applied) == (4, 4)
    assert drain(restarted) == []  # nothing is applied twice


def test_reads_wait_for_the_leaders_first_commit() -> None:
    node = single_node()
    drain(node)
    node.campaign()
    node.read_index(b"r1")  # the no-op is not committed yet
    states = []
    while node.has_ready():
        rd = node.ready()
        states += rd.read_states
        node.advance(rd)
    assert [(s.context, s.index, s.rejected) for s in states] == [(b"r1", 2, False)]


def test_errors_say_what_is_wrong() -> None:
    node = single_node()
    drain(node)
    with pytest.raises(NotLeader):
        node.propose(b"x")
    node.read_index(b"r")
    assert node.ready().read_states[0].rejected  # no leader known
    node.campaign()
    drain(node)
    with pytest.raises(RaftError, match="not a voter"):
        node.transfer_leader(N(7))
    with pytest.raises(RaftError, match="already a member"):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, N(1)))
    node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, N(2)))
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, N(3)))


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        RaftConfig(N(0))
    with pytest.raises(ValueError):
        RaftConfig(N(1), heartbeat_ticks=10, election_timeout_ticks=10)
    with pytest.raises(ValueError, match="check_quorum"):
        RaftConfig(N(1), read_mode=ReadMode.LEASE, check_quorum=False)


def test_joiner_never_campaigns() -> None:
    node = RaftNode(RaftConfig(N(5)), joiner_state(), random.Random(1), _NoSnapshots())
    for _ in range(100):
        node.tick()
    assert node.role is Role.FOLLOWER and not node.promotable


def test_restart_reloads_term_vote_and_log() -> None:
    state = PersistedState(
        bootstrap_state([Member(N(1), False)]).hard_state.__class__(T(7), N(1), I(1)),
        SnapshotMeta(I(0), T(0), ConfState(())),
        bootstrap_entries([Member(N(1), False)]) + entries(7, start=2),
        I(0),
    )
    node = RaftNode(RaftConfig(N(1)), state, random.Random(1), _NoSnapshots())
    assert (node.term, node.vote, node.log.last_index, node.conf.voters) == (7, 1, 2, {1})


def test_compaction_floor_holds_for_live_followers_catching_up() -> None:
    node = single_node()
    drain(node)
    assert node.compaction_floor() is None  # not the leader
    node.campaign()
    drain(node)
    assert node.compaction_floor() is None  # no follower: nothing to hold

    def follower(match: int) -> Progress:
        return Progress(I(match), I(match + 1), Inflights(8, 1 << 20))

    node.progress[N(2)] = follower(5)
    snapshotting = follower(0)
    snapshotting.become_snapshot(SnapshotMeta(I(50), T(2), ConfState((Member(N(1), False),))))
    node.progress[N(3)] = snapshotting
    assert node.compaction_floor() == 5  # node 2 still needs the entries after 5
    node.progress[N(2)].last_contact_ticks = 10 * node.config.election_timeout_ticks
    # Node 2 looks dead and no longer pins the log; node 3 installs a snapshot at 50 and
    # will need the entries after it.
    assert node.compaction_floor() == 50
    node.progress[N(3)].last_contact_ticks = 10 * node.config.election_timeout_ticks
    assert node.compaction_floor() == 50  # silent while it installs: still held
    node.progress[N(3)].become_probe()  # the transfer was given up
    assert node.compaction_floor() is None
