"""Dynamic (cross-request) batching in front of a synchronous model call, as TEI and Triton do,
with queries served before documents.

Each request hands its texts over one chunk (at most one call's worth) at a time and
waits for that chunk before handing over the next. A single worker thread, whenever it becomes
free, takes queued chunks of ONE priority (interactive first: see :mod:`bruno_core.queueing`),
in arrival order, as many as fit in one call (``batch_size`` texts), runs them as ONE call and gives
each request its own rows. Nothing waits on purpose: a lone request runs as soon as the worker
is free, and requests that arrive while the worker is busy share its next call, so 16
concurrent one-text queries cost a few calls, not 16.

    batcher = DynamicBatcher(model.run_batch, batch_size=32)
    rows = await batcher.run(["how do I restart flux?"], Priority.INTERACTIVE)
    batcher.close()

Because a request keeps at most one chunk in the queue and interactive chunks go first (never
in the same call as documents, whose texts would make the query's call longer), a query waits
for at most the one call already running. Background calls hold at most
``background_call_chars`` characters (a longer text goes alone), so that call is short: on the
CPU a call costs about the same per token whatever the grouping, so a chunk of a few hundred
tokens gains nothing from company, while short texts still share calls (docs/benchmarks.md).

Each priority's line is bounded: a request arriving at a full line is refused with
:class:`~bruno_core.queueing.QueueFull`; the later chunks of a request already admitted are
never refused. A caller that gives up (its task is cancelled) hands over no further chunks and
its queued chunk is dropped before it runs. When a shared call fails, each of its chunks is run
again on its own, so the error reaches only the request whose texts caused it.

Several models may share one batcher (``run(..., call=other_model.run_batch)``): one worker,
one set of bounds, queries of every model before documents of any, and a call never mixes two
models' texts (a call ends where the next queued chunk is another model's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bruno_core.queueing import QUEUE_DEPTH, QUEUE_REFUSED, QUEUE_WAIT, Bounds, Priority, QueueFull

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""One model call: texts in, one row per text out, in the same order. Runs on the worker."""

# Generous: retrieval keeps at most two document batches in flight, the edge a few queries.
DEFAULT_BOUNDS = Bounds(interactive=64, background=16)


class BatcherClosedError(RuntimeError):
    """The batcher was closed before (or while) the request was served."""


@dataclass(eq=False)
class _Chunk:
    """Up to ``batch_size`` texts of one request, and where its rows go."""

    texts: list[str]
    priority: Priority
    call: RunBatch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[npt.NDArray[np.float32]]
    queued_at: float = field(default_factory=time.perf_counter)
    cancelled: bool = field(default=False)

    @property
    def chars(self) -> int:
        return sum(map(len, self.texts))


