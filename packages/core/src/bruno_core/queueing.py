"""Who goes first when work waits for a model: two priorities, a bounded line for each, metrics.

A homelab's model serves one thing at a time (one ONNX call on the CPU, one answer per model on
a small GPU). Interactive work, where a person waits for the result (a chat's answer, the
embedding of its question), goes before background work, where nobody does (an ingest's or a
reindex's embeddings, a chat UI's title and tag tasks); within a priority, first come first
served. Each priority waits in a line of bounded length: a request arriving at a full line is
refused at once with :class:`QueueFull` (UNAVAILABLE, marked not to be retried: a line that is
full now is full 50 ms later, and four attempts would only add load) instead of waiting behind
work that cannot be done in time; whoever asked decides (the edge answers 503 with
``Retry-After``).

    gate = PriorityGate("generation", slots=1, max_waiting=Bounds(interactive=32, background=16))
    async with gate.slot(Priority.INTERACTIVE):
        ...  # call the model

Every line reports ``bruno_queue_depth``, ``bruno_queue_wait_seconds`` and
``bruno_queue_refused_total``, labelled by queue and priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram

from bruno_core.errors import Unavailable

QUEUE_DEPTH = Gauge(
    "bruno_queue_depth",
    "Requests waiting for a model (not yet running), by queue and priority.",
    ["queue", "priority"],
)
QUEUE_WAIT = Histogram(
    "bruno_queue_wait_seconds",
    "Time a request waited for a model before it ran, by queue and priority.",
    ["queue", "priority"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_REFUSED = Counter(
    "bruno_queue_refused_total",
    "Requests refused at once because their priority's line was full, by queue and priority.",
    ["queue", "priority"],
)


class Priority(StrEnum):
    """Who waits for the result; members in the order they are served."""

    INTERACTIVE = "interactive"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class Bounds:
    """The longest line each priority may form."""

    interactive: int
    background: int

    def __post_init__(self) -> None:
        if self.interactive < 1 or self.background < 1:
            raise ValueError("a line must hold at least one request")

    def of(self, priority: Priority) -> int:
        return self.interactive if priority is Priority.INTERACTIVE else self.background


class QueueFull(Unavailable):
    """The line for this priority is full: try again shortly."""

    def __init__(self, queue: str, priority: Priority, waiting: int) -> None:
        super().__init__(
            f"the {queue} queue is full ({waiting} {priority} requests waiting); try again shortly"
        )
        self.retryable = False


class PriorityGate:
    """At most ``slots`` holders at once; the next slot goes to the oldest interactive waiter,
    else the oldest background one. For one event loop (one gRPC server's)."""

    def __init__(self, name: str, *, slots: int, max_waiting: Bounds) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.name = name
        self._free = slots
        self._max_waiting = max_waiting
        self._lines: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in Priority}
        for priority in Priority:
            QUEUE_DEPTH.labels(name, priority).set(0)

    def waiting(self, priority: Priority) -> int:
        """Requests of ``priority`` waiting for a slot."""
        return len(self._lines[priority])

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        """Hold one slot for the block; waits its turn, or raises :class:`QueueFull` at once."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        started = time.perf_counter()
        if self._free and not any(self._lines.values()):
            self._free -= 1
            QUEUE_WAIT.labels(self.name, priority).observe(0.0)
            return
        line = self._lines[priority]
        if len(line) >= self._max_waiting.of(priority):
            QUEUE_REFUSED.labels(self.name, priority).inc()
            raise QueueFull(self.name, priority, len(line))
        turn = asyncio.get_running_loop().create_future()
        line.append(turn)
        self._report(priority)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over as the caller gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    line.remove(turn)
                self._report(priority)
            raise
        QUEUE_WAIT.labels(self.name, priority).observe(time.perf_counter() - started)

    def _release(self) -> None:
        for priority in Priority:
            line = self._lines[priority]
            while line:
                turn = line.popleft()
                self._report(priority)
                if not turn.done():
                    turn.set_result(None)  # the slot goes straight to the waiter
                    return
        self._free += 1

    def _report(self, priority: Priority) -> None:
        QUEUE_DEPTH.labels(self.name, priority).set(len(self._lines[priority]))
