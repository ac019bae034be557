"""Client-visible errors of the replicated write and read paths.

Three kinds, so that a client can tell what to do:
  CLUSTERDOWN  nothing was applied: safe to retry (no leader, not enough nodes, shutting down);
  TRYAGAIN     nothing was applied: the entry was overwritten by a new leader's; retry;
  UNKNOWN      the write may or may not have been applied (the leader was lost, or no answer
               came in time after the entry was appended); check before retrying.
"""

from __future__ import annotations

from respkv.resp.replies import ErrorReply

from .runtime import ClusterDown, EntryLost, OutcomeUnknown


def error_reply(error: BaseException) -> ErrorReply:
    if isinstance(error, ClusterDown):
        return ErrorReply(f"CLUSTERDOWN {error}")
    if isinstance(error, EntryLost):
        return ErrorReply(f"TRYAGAIN the write was not applied: {error}; retry it")
    if isinstance(error, OutcomeUnknown):
        return ErrorReply(f"UNKNOWN the outcome of the write is unknown: {error}")
    return ErrorReply(f"ERR internal error: {type(error).__name__}: {error}")
