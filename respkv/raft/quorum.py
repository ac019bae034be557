"""Majority arithmetic as pure functions over a set of voters."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .types import Index, NodeId


def majority(voters: Collection[NodeId]) -> int:
    return len(voters) // 2 + 1


def committed_index(voters: Collection[NodeId], match: Mapping[NodeId, Index]) -> Index:
    """The largest index that a majority of voters has durably matched (0 with no voters)."""
    return Index(quorum_value(voters, match))


def quorum_value(voters: Collection[NodeId], values: Mapping[NodeId, int]) -> int:
    """The largest value that a majority of voters has reached (missing voters count as 0)."""
    if not voters:
        return 0
    reached = sorted((values.get(v, 0) for v in voters), reverse=True)
    return reached[majority(voters) - 1]


def has_quorum(voters: Collection[NodeId], ayes: Collection[NodeId]) -> bool:
    return len(set(voters).intersection(ayes)) >= majority(voters)


def vote_result(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> bool | None:
    """True: won; False: lost (a majority rejected); None: still pending."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(voters)
    if granted >= need:
        return True
    if rejected > len(voters) - need:
        return False
    return None
