"""The joining side: ask a running cluster to take this node in as a learner.

A new node that joins does not know the cluster's id (nor, given only an address, the id of the
node it dials), so it dials with an empty cluster id, which a member accepts for this request
only. Any member forwards the request to the leader, which adds the node as a learner and
answers with the cluster id; the node then opens its data directory under that id and starts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import hiredis

from respkv.peer import ForwardError, PeerClient, PeerIdentity, PeerOptions
from respkv.raft.types import NodeId

log = logging.getLogger(__name__)

RETRYABLE = ("TRYAGAIN", "CLUSTERDOWN", "UNKNOWN")


class JoinError(Exception):
    """The cluster refused this node (the message says why); retrying will not help."""


async def join_cluster(
    node_id: int,
    target: str,
    peer_address: str,
    client_address: str,
    status: str,
    secret: bytes | None,
    timeout: float = 120.0,
    options: PeerOptions | None = None,
) -> tuple[str, int, str]:
    """(cluster id, leader id, what happened) once the cluster added this node."""
    identity = PeerIdentity(NodeId(node_id), "", peer_address, client_address, {}, secret)
    client = PeerClient(identity, NodeId(0), target, options or PeerOptions(), random.Random())
    client.start()
    deadline = time.monotonic() + timeout
    request = [
        b"CLUSTER",
        b"JOIN-REQUEST",
        str(node_id).encode(),
        peer_address.encode(),
        client_address.encode(),
        status.encode(),
    ]
    try:
        while True:
            problem: str
            try:
                payload = await asyncio.wait_for(client.forward(0, request, 2), 10)
                reply = _decode(payload)
                if isinstance(reply, list):
                    cluster_id, leader, outcome = reply
                    return cluster_id.decode(), int(leader), outcome.decode()
                problem = str(reply)
                if not problem.startswith(RETRYABLE):
                    raise JoinError(problem)
            except (ForwardError, TimeoutError) as e:
                problem = f"cannot reach {target}: {e}"
            if time.monotonic() > deadline:
                raise JoinError(f"could not join through {target} within {timeout:g}s: {problem}")
            log.info("joining through %s: %s; retrying", target, problem)
            await asyncio.sleep(1.0)
    finally:
        await client.close()


def _decode(payload: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(payload)
    reply = reader.gets()
    if isinstance(reply, hiredis.ReplyError):
        return str(reply)
    return reply
