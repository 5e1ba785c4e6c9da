"""A work queue of profiles to reconcile, in the manner of controller-runtime's.

Watch events only say *which* profile to look at; the reconcile itself reads the current
state and converges, so events can be merged freely:

- a key queued twice before a worker takes it is reconciled once;
- a key is never reconciled by two workers at once; if it is queued again while it is
  being reconciled, it runs once more afterwards, so no change goes unseen;
- a failed reconcile is retried after a per-key exponential backoff, reset on success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)

#: First and largest pause before a failed key is retried, in seconds.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 60.0


class WorkQueue:
    def __init__(self, handler: Callable[[Hashable], Awaitable[float | None]], *,
                 workers: int = 4) -> None:
        """``handler`` reconciles one key; it may return seconds after which to run again."""
        self._handler = handler
        self._workers = workers
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.last_activity = time.monotonic()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def add(self, key: Hashable) -> None:
        """Queue a key now; a pending delayed retry of it is no longer needed."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._idle.clear()
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        if key in self._timers or key in self._queued:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    @property
    def busy(self) -> bool:
        return bool(self._queued or self._active)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            self.last_activity = time.monotonic()
            again_after: float | None = None
            try:
                again_after = await self._handler(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))
                logger.exception("Reconciling %s failed; retrying in %.1fs.", key, delay)
                again_after = delay
            else:
                self._failures.pop(key, None)
            finally:
                self._active.discard(key)
                self.last_activity = time.monotonic()
            if key in self._again:
                self._again.discard(key)
                self.add(key)
            elif again_after is not None:
                self.add_after(key, again_after)
            if not self.busy:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
