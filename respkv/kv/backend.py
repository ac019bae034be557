"""The abstract keyspace store the state machine runs on.

An ordered map of byte strings. The production implementation lives in ``respkv.storage``
(a RocksDB column family); ``MemoryBackend`` serves tests and the simulator. The state machine
never imports rocksdict: it only sees this protocol.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Protocol


class Backend(Protocol):
    def get(self, key: bytes) -> bytes | None:
        """The stored value, or None."""
        ...

    def iterate(
        self, start: bytes, stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < stop (stop None: to the end), in key order."""
        ...

    def write(self, changes: Mapping[bytes, bytes | None], applied_index: int) -> None:
        """Apply every change (None deletes) and record ``applied_index``, atomically.

        Called once per apply batch. Need not be synced: the Raft log is, and a restart
        re-applies from the stored applied index.
        """
        ...

    @property
    def applied_index(self) -> int:
        """The index recorded by the last ``write`` (0 for a new store)."""
        ...


class MemoryBackend:
    """In-memory Backend for tests and the simulator (O(n) inserts; fine at test sizes)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []  # sorted
        self._applied_index = 0

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iterate(
        self, start: bytes, stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        lo = bisect.bisect_left(self._keys, start)
        hi = len(self._keys) if stop is None else bisect.bisect_left(self._keys, stop)
        keys = self._keys[lo:hi]  # a copy: callers may write while iterating
        for key in reversed(keys) if reverse else keys:
            yield key, self._data[key]

    def write(self, changes: Mapping[bytes, bytes | None], applied_index: int) -> None:
        for key, value in changes.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
        self._applied_index = applied_index

    @property
    def applied_index(self) -> int:
        return self._applied_index
