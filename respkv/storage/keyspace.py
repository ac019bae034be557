"""``KeyspaceBackend``: the ``kv.backend.Backend`` protocol on the active keyspace family."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import cast

from rocksdict import ColumnFamily, Rdict, WriteBatch, WriteOptions

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
        cf = self._cf
        if not reverse:
            forward = cast(Iterator[tuple[bytes, bytes]], cf.items(from_key=start))
            for key, value in forward:
                if stop is not None and key >= stop:
                    return
                yield key, value
            return
        # Backwards, rocksdict seeks for the last key <= from_key: skip ``stop`` itself.
        backward = cast(
            Iterator[tuple[bytes, bytes]],
            cf.items(backwards=True) if stop is None else cf.items(True, stop),
        )
        for key, value in backward:
            if key < start:
                return
            if stop is not None and key >= stop:
                continue
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
