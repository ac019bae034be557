"""Single-step membership changes (Raft thesis section 4.1): one node at a time."""

from __future__ import annotations

from .types import ConfChange, ConfChangeType, ConfState, Entry, EntryType, Index, Member, Term


class InvalidConfChange(ValueError):
    """The change does not make sense against the current membership."""


def validate(conf: ConfState, change: ConfChange) -> None:
    member = conf.member(change.node_id)
    match change.type:
        case ConfChangeType.ADD_LEARNER | ConfChangeType.ADD_VOTER:
            if member is not None:
                raise InvalidConfChange(f"node {change.node_id} is already a member")
        case ConfChangeType.PROMOTE:
            if member is None:
                raise InvalidConfChange(f"node {change.node_id} is not a member")
            if not member.learner:
                raise InvalidConfChange(f"node {change.node_id} is already a voter")
        case ConfChangeType.REMOVE | ConfChangeType.UPDATE:
            if member is None:
                raise InvalidConfChange(f"node {change.node_id} is not a member")
            if change.type is ConfChangeType.REMOVE and conf.voters == {change.node_id}:
                raise InvalidConfChange("cannot remove the last voter")
    if change.node_id <= 0:
        raise InvalidConfChange("node ids start at 1")


def apply_conf_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The membership after ``change``. Invalid changes leave it as it is, so that every node
    reaches the same membership from the same log even if a bad entry slipped in."""
    try:
        validate(conf, change)
    except InvalidConfChange:
        return conf
    members = {m.id: m for m in conf.members}
    old = members.get(change.node_id)
    match change.type:
        case ConfChangeType.ADD_LEARNER | ConfChangeType.ADD_VOTER:
            learner = change.type is ConfChangeType.ADD_LEARNER
            members[change.node_id] = Member(change.node_id, learner, change.context)
        case ConfChangeType.PROMOTE:
            assert old is not None
            members[change.node_id] = Member(change.node_id, False, change.context or old.context)
        case ConfChangeType.REMOVE:
            del members[change.node_id]
        case ConfChangeType.UPDATE:
            assert old is not None
            members[change.node_id] = Member(change.node_id, old.learner, change.context)
    return ConfState(tuple(members[k] for k in sorted(members)))


def bootstrap_entries(members: list[Member]) -> list[Entry]:
    """The identical first entries every node of a static cluster starts with (term 1,
    committed): one ADD_VOTER per initial voter. A node joining later starts with an empty log
    and learns the membership from the leader, so no two nodes hold competing initial configs.
    """
    return [
        Entry(
            Term(1),
            Index(position),
            EntryType.CONF_CHANGE,
            ConfChange(
                ConfChangeType.ADD_LEARNER if m.learner else ConfChangeType.ADD_VOTER,
                m.id,
                m.context,
            ).encode(),
        )
        for position, m in enumerate(sorted(members, key=lambda m: m.id), start=1)
    ]
