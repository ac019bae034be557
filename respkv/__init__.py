"""respkv: a Redis-compatible key-value store replicated with Raft."""

__version__ = "0.1.0"
#: The Redis version whose behaviour respkv matches; client libraries gate features on it.
REDIS_COMPAT_VERSION = "7.0.15"
