"""The writer thread: synced writes off the event loop, with group commit.

Theory of operation
-------------------
Callers on the event loop fill a ``WriteBatch`` (``Store.batch()`` plus ``RaftLogStore``
operations) and ``submit`` it; they get a future (or a callback) completed on the loop once
the batch is durable.

One thread takes every batch submitted so far (a *group*), writes each one unsynced, then
makes the whole group durable with a single fdatasync of the WAL. Batches submitted while that
fsync runs queue up and share the next one, so under load one fsync covers many jobs.

Why not ``Rdict.write(batch, sync=True)``: rocksdict 0.3.29 holds the GIL for the whole of
``Rdict.write``, fsync included, which would stall the event loop for every fsync. An unsynced
write is only a memtable insert plus a write(2) into the page cache (microseconds for small
batches), and ``Rdict.flush_wal(sync=True)`` - the fdatasync - does release the GIL. RocksDB
documents Write() followed by SyncWAL() as durable; the only difference from a synced write is
that the data is visible to readers of this process before it is durable, which the Raft core
does not depend on (it tracks what was acknowledged as stable itself).

``write_inline`` does the same for one batch on the calling thread when the thread is idle:
a lone client's write then costs no thread handoff (two wake-ups, ~50-100 µs on a busy machine)
but holds the loop for its fsync, so the runtime uses it only for small Readies.

Each batch stays atomic on its own (one WAL record); the group shares only the fsync. Futures
complete in submission order, with one ``call_soon_threadsafe`` per group. A batch whose write
fails gets that error; if the fsync fails, every batch of the group gets it. Errors are never
dropped: even an unexpected failure of the thread itself fails every waiting future.

``fsync=False`` skips the fsync: a completed future then means "in the OS page cache", which
survives a process crash (kill -9) but not a power loss or kernel crash, after which a node may
have forgotten acknowledged entries or its vote - a Raft safety violation. For tests and
benchmarks, or deployments that accept losing the tail of the log on power loss.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rocksdict import WriteBatch

from .errors import StorageError
from .store import Store

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the latency histogram buckets used for metrics (Prometheus's
#: defaults, extended down to 100 µs for fsyncs and fast commands).
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    """Plain counters: one ``observe_ns`` is a bisect and three integer updates, cheap enough
    for the hot path; the metrics collector turns it into a Prometheus histogram at scrape
    time. Single writer (one thread); readers may see a count a moment ahead of the sum."""

    __slots__ = ("bounds_ns", "counts", "sum_ns", "total")

    def __init__(self) -> None:
        self.bounds_ns = [round(b * 1e9) for b in LATENCY_BUCKETS_S]
        self.counts = [0] * (len(self.bounds_ns) + 1)  # the last one: above every bound
        self.sum_ns = 0
        self.total = 0

    def observe_ns(self, elapsed_ns: int) -> None:
        self.counts[bisect.bisect_left(self.bounds_ns, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns
        self.total += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """[(upper bound as Prometheus writes it, cumulative count), ..., ("+Inf", total)]."""
        out = []
        running = 0
        counts = list(self.counts)
        for bound, count in zip(LATENCY_BUCKETS_S, counts, strict=False):
            running += count
            out.append((repr(bound), running))
        out.append(("+Inf", running + counts[-1]))
        return out


#: Called on the event loop with None once the batch is durable, or with the error.
DoneCallback = Callable[[BaseException | None], None]


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters for metrics. ``fsync_*_ms`` time ``flush_wal(sync=True)``, which includes
    re-taking the GIL afterwards (up to ``sys.getswitchinterval()`` on a busy loop)."""

    jobs: int  # batches written (successfully or not)
    groups: int  # write rounds; each ends with one fsync when fsync is on
    errors: int  # batches completed with an error
    max_group_jobs: int  # the most batches one round covered
    fsync_count: int
    fsync_total_ms: float
    fsync_last_ms: float
    fsync_max_ms: float


class _Job:
    __slots__ = ("batch", "callback", "error", "future")

    def __init__(
        self,
        batch: WriteBatch,
        future: asyncio.Future[None] | None,
        callback: DoneCallback | None,
    ) -> None:
        self.batch: WriteBatch | None = batch
        self.future = future
        self.callback = callback
        self.error: BaseException | None = None


