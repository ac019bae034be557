"""Majority arithmetic as pure functions over a set of voters."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .types import Index, NodeId


def majority(voters: Collection[NodeId]) -> int:
    return len(voters) // 2 + 1


def committed_index(voters: Collection[NodeId], match: Mapping[NodeId, Index]) -> Index:
    """The largest index that a majority of voters has durably matched (0 with no voters)."""
    if not voters:
        return Index(0)
    acked = sorted((match.get(v, Index(0)) for v in voters), reverse=True)
    return acked[majority(voters) - 1]


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
