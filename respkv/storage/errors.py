"""Errors of the storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """The data directory or the disk is not usable: wrong node, not a respkv store, locked by
    another process, corrupt, or a write failed. The node cannot continue on this store."""
