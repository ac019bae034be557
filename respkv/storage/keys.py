"""Names on disk: column families and the keys of ``raft_meta``."""

from __future__ import annotations

#: Bumped when the on-disk layout changes incompatibly.
FORMAT_VERSION = 1

CF_RAFT_LOG = "raft_log"
CF_RAFT_META = "raft_meta"
#: Two keyspace families: one is active, the other receives an incoming snapshot, and the
#: install flips ``META_KEYSPACE_ACTIVE`` (with the applied index and snapshot meta) in one
#: synced write. The inactive one is emptied on open.
CF_KEYSPACE = "keyspace"
CF_KEYSPACE_ALT = "keyspace_alt"
KEYSPACE_CFS = (CF_KEYSPACE, CF_KEYSPACE_ALT)
ALL_CFS = (CF_RAFT_LOG, CF_RAFT_META, *KEYSPACE_CFS)

META_IDENTITY = b"identity"
META_HARD_STATE = b"hard_state"
META_SNAPSHOT = b"snapshot"
META_APPLIED = b"applied_index"
META_KEYSPACE_ACTIVE = b"keyspace_active"  # the name of the active keyspace family
META_REMOVED = b"removed"  # set when this node was removed from its cluster: never serve again
META_REMOVED_IDS = b"removed_ids"  # ids of members removed from the cluster: never reused
