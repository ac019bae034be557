"""Progress lines for long operations (snapshot transfer and install, recovery at start-up)."""

from __future__ import annotations

import logging
import time


class ProgressLog:
    """Logs ``what``'s progress at most every ``interval_s`` seconds or every 10% of
    ``total`` (when known; 0: unknown), whichever comes first. Safe to use from one thread."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        total: int,
        unit: str = "bytes",
        interval_s: float = 5.0,
    ) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.unit = unit
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last_time = self.started
        self._next_percent = 10

    def update(self, done: int) -> None:
        now = time.monotonic()
        percent = done * 100 // self.total if self.total else -1
        if percent < self._next_percent and now - self._last_time < self.interval_s:
            return
        self._last_time = now
        if percent >= self._next_percent:
            self._next_percent = (percent // 10 + 1) * 10
        self._log(done, now)

    def finish(self, done: int) -> float:
        """Log the end; returns the seconds it took."""
        now = time.monotonic()
        self._log(done, now, finished=True)
        return now - self.started

    def _log(self, done: int, now: float, finished: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        if self.unit == "bytes":
            amount, speed = f"{done / 1e6:.1f} MB", f"{rate / 1e6:.1f} MB/s"
        else:
            amount, speed = f"{done} {self.unit}", f"{rate:.0f} {self.unit}/s"
        if self.total:
            total = f"{self.total / 1e6:.1f} MB" if self.unit == "bytes" else str(self.total)
            amount += f" of {total} ({done * 100 // self.total}%)"
        state = "done" if finished else "in progress"
        self.logger.info(
            "%s %s: %s in %.1fs, %s", self.what, state, amount, now - self.started, speed
        )