class DynamicBatcher:
    """Packs the queued chunks of concurrent requests into shared calls of ``run_batch``.

    Thread-safe and event-loop agnostic: requests may come from any loop; the worker resolves
    each request's future on that request's own loop. ``name`` labels the queue's metrics.
    ``run_batch`` is the model call a request gets unless it names another (``call``).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        batch_size: int,
        background_call_chars: int | None = None,
        max_waiting: Bounds = DEFAULT_BOUNDS,
        name: str = "embedding",
        thread_name: str = "batcher",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if background_call_chars is not None and background_call_chars < 1:
            raise ValueError("background_call_chars must be at least 1")
        self.batch_size = batch_size
        self.background_call_chars = background_call_chars
        self.name = name
        self._run_batch = run_batch
        self._max_waiting = max_waiting
        self._thread_name = thread_name
        self._lines: dict[Priority, deque[_Chunk]] = {p: deque() for p in Priority}
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        for priority in Priority:
            QUEUE_DEPTH.labels(name, priority).set(0)

    @property
    def queued_texts(self) -> int:
        """Texts handed over and not yet taken by the worker."""
        with self._wake:
            return sum(
                len(chunk.texts)
                for line in self._lines.values()
                for chunk in line
                if not chunk.cancelled
            )

    async def run(
        self,
        texts: Sequence[str],
        priority: Priority = Priority.BACKGROUND,
        call: RunBatch | None = None,
    ) -> npt.NDArray[np.float32]:
        """Rows for ``texts`` in their order, made by ``call`` (default: the batcher's
        ``run_batch``); requests larger than one call go over in several chunks, longest texts
        first so each call pads little. Raises :class:`QueueFull` at once when ``priority``'s
        line is full."""
        if not texts:
            return np.empty((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        parts: list[tuple[list[int], npt.NDArray[np.float32]]] = []
        chars = self._call_chars(priority)
        start = 0
        while start < len(order):
            end, total = start, 0
            while end < len(order) and end - start < self.batch_size:
                total += len(texts[order[end]])
                if end > start and total > chars:
                    break
                end += 1
            indices = order[start:end]
            chunk = [texts[i] for i in indices]
            parts.append((indices, await self._submit(chunk, priority, call, admit=start == 0)))
            start = end
        rows = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for indices, part in parts:
            rows[indices] = part
        return rows

    def _call_chars(self, priority: Priority) -> float:
        """The most characters one call of ``priority`` holds (a longer text goes alone)."""
        if priority is Priority.INTERACTIVE or self.background_call_chars is None:
            return float("inf")
        return self.background_call_chars

    async def _submit(
        self, texts: list[str], priority: Priority, call: RunBatch | None, *, admit: bool
    ) -> npt.NDArray[np.float32]:
        loop = asyncio.get_running_loop()
        chunk = _Chunk(texts, priority, call or self._run_batch, loop, loop.create_future())
        line = self._lines[priority]
        with self._wake:
            if self._closed:
                raise BatcherClosedError("the embedder is closed")
            if admit and len(line) >= self._max_waiting.of(priority):
                QUEUE_REFUSED.labels(self.name, priority).inc()
                raise QueueFull(self.name, priority, len(line))
            line.append(chunk)
            QUEUE_DEPTH.labels(self.name, priority).set(len(line))
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name=self._thread_name, daemon=True
                )
                self._worker.start()
            self._wake.notify()
        try:
            return await chunk.future
        except asyncio.CancelledError:
            with self._wake:
                chunk.cancelled = True  # dropped if still queued; its rows ignored if running
            raise

    def close(self) -> None:
        """Stop the worker after its current call; queued requests fail with
        :class:`BatcherClosedError`. Does not wait for the worker."""
        with self._wake:
            self._closed = True
            dropped = [chunk for line in self._lines.values() for chunk in line]
            for priority, line in self._lines.items():
                line.clear()
                QUEUE_DEPTH.labels(self.name, priority).set(0)
            self._wake.notify()
        for chunk in dropped:
            self._resolve(chunk, BatcherClosedError("the embedder closed before this request ran"))

    # --- worker thread ---

    def _work(self) -> None:
        while True:
            with self._wake:
                while not any(self._lines.values()) and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch = self._take()
            if batch:
                self._serve(batch)

    def _take(self) -> list[_Chunk]:
        """Queued chunks of the first priority that has any, from the head of its line, as
        many as fit in one call of that priority (the first always fits: a chunk is never
        larger) and are for the first one's model; cancelled chunks are dropped. Holds the
        lock."""
        batch: list[_Chunk] = []
        now = time.perf_counter()
        for priority, line in self._lines.items():
            size, chars, most_chars = 0, 0, self._call_chars(priority)
            while line:
                chunk = line[0]
                if chunk.cancelled:
                    line.popleft()
                    continue
                if batch and (
                    size + len(chunk.texts) > self.batch_size
                    or chars + chunk.chars > most_chars
                    or chunk.call != batch[0].call  # bound methods: equal, not identical
                ):
                    break
                batch.append(line.popleft())
                size += len(chunk.texts)
                chars += chunk.chars
                QUEUE_WAIT.labels(self.name, priority).observe(now - chunk.queued_at)
            QUEUE_DEPTH.labels(self.name, priority).set(len(line))
            if batch:
                return batch
        return batch

    def _serve(self, batch: list[_Chunk]) -> None:
        texts = [text for chunk in batch for text in chunk.texts]
        try:
            rows = batch[0].call(texts)
        except Exception as exc:
            if len(batch) == 1:
                self._resolve(batch[0], exc)
                return
            # Find the culprit: each request alone, so only its own error reaches it.
            log.warning("a shared batch failed; running its requests one by one", exc_info=True)
            for chunk in batch:
                if not chunk.cancelled:
                    self._serve([chunk])
            return
        start = 0
        for chunk in batch:
            end = start + len(chunk.texts)
            self._resolve(chunk, rows[start:end])
            start = end

    @staticmethod
    def _resolve(chunk: _Chunk, outcome: npt.NDArray[np.float32] | BaseException) -> None:
        def settle() -> None:
            if chunk.future.done():  # the caller gave up meanwhile
                return
            if isinstance(outcome, BaseException):
                chunk.future.set_exception(outcome)
            else:
                chunk.future.set_result(outcome)

        # The request's loop may have closed meanwhile (its caller is gone): nothing to tell.
        with contextlib.suppress(RuntimeError):
            chunk.loop.call_soon_threadsafe(settle)
