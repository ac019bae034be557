"""Three respkv nodes embedded in one asyncio application (the seed's embedded engine).

    python examples/embedded_cluster.py [data_dir]

Each node is a full cluster member that also serves Redis clients on its port; the
application writes and reads through the in-process API and is told about leader changes.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from respkv.config import load
from respkv.server.embedded import EmbeddedNode


def node_config(node_id: int, data_dir: str) -> dict[str, object]:
    members = [
        {"id": i, "address": f"127.0.0.1:{19080 + i}", "client_address": f"127.0.0.1:{16378 + i}"}
        for i in (1, 2, 3)
    ]
    return {
        "cluster.node_id": node_id,
        "cluster.listen_address": f"127.0.0.1:{19080 + node_id}",
        "cluster.initial_cluster": members,
        "cluster.db_root_dir": data_dir,
        "server.port": 16378 + node_id,
    }


async def main(data_dir: str) -> None:
    nodes = [
        EmbeddedNode(load(None, env={}, overrides=node_config(i, data_dir))) for i in (1, 2, 3)
    ]
    for node in nodes:
        node.on_leader_change(
            lambda leader, term, me=node.node_id: print(
                f"[node {me}] leader is {leader} (term {term})"
            )
        )
    await asyncio.gather(*(node.start() for node in nodes))
    try:
        await asyncio.gather(*(node.wait_ready() for node in nodes))
        await nodes[0].set(b"greeting", b"hello from node 1")
        print("node 3 reads:", await nodes[2].get(b"greeting"))
        leader = next(n for n in nodes if n.is_leader)
        print(f"stopping the leader, node {leader.node_id}")
        await leader.stop()
        survivors = [n for n in nodes if n is not leader]
        await asyncio.gather(*(n.wait_ready() for n in survivors))
        await survivors[0].set(b"after-failover", b"still works")
        print("after failover:", await survivors[1].get(b"after-failover"))
    finally:
        for node in nodes:
            if node.server.runtime is not None and not node.server._stopped.is_set():
                await node.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="respkv-")))
