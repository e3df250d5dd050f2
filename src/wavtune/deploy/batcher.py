"""Dynamic micro-batching for the service (the shape of Triton's dynamic batcher).

Requests are queued with :meth:`MicroBatcher.submit`; one worker thread takes the first waiting
request, waits up to ``window_s`` for more (at most ``max_batch``), and runs them together with
``run_batch`` (one padded forward pass), answering each request's future with its own result.
The queue is bounded: a full queue raises :class:`QueueFull` at once (the service answers 503),
and a request that waits longer than its timeout is dropped from the queue before it is run
(504). torch is only ever entered from the worker thread.

When the queue runs dry the worker hands the heap's free pages back to the system
(glibc ``malloc_trim``, at most once a second): batches of ever-different shapes otherwise
leave the allocator holding the peak of every shape seen, and the resident memory of a
long-running service creeps up although nothing leaks.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wavtune.errors import WavtuneError

T = TypeVar("T")
R = TypeVar("R")
TRIM_EVERY_S = 1.0  # the fewest seconds between two heap trims


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # musl, macOS, Windows: nothing to call
        return None
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def call() -> None:
        trim(0)  # returns whether memory was released: either is fine

    return call


TRIM_HEAP = _malloc_trim()


class QueueFull(WavtuneError, RuntimeError):
    """The batcher's queue holds ``max_queue`` requests already (the service answers 503)."""


@dataclass
class Job(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]
    dropped: threading.Event = field(default_factory=threading.Event)  # timed out: skip it


def _resolve(future: asyncio.Future[R], result: R | None, error: BaseException | None) -> None:
    if future.done():  # cancelled by its timeout meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class MicroBatcher(Generic[T, R]):
    """Collects concurrent requests into batches for ``run_batch`` (items -> results, in order)."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], max_batch: int = 8,
                 window_s: float = 0.005, max_queue: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self.max_queue = max(1, max_queue)
        self.on_batch = on_batch
        self._queue: deque[Job[T, R]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_trim = 0.0
        self._thread = threading.Thread(target=self._work, name="wavtune-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a batch)."""
        return len(self._queue)

    async def submit(self, item: T, timeout_s: float | None = None) -> R:
        """The result of ``item``; QueueFull when the queue is full, TimeoutError after
        ``timeout_s`` (the request is then dropped unless its batch already started)."""
        loop = asyncio.get_running_loop()
        job: Job[T, R] = Job(item, loop, loop.create_future())
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting already")
            self._queue.append(job)
            self._cond.notify()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            job.dropped.set()
            with self._cond:  # free its place in the queue (not there once its batch started)
                if job in self._queue:
                    self._queue.remove(job)
            raise

    def _take(self) -> list[Job[T, R]] | None:
        """The next batch: waits for a first job, then up to ``window_s`` for more."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            deadline = time.monotonic() + self.window_s
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Job[T, R]] = []
            while self._queue and len(batch) < self.max_batch:
                job = self._queue.popleft()
                if not job.dropped.is_set():
                    batch.append(job)
            return batch

    def _trim_when_idle(self) -> None:
        """Give freed heap pages back when nothing waits (not more than once a second)."""
        now = time.monotonic()
        if TRIM_HEAP is None or self._queue or now - self._last_trim < TRIM_EVERY_S:
            return
        self._last_trim = now
        TRIM_HEAP()

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            answers: list[tuple[Job[T, R], R | None, BaseException | None]]
            try:
                results = list(self.run_batch([job.item for job in batch]))
                answers = [(job, r, None) for job, r in zip(batch, results)]
            except Exception as e:  # one bad batch fails its requests, never the worker
                answers = [(job, None, e) for job in batch]
            for job, result, error in answers:
                try:
                    job.loop.call_soon_threadsafe(_resolve, job.future, result, error)
                except RuntimeError:  # its event loop has closed: nobody is waiting
                    pass
            self._trim_when_idle()

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, finish the queued ones, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
