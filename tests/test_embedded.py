"""The in-process API: three embedded nodes in one event loop, writes, reads, failover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from respkv.config import load
from respkv.server.embedded import EmbeddedError, EmbeddedNode
from tests.respkv_proc import free_port


def configs(tmp_path: Path) -> list[dict[str, object]]:
    peers = {i: free_port() for i in (1, 2, 3)}
    clients = {i: free_port() for i in (1, 2, 3)}
    members = [
        {"id": i, "address": f"127.0.0.1:{peers[i]}", "client_address": f"127.0.0.1:{clients[i]}"}
        for i in (1, 2, 3)
    ]
    return [
        {
            "cluster.node_id": i,
            "cluster.listen_address": f"127.0.0.1:{peers[i]}",
            "cluster.initial_cluster": members,
            "cluster.db_root_dir": str(tmp_path),
            "server.port": clients[i],
        }
        for i in (1, 2, 3)
    ]


@pytest.mark.integration
def test_embedded_cluster_writes_reads_and_reports_leader_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = [EmbeddedNode(load(None, env={}, overrides=c)) for c in configs(tmp_path)]
        seen: dict[int, list[tuple[int, int]]] = {n.node_id: [] for n in nodes}
        for node in nodes:
            node.on_leader_change(
                lambda leader, term, me=node.node_id: seen[me].append((leader, term))
            )
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await asyncio.wait_for(asyncio.gather(*(n.wait_ready() for n in nodes)), 30)
            await nodes[0].set(b"k", b"v")
            assert [await n.get(b"k") for n in nodes] == [b"v", b"v", b"v"]
            assert await nodes[1].execute("INCR", "n") == 1
            assert await nodes[2].delete(b"k", b"missing") == 1
            with pytest.raises(EmbeddedError, match="value is not an integer"):
                await nodes[1].execute("INCRBY", "n", "x")
            leader = next(n for n in nodes if n.is_leader)
            first_term = max(t for _, t in seen[leader.node_id])
            await leader.stop()
            survivors = [n for n in nodes if n is not leader]
            await asyncio.wait_for(asyncio.gather(*(n.wait_ready() for n in survivors)), 30)
            await survivors[0].set(b"after", b"failover")
            assert await survivors[1].get(b"after") == b"failover"
            for node in survivors:
                leader_now, term_now = seen[node.node_id][-1]
                assert leader_now not in (0, leader.node_id) and term_now > first_term
        finally:
            for node in nodes:
                if not node.server._stopped.is_set():
                    await node.stop()

    asyncio.run(scenario())
