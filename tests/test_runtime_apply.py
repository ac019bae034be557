"""The runtime's Ready loop on one node: entries already durable are applied while the next
Ready is fsynced, and a snapshot export taken meanwhile describes the keyspace it captures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from respkv.kv.statemachine import StateMachine
from respkv.raft.node import RaftConfig
from respkv.raft.types import Member, NodeId
from respkv.server.runtime import NodeRuntime
from respkv.storage import Store


def test_durable_entries_are_applied_during_the_next_fsync(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db", 1)
    state_machine = StateMachine(store.keyspace)
    runtime = NodeRuntime(
        RaftConfig(NodeId(1)),
        store,
        state_machine,
        tick_seconds=0.01,
        initial_members=[Member(NodeId(1), False)],
    )
    early: list[tuple[int, int]] = []  # (state machine index, core index) seen in an early apply
    exports: list[int] = []
    real_apply = runtime._apply

    def watching_apply(rd: Any) -> None:
        real_apply(rd)
        if runtime._persisting:  # applied before its Ready's fsync completed
            early.append((state_machine.applied_index, runtime.raft.log.applied))
            exports.append(runtime.begin_export().meta.index)  # must not refuse

    runtime._apply = watching_apply  # type: ignore[method-assign]

    async def main() -> list[Any]:
        runtime.start()
        while not runtime.is_leader:
            await asyncio.sleep(0.01)
        replies: list[Any] = []
        for wave in range(20):  # waves of 50 INCRs: each wave's commit rides on the next Ready
            futures = []
            for _ in range(50):
                future = asyncio.get_running_loop().create_future()
                payload = state_machine.prepare_write([b"INCR", b"counter"], 0, 0)
                assert isinstance(payload, bytes)
                runtime.propose(payload, future.set_result)
                futures.append(future)
            if wave % 2:
                await asyncio.sleep(0)  # let a Ready go to the writer with half the waves
            replies += await asyncio.wait_for(asyncio.gather(*futures), 10)
        await runtime.stop()
        return replies

    replies = asyncio.run(main())
    assert sorted(replies) == list(range(1, 1001))  # every INCR applied exactly once
    assert early, "no Ready applied its committed entries early"
    assert all(sm > core for sm, core in early)
    assert exports == [sm for sm, _ in early]
    store.close()
