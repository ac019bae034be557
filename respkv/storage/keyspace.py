"""``KeyspaceBackend``: the ``kv.backend.Backend`` protocol on the active keyspace family."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import cast

from rocksdict import ColumnFamily, Rdict, ReadOptions, WriteBatch, WriteOptions

from . import codec
from .errors import StorageError
from .keys import META_APPLIED


def _closed_get(key: bytes) -> bytes | None:
    raise StorageError("the store is closed")


class KeyspaceBackend:
    """An ordered byte map in RocksDB, plus the applied index, written atomically together.

    ``get`` is bound straight to rocksdict's ``Rdict.get`` (raw mode: bytes in, bytes or None
    out): the GET hot path crosses no Python frame of ours.

    ``iterate`` runs on a RocksDB iterator, which reads a consistent point-in-time view taken
    at its first ``next()``: writes made while iterating are not seen (like MemoryBackend's
    copy). An iterator pins the store open until it is exhausted or dropped.
    """

    get: Callable[[bytes], bytes | None]

    def __init__(
        self,
        db: Rdict,
        name: str,
        cf: Rdict,
        handle: ColumnFamily,
        meta_handle: ColumnFamily,
        applied_index: int,
    ) -> None:
        self._db = db
        self._meta_handle = meta_handle
        self._applied_index = applied_index
        self._write_opt = WriteOptions()
        self._write_opt.sync = False  # the Raft log is synced; restart re-applies from here
        self._attach(name, cf, handle)

    @property
    def cf_name(self) -> str:
        """The column family holding the data now (it changes when a snapshot is installed)."""
        return self._name

    def iterate(
        self, start: bytes, stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        # ``stop`` goes into the read options as the iterator's upper bound: rocksdict steps
        # its iterator past each item it returns, and without a bound that step walks over
        # every deleted key (tombstone) beyond the range, e.g. the 20,000 records of a list
        # just popped empty (ZRANGE next to it fell from 20,000 to 400 calls/s). rocksdict
        # 0.3.29 quirks: the iterator uses the bound's memory without owning it, so ``opts``
        # must live as long as the iterator (this generator's frame keeps it); and
        # set_iterate_lower_bound sets the upper bound, so the lower end of a backwards walk
        # is checked here.
        opts = ReadOptions()
        if stop is not None:
            opts.set_iterate_upper_bound(stop)
        items = cast(
            Iterator[tuple[bytes, bytes]], self._cf.items(reverse, stop if reverse else start, opts)
        )
        if not reverse:
            yield from items
            return
        for key, value in items:
            if key < start:
                return
            yield key, value

    def write(self, changes: Mapping[bytes, bytes | None], applied_index: int) -> None:
        batch = WriteBatch(raw_mode=True)
        batch.set_default_column_family(self._handle)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(META_APPLIED, codec.encode_index(applied_index), self._meta_handle)
        try:
            self._db.write(batch, self._write_opt)
        except Exception as e:
            raise StorageError(f"keyspace write failed: {e}") from e
        self._applied_index = applied_index

    @property
    def applied_index(self) -> int:
        return self._applied_index

    # --- used by the store ------------------------------------------------------------------

    def _attach(self, name: str, cf: Rdict, handle: ColumnFamily) -> None:
        self._name = name
        self._cf = cf
        self._handle = handle
        self.get = cf.get

    def _set_applied(self, applied_index: int) -> None:
        self._applied_index = applied_index

    def _detach(self) -> None:
        """Drop every reference to RocksDB objects (they keep the database open)."""
        self.get = _closed_get
        del self._cf, self._handle, self._meta_handle, self._db
