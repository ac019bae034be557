"""Membership administration: joins, promotion, removal, leadership transfer.

Every change runs on the leader (a follower forwards the request there) as one single-step
Raft membership change. Learners that have caught up are promoted automatically, but the
leader never stops at an even number of voters while another learner is about to be ready
(the seed docs' "do NOT stop at 2 nodes").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from respkv.raft.types import (
    ConfChange,
    ConfChangeType,
    NodeId,
    ProposalDropped,
    RaftError,
    Role,
)
from respkv.resp.replies import OK, ErrorReply

from .errors import error_reply
from .runtime import ClusterDown, member_context, parse_member_context

if TYPE_CHECKING:
    from .cluster import ClusterLink

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
PROMOTE_LAG_ENTRIES = 64  # a learner within this many entries of the leader has caught up
PROMOTE_CHECK_SECONDS = 0.5
MAX_WAIT_FOR_PAIR_SECONDS = 30.0  # then promote alone rather than never


def _int(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


class Membership:
    def __init__(self, cluster: ClusterLink) -> None:
        self.cluster = cluster
        self.runtime = cluster.runtime
        self._timer: asyncio.TimerHandle | None = None
        self._pair_wait_since: float | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(
            PROMOTE_CHECK_SECONDS, self._promotion_tick
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    # --- requests (run on the leader) --------------------------------------------------------

    def handle(self, argv: list[bytes], done: Done) -> None:
        """An admin request that must run on the leader: ``argv`` without the CLUSTER word."""
        sub = argv[0].lower()
        try:
            if sub == b"join-request" and len(argv) == 5:
                self._join_request(argv, done)
            elif sub == b"remove" and len(argv) == 2:
                self._remove(argv, done)
            elif sub == b"promote" and len(argv) == 2:
                self._change(ConfChangeType.PROMOTE, argv[1], done)
            elif sub == b"failover" and len(argv) <= 2:
                self._failover(argv, done)
            else:
                done(ErrorReply("ERR syntax error"))
        except ClusterDown as e:
            done(error_reply(e))

    def _change(
        self, kind: ConfChangeType, raw_id: bytes, done: Done, context: bytes = b""
    ) -> None:
        node_id = _int(raw_id)
        if node_id is None or node_id < 1:
            done(ErrorReply("ERR node id must be an integer >= 1"))
            return
        member = self.runtime.conf_state.member(NodeId(node_id))
        if kind is ConfChangeType.PROMOTE and member is not None:
            peer, client, _ = parse_member_context(member.context)
            context = member_context(peer, client, "active")  # a voter is active
        change = ConfChange(kind, NodeId(node_id), context)

        def applied(result: Any) -> None:
            done(error_reply(result) if isinstance(result, BaseException) else OK)

        try:
            self.runtime.propose_conf_change(change, applied)
        except ProposalDropped as e:
            done(ErrorReply(f"TRYAGAIN {e}"))
        except RaftError as e:
            done(ErrorReply(f"ERR {e}"))

    def _join_request(self, argv: list[bytes], done: Done) -> None:
        _, raw_id, peer, client, status = argv
        node_id = _int(raw_id)
        if node_id is None or node_id < 1:
            done(ErrorReply("ERR node id must be an integer >= 1"))
            return
        cluster = self.cluster
        welcome = [cluster.cluster_id.encode(), self.runtime.id]
        member = self.runtime.conf_state.member(NodeId(node_id))
        if member is not None:
            known_peer, _, _ = parse_member_context(member.context)
            if known_peer == peer.decode():
                done([*welcome, b"already a member"])
            else:
                done(
                    ErrorReply(
                        f"ERR node id {node_id} is already used by the member at {known_peer}"
                    )
                )
            return
        if node_id in self.runtime.removed_ids:
            done(
                ErrorReply(
                    f"ERR node id {node_id} was removed from this cluster; ids are never reused"
                )
            )
            return
        context = member_context(peer.decode(), client.decode(), status.decode())

        def added(result: Any) -> None:
            if result is OK:
                log.info("node %d at %s joins as a learner", node_id, peer.decode())
                done([*welcome, b"added as a learner"])
            else:
                done(result)

        self._change(ConfChangeType.ADD_LEARNER, raw_id, added, context)

    def _remove(self, argv: list[bytes], done: Done) -> None:
        node_id = _int(argv[1])
        runtime = self.runtime
        if node_id == runtime.id and len(runtime.conf_state.voters) > 1:
            # The leader hands over first; the new leader then removes it.
            target = self._best_voter(exclude=runtime.id)
            if target is None:
                done(ErrorReply("ERR no other voter can take over"))
                return
            log.info("removing myself: handing leadership to node %d first", target)

            def transferred(result: Any) -> None:
                if isinstance(result, ErrorReply):
                    done(result)
                else:
                    self.cluster.run_admin_on_leader([b"remove", argv[1]], done)

            self._transfer(target, transferred)
            return
        self._change(ConfChangeType.REMOVE, argv[1], done)

    def _failover(self, argv: list[bytes], done: Done) -> None:
        runtime = self.runtime
        if len(argv) == 2:
            target = _int(argv[1])
            if target is None:
                done(ErrorReply("ERR node id must be an integer >= 1"))
                return
        else:
            target = self._best_voter(exclude=runtime.id)
            if target is None:
                done(ErrorReply("ERR no other voter can take over"))
                return
        if target == runtime.id:
            done(OK)
            return
        self._transfer(NodeId(target), done)

    def _transfer(self, target: int, done: Done) -> None:
        runtime = self.runtime
        try:
            runtime.transfer_leader(NodeId(target))
        except RaftError as e:
            done(ErrorReply(f"ERR {e}"))
            return
        deadline = time.monotonic() + 2 * runtime.request_timeout

        def check() -> None:
            if runtime.leader == target:
                log.info("leadership transferred to node %d", target)
                done(OK)
            elif time.monotonic() > deadline:
                done(ErrorReply(f"ERR leadership transfer to node {target} did not complete"))
            else:
                asyncio.get_running_loop().call_later(0.02, check)

        check()

    def _best_voter(self, exclude: int) -> NodeId | None:
        status = self.runtime.raft.status()
        candidates = [
            m for m in status.members if not m.learner and m.id != exclude and m.recent_active
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda m: m.match).id

    # --- automatic promotion -----------------------------------------------------------------

    def _promotion_tick(self) -> None:
        try:
            self._maybe_promote()
        finally:
            self._timer = asyncio.get_running_loop().call_later(
                PROMOTE_CHECK_SECONDS, self._promotion_tick
            )

    def _maybe_promote(self) -> None:
        runtime = self.runtime
        if runtime.role is not Role.LEADER or not self.cluster.config.cluster.auto_promote:
            return
        status = runtime.raft.status()
        if status.commit < status.last_index - PROMOTE_LAG_ENTRIES:
            return
        progress = {m.id: m for m in status.members}
        promotable = [
            m
            for m in status.conf_state.members
            if m.learner and parse_member_context(m.context)[2] == "promotable" and m.id in progress
        ]
        ready = [
            m.id
            for m in promotable
            if progress[m.id].recent_active
            and progress[m.id].state == "replicate"  # its log is known to match ours
            and progress[m.id].match >= max(1, status.last_index - PROMOTE_LAG_ENTRIES)
        ]
        if not ready:
            self._pair_wait_since = None
            return
        behind = [m.id for m in promotable if m.id not in ready and progress[m.id].recent_active]
        voters = len(status.conf_state.voters)
        if voters % 2 == 1 and len(ready) == 1 and behind:
            # Promoting one now would leave an even number of voters while another learner is
            # close behind: wait for it (for a while), then promote them one after the other.
            now = time.monotonic()
            self._pair_wait_since = self._pair_wait_since or now
            if now - self._pair_wait_since < MAX_WAIT_FOR_PAIR_SECONDS:
                return
        self._pair_wait_since = None
        target = ready[0]

        def promoted(result: Any) -> None:
            if isinstance(result, ErrorReply) and not result.message.startswith("TRYAGAIN"):
                log.warning("promoting node %d failed: %s", target, result.message)

        log.info("node %d has caught up: promoting it to voter", target)
        self._change(ConfChangeType.PROMOTE, str(target).encode(), promoted)