class StorageWriter:
    def __init__(
        self,
        store: Store,
        *,
        fsync: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        thread_name: str = "respkv-storage-writer",
    ) -> None:
        self.fsync = fsync
        self._store = store
        self._loop = loop
        self._thread_name = thread_name
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Job] = []  # guarded by _cond
        self._stopping = False  # guarded by _cond
        self._busy = False  # the thread is writing a group; guarded by _cond
        self._thread: threading.Thread | None = None
        # Statistics, written by the writer thread only.
        self._jobs = 0
        self._groups = 0
        self._errors = 0
        self._max_group_jobs = 0
        self._fsync_count = 0
        self._fsync_total_s = 0.0
        self._fsync_last_s = 0.0
        self._fsync_max_s = 0.0
        self.fsync_histogram = LatencyHistogram()  # observed by the writer thread only
        # The latency monitor (set by the server): an fsync of at least
        # ``slow_fsync_threshold_ns()`` (0: off; read on the writer thread) is reported to
        # ``on_slow_fsync(milliseconds)`` on the loop, as Redis's "aof-fsync-always" event.
        self.slow_fsync_threshold_ns: Callable[[], int] = lambda: 0
        self.on_slow_fsync: Callable[[int], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread. Completions go to ``loop`` (default: the running loop)."""
        if self._thread is not None:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()
        log.info("storage writer started (fsync=%s)", self.fsync)

    def close(self, timeout: float | None = None) -> None:
        """Write everything submitted, then stop the thread (blocking). Idempotent.

        The last completions are scheduled on the loop: they run when it next gets control.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise StorageError(f"storage writer did not stop within {timeout}s")
            self._thread = None
            log.info("storage writer stopped")

    async def aclose(self) -> None:
        """``close`` without blocking the loop; returns after the last completions ran."""
        await asyncio.to_thread(self.close)
        await asyncio.sleep(0)

    # --- submitting --------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> asyncio.Future[None]:
        """Write ``batch`` durably; the future completes on the loop. Call on the loop thread.

        The batch is consumed: do not reuse it.
        """
        loop = self._loop
        if loop is None:
            raise StorageError("storage writer is not started")
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Job(batch, future, None))
        return future

    def submit_callback(self, batch: WriteBatch, callback: DoneCallback) -> None:
        """Like ``submit``, but calls ``callback(error_or_None)`` on the loop instead."""
        if self._loop is None:
            raise StorageError("storage writer is not started")
        self._enqueue(_Job(batch, None, callback))

    @property
    def idle(self) -> bool:
        """Nothing is queued or being written: ``write_inline`` would not overtake anything."""
        return not self._pending and not self._busy and self._thread is not None

    def write_inline(self, batch: WriteBatch) -> BaseException | None:
        """Write ``batch`` durably now, on the calling thread; the error, or None once durable.

        Only when ``idle`` (it raises StorageError otherwise): batches stay in submission order.
        The batch is consumed. The fsync releases the GIL but blocks the caller.
        """
        with self._cond:  # the thread cannot start a group meanwhile (stats stay one-writer)
            if self._stopping or self._pending or self._busy or self._thread is None:
                raise StorageError("storage writer is busy or closed: submit instead")
            job = _Job(batch, None, None)
            sync_error = self._write_group([job])
        return job.error or sync_error

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                raise StorageError("storage writer is closed")
            self._pending.append(job)
            if len(self._pending) == 1:
                self._cond.notify()

    # --- statistics --------------------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            jobs=self._jobs,
            groups=self._groups,
            errors=self._errors,
            max_group_jobs=self._max_group_jobs,
            fsync_count=self._fsync_count,
            fsync_total_ms=self._fsync_total_s * 1000,
            fsync_last_ms=self._fsync_last_s * 1000,
            fsync_max_ms=self._fsync_max_s * 1000,
        )

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        jobs: list[_Job] = []
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._stopping:
                        self._cond.wait()
                    if not self._pending:
                        return  # stopping, and everything is written
                    jobs, self._pending = self._pending, []
                    self._busy = True
                sync_error = self._write_group(jobs)
                with self._cond:
                    self._busy = False  # before the completions: their callbacks may write inline
                self._post(jobs, sync_error)
                jobs = []
        except BaseException as e:  # a bug here must not strand any waiter
            log.exception("storage writer failed")
            with self._cond:
                self._stopping = True
                jobs, self._pending = jobs + self._pending, []
            error = StorageError(f"storage writer failed: {e!r}")
            error.__cause__ = e
            for job in jobs:
                job.error = job.error or error
            self._post(jobs, None)

    def _write_group(self, jobs: list[_Job]) -> BaseException | None:
        """Write every job's batch, then one fsync; job errors in ``job.error``, the fsync's
        returned."""
        store = self._store
        written = 0
        for job in jobs:
            batch, job.batch = job.batch, None
            assert batch is not None
            try:
                store._write_unsynced(batch)
                written += 1
            except BaseException as e:
                job.error = e
        sync_error: BaseException | None = None
        if self.fsync and written:
            start = time.perf_counter_ns()
            try:
                store._sync_wal()
            except BaseException as e:
                sync_error = e
            elapsed_ns = time.perf_counter_ns() - start
            self.fsync_histogram.observe_ns(elapsed_ns)
            elapsed = elapsed_ns / 1e9
            self._fsync_count += 1
            self._fsync_total_s += elapsed
            self._fsync_last_s = elapsed
            self._fsync_max_s = max(self._fsync_max_s, elapsed)
            threshold = self.slow_fsync_threshold_ns()
            report = self.on_slow_fsync
            if threshold and elapsed_ns >= threshold and report is not None:
                self._report_slow_fsync(report, elapsed_ns // 1_000_000)
        self._jobs += len(jobs)
        self._groups += 1
        self._errors += len(jobs) - written if sync_error is None else len(jobs)
        self._max_group_jobs = max(self._max_group_jobs, len(jobs))
        return sync_error

    def _report_slow_fsync(self, report: Callable[[int], None], milliseconds: int) -> None:
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(report, milliseconds)

    def _post(self, jobs: list[_Job], sync_error: BaseException | None) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(_complete, loop, jobs, sync_error)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            log.warning("event loop closed: %d storage write completions dropped", len(jobs))


def _complete(
    loop: asyncio.AbstractEventLoop, jobs: list[_Job], sync_error: BaseException | None
) -> None:
    """On the loop: resolve every job of a group, in submission order."""
    for job in jobs:
        error = job.error or sync_error
        future = job.future
        if future is not None:
            if future.done():  # cancelled by its waiter
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        elif job.callback is not None:
            try:
                job.callback(error)
            except Exception as e:
                loop.call_exception_handler(
                    {"message": "storage write callback failed", "exception": e}
                )
