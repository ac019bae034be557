"""The writer thread: group commit, completion on the loop, error propagation, shutdown, and
durability of acknowledged appends under kill -9."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from rocksdict import WriteBatch

from respkv.raft.types import Entry, EntryType, HardState, Index, NodeId, Term
from respkv.storage import DoneCallback, StorageError, StorageWriter, Store


def entry(index: int, term: int = 1) -> Entry:
    return Entry(Term(term), Index(index), EntryType.NORMAL, b"data-%d" % index)


def append_batch(store: Store, index: int) -> WriteBatch:
    batch = store.batch()
    store.log.append(batch, [entry(index)])
    store.log.set_hard_state(batch, HardState(Term(1), NodeId(1), Index(index)))
    return batch


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "db", 1)


def test_group_commit_many_submissions_few_fsyncs(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        futures = [writer.submit(append_batch(store, i)) for i in range(1, 501)]
        await asyncio.gather(*futures)
        stats = writer.stats
        assert stats.jobs == 500
        assert stats.errors == 0
        assert stats.fsync_count == stats.groups
        assert stats.fsync_count < 500 / 5, stats
        assert stats.max_group_jobs > 5
        assert stats.fsync_max_ms > 0 and stats.fsync_total_ms >= stats.fsync_last_ms > 0
        await writer.aclose()

    asyncio.run(main())
    assert [e.index for e in store.log.load().entries] == list(range(1, 501))
    store.close()


def test_concurrent_writers_share_fsyncs(store: Store) -> None:
    """50 tasks each awaiting its own writes one at a time, like 50 Raft groups of clients."""

    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        cf = store._handles["keyspace"]

        async def client(n: int) -> None:
            for i in range(20):
                batch = store.batch()
                batch.put(b"client%d-%d" % (n, i), b"x", cf)
                await writer.submit(batch)

        await asyncio.gather(*(client(n) for n in range(50)))
        assert writer.stats.jobs == 1000
        assert writer.stats.fsync_count < 1000 / 2, writer.stats
        await writer.aclose()

    asyncio.run(main())
    assert len(list(store.keyspace.iterate(b"client"))) == 1000
    store.close()


def test_futures_complete_in_order_and_callbacks_run_on_the_loop(store: Store) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = StorageWriter(store)
        writer.start()
        by_future: list[int] = []
        by_callback: list[int] = []
        errors: list[BaseException | None] = []

        def done(order: list[int], i: int) -> None:
            assert asyncio.get_running_loop() is loop
            order.append(i)

        def on_future(i: int) -> Callable[[asyncio.Future[None]], None]:
            return lambda _future: done(by_future, i)

        def on_callback(i: int) -> DoneCallback:
            def callback(error: BaseException | None) -> None:
                errors.append(error)
                done(by_callback, i)

            return callback

        for i in range(1, 101):
            if i % 2:
                writer.submit(append_batch(store, i)).add_done_callback(on_future(i))
            else:
                writer.submit_callback(append_batch(store, i), on_callback(i))
        await writer.aclose()
        await asyncio.sleep(0)
        assert by_future == list(range(1, 101, 2))
        assert by_callback == list(range(2, 101, 2))
        assert errors == [None] * 50

    asyncio.run(main())
    store.close()


def test_a_failing_batch_fails_only_its_own_future(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        good1 = writer.submit(append_batch(store, 1))
        bad = writer.submit(WriteBatch(raw_mode=False))  # rocksdict refuses a pickling batch
        good2 = writer.submit(append_batch(store, 2))
        results = await asyncio.gather(good1, bad, good2, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StorageError)
        assert "raw_mode" in str(results[1])
        assert writer.stats.errors == 1
        await writer.aclose()

    asyncio.run(main())
    store.close()


def test_fsync_failure_reaches_every_future_of_the_group(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_sync() -> None:
        raise StorageError("fsync of the WAL failed: EIO")

    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        monkeypatch.setattr(store, "_sync_wal", broken_sync)
        futures = [writer.submit(append_batch(store, i)) for i in range(1, 21)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, StorageError) and "EIO" in str(r) for r in results)
        assert writer.stats.errors == 20
        await writer.aclose()

    asyncio.run(main())
    store.close()


def test_write_inline_syncs_on_the_caller_when_idle(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_sync = store._sync_wal
    monkeypatch.setattr(store, "_sync_wal", lambda: (synced.append(1), real_sync()))

    async def main() -> None:
        writer = StorageWriter(store)
        with pytest.raises(StorageError):  # not started: no thread to order against
            assert not writer.idle
            writer.write_inline(append_batch(store, 1))
        writer.start()
        assert writer.idle
        assert writer.write_inline(append_batch(store, 1)) is None
        assert synced == [1]  # durable when it returns
        await writer.submit(append_batch(store, 2))  # the thread still works afterwards
        assert writer.idle
        assert writer.write_inline(append_batch(store, 3)) is None
        stats = writer.stats
        assert (stats.jobs, stats.groups, stats.fsync_count) == (3, 3, 3)
        monkeypatch.setattr(store, "_sync_wal", broken_sync)
        error = writer.write_inline(append_batch(store, 4))
        assert isinstance(error, StorageError) and "EIO" in str(error)  # returned, not raised
        await writer.aclose()
        with pytest.raises(StorageError):
            writer.write_inline(append_batch(store, 5))

    def broken_sync() -> None:
        raise StorageError("fsync of the WAL failed: EIO")

    asyncio.run(main())
    assert [e.index for e in store.log.load().entries][:3] == [1, 2, 3]
    store.close()


def test_write_inline_refuses_while_the_thread_has_work(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        future = writer.submit(append_batch(store, 1))
        assert not writer.idle  # queued or being written: an inline write would overtake it
        with pytest.raises(StorageError):
            writer.write_inline(append_batch(store, 2))
        await future
        await writer.aclose()

    asyncio.run(main())
    store.close()


def test_a_crashing_writer_thread_fails_waiters(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        writer = StorageWriter(store)

        def explode(jobs: object) -> None:
            raise RuntimeError("bug in the writer")

        monkeypatch.setattr(writer, "_write_group", explode)
        writer.start()
        future = writer.submit(append_batch(store, 1))
        with pytest.raises(StorageError, match="bug in the writer"):
            await future
        with pytest.raises(StorageError, match="closed"):
            writer.submit(append_batch(store, 2))
        await writer.aclose()

    asyncio.run(main())
    store.close()


def test_close_drains_then_refuses(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store)
        with pytest.raises(StorageError, match="not started"):
            writer.submit(store.batch())
        writer.start()
        futures = [writer.submit(append_batch(store, i)) for i in range(1, 51)]
        await writer.aclose()
        assert all(f.done() and f.exception() is None for f in futures)
        with pytest.raises(StorageError, match="closed"):
            writer.submit(store.batch())
        await writer.aclose()  # idempotent

    asyncio.run(main())
    assert store.log.last_index == 50
    store.close()
    assert [e.index for e in Store.open(store.path, 1).log.load().entries] == list(range(1, 51))


def test_cancelled_future_does_not_break_the_group(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store)
        writer.start()
        first = writer.submit(append_batch(store, 1))
        first.cancel()
        second = writer.submit(append_batch(store, 2))
        await second
        await writer.aclose()

    asyncio.run(main())
    assert store.log.last_index == 2
    store.close()


def test_fsync_off_writes_without_syncing(store: Store) -> None:
    async def main() -> None:
        writer = StorageWriter(store, fsync=False)
        writer.start()
        await asyncio.gather(*(writer.submit(append_batch(store, i)) for i in range(1, 11)))
        assert writer.stats.fsync_count == 0
        assert writer.stats.jobs == 10
        await writer.aclose()

    asyncio.run(main())
    store.close()
    assert len(Store.open(store.path, 1).log.load().entries) == 10


# --- kill -9 ---------------------------------------------------------------------------------

APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from respkv.raft.types import Entry, EntryType, HardState, Index, NodeId, Term
    from respkv.storage import StorageWriter, Store

    async def main() -> None:
        store = Store.open(sys.argv[1], 1)
        writer = StorageWriter(store)
        writer.start()
        inflight = asyncio.Semaphore(32)
        index = store.log.last_index
        print("start", index, flush=True)

        def acked(future, index=0):
            inflight.release()
            if future.exception() is None:
                sys.stdout.write(f"{index}\\n")
                sys.stdout.flush()

        while True:
            await inflight.acquire()
            index += 1
            batch = store.batch()
            entry = Entry(Term(1), Index(index), EntryType.NORMAL, b"payload-%d" % index * 8)
            store.log.append(batch, [entry])
            store.log.set_hard_state(batch, HardState(Term(1), NodeId(1), Index(index)))
            writer.submit(batch).add_done_callback(lambda f, i=index: acked(f, i))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_appends_survive_kill_9(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    data = tmp_path / "db"
    acked: list[int] = []
    for round_ in range(2):  # the second round appends after a recovery
        child = subprocess.Popen(
            [sys.executable, str(script), str(data)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        assert child.stdout is not None
        header = child.stdout.readline().split()
        assert header[0] == "start", header
        assert int(header[1]) >= (acked[-1] if acked else 0)
        kill_after = rng.randrange(20, 400)
        for _ in range(kill_after):
            line = child.stdout.readline()
            assert line, f"appender died early (round {round_})"
            acked.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        acked += [int(line) for line in child.stdout.read().split()]
        child.wait()
        with Store.open(data, 1) as store:
            loaded = store.log.load()
            stored: dict[int, Entry] = {e.index: e for e in loaded.entries}
            missing = [i for i in acked if i not in stored]
            assert not missing, f"acknowledged but lost: {missing[:10]}"
            assert all(stored[i].data == b"payload-%d" % i * 8 for i in acked)
            assert list(stored) == list(range(1, len(stored) + 1))
            assert loaded.hard_state is not None
            assert loaded.hard_state.commit >= max(acked)


def test_slow_fsync_reported_to_the_latency_monitor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync over the latency threshold is reported, on the loop, with its milliseconds;
    none is reported while the threshold is 0 (off)."""
    import threading
    import time

    real_sync = store._sync_wal

    def slow_sync() -> None:
        time.sleep(0.006)
        real_sync()

    monkeypatch.setattr(store, "_sync_wal", slow_sync)
    threshold_ns = [0]
    reported: list[tuple[int, bool]] = []

    async def main() -> None:
        writer = StorageWriter(store)
        writer.slow_fsync_threshold_ns = lambda: threshold_ns[0]
        writer.on_slow_fsync = lambda ms: reported.append(
            (ms, threading.current_thread() is threading.main_thread())
        )
        writer.start()
        await writer.submit(append_batch(store, 1))
        await asyncio.sleep(0.01)
        assert reported == []
        threshold_ns[0] = 1_000_000
        await writer.submit(append_batch(store, 2))
        await asyncio.sleep(0.01)
        await writer.aclose()

    asyncio.run(main())
    assert len(reported) == 1 and reported[0][0] >= 5 and reported[0][1]
