"""Admission control: who gets in, how often, and how much work the edge takes on at once.

- :class:`Gate` authenticates (:func:`bruno_edge.auth.authenticate`), throttles failed keys per
  client address and counts each key's requests against its rate limit (the ``limits``
  library's moving window, in memory: one edge process, one count). Refusals are 429 with
  ``Retry-After``.
- :class:`ChatSlots` bounds the chats one key has running at once (429 past it).
- :class:`WorkSlots` bounds what each kind of work (chat, search, ingest, other) has in flight;
  a request waits for a slot at most its kind's wait and is then refused with 503 and
  ``Retry-After``: load is shed early rather than queued without bound.
- :class:`Drain` is the edge stopping: new requests are refused (503), ``/ready`` fails, and
  streams still running near the end of the grace period are ended with an error event.

    caller = await gate.admit(authorization, client_address)   # Unauthenticated / RateLimited
    async with chat_slots.hold(caller), work_slots.hold(Work.CHAT):
        ...

A route takes its slots with :meth:`ChatSlots.take` and :meth:`WorkSlots.take` instead, each
returning the callable that gives the slot back, and leaves those on the request
(:func:`held_until_answered`) for :class:`bruno_edge.middleware.EdgeMiddleware` to call once the
response is sent, a stream's last byte included: a plain dependency, where a ``yield`` one cost
FastAPI an exit stack, a cancel scope and two context-manager wrappers on every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import aclosing, asynccontextmanager
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from bruno_core import Unauthenticated
from bruno_edge.auth import Caller, authenticate, refused
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import Keyring
from bruno_edge.metrics import EdgeMetrics
from bruno_edge.refusals import Overloaded, RateLimited

log = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Gives back what a ``take`` took; called once.
Release = Callable[[], None]
#: The ASGI scope's key for the releases of what the request holds until it is answered.
HELD_KEY = "bruno.held_until_answered"
#: Retry-After of a key at its concurrent chats: a chat usually ends within seconds.
CHAT_RETRY_AFTER_SECONDS = 2.0


class Work(StrEnum):
    """The kinds of work, each with its own bound on what is in flight."""

    CHAT = "chat"
    SEARCH = "search"
    INGEST = "ingest"
    OTHER = "other"


class ThreadlessMemoryStorage(MemoryStorage):
    """The ``limits`` library's in-memory storage, dropping expired events on the event loop at
    most once a second instead of in a timer thread.

    The stock storage starts a ``threading.Timer`` 10 ms after a hit whenever the previous one
    has run, so under steady traffic nearly every request started a thread: a tenth of the
    edge's CPU in a profile of sequential searches (docs/benchmarks.md). Expiry only frees
    memory (a moving window counts just the events inside it), and a pass over a few keys takes
    microseconds, so it runs inline. This overrides the storage's one private hook.
    """

    EXPIRY_INTERVAL_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._next_expiry = 0.0

    # The name the stock storage calls its hook by (its double-underscore name, mangled).
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + self.EXPIRY_INTERVAL_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class Gate:
    """Authentication, the failed-key throttle per address and each key's rate limit."""

    def __init__(self, settings: EdgeSettings, keyring: Keyring, metrics: EdgeMetrics) -> None:
        self.settings = settings
        self.keyring = keyring
        self.metrics = metrics
        self._limiter = MovingWindowRateLimiter(ThreadlessMemoryStorage())
        self._failures = _limits(settings.auth_failure_limit)
        self._default_rate = _limits(settings.rate_limit)
        self._rates: dict[str, list[RateLimitItem]] = {}

    def admit(self, authorization: str | None, client: str | None) -> Caller:
        """The caller, once its key is valid and within its rate limit."""
        address = client or "unknown"
        for item in self._failures:
            if not self._limiter.test(item, "auth-failures", address):
                self.metrics.refusals.labels("auth_throttled").inc()
                refused(None, "too many failed keys from its address", client=address)
                raise RateLimited(
                    "too many failed authentications from this address",
                    retry_after=self._reset_in(item, "auth-failures", address),
                )
        try:
            caller = authenticate(self.settings, self.keyring, authorization)
        except Unauthenticated:
            for item in self._failures:
                self._limiter.hit(item, "auth-failures", address)
            self.metrics.refusals.labels("unauthenticated").inc()
            refused(None, "missing or wrong key", client=address)
            raise
        for item in self._rate_of(caller):
            if not self._limiter.hit(item, "requests", caller.name):
                self.metrics.refusals.labels("rate_limit").inc()
                refused(caller.name, "over its rate limit", limit=str(item))
                raise RateLimited(
                    f"this API key is limited to {item}",
                    retry_after=self._reset_in(item, "requests", caller.name),
                )
        return caller

    def _rate_of(self, caller: Caller) -> list[RateLimitItem]:
        if caller.rate_limit is None:
            return self._default_rate
        if caller.rate_limit not in self._rates:
            self._rates[caller.rate_limit] = _limits(caller.rate_limit)
        return self._rates[caller.rate_limit]

    def _reset_in(self, item: RateLimitItem, *identifiers: str) -> float:
        stats = self._limiter.get_window_stats(item, *identifiers)
        return stats.reset_time - time.time()


def _limits(text: str) -> list[RateLimitItem]:
    return parse_many(text) if text.strip() else []


class ChatSlots:
    """How many chats each key has running; past its limit a chat is refused at once (429)."""

    def __init__(self, settings: EdgeSettings, metrics: EdgeMetrics) -> None:
        self.default = settings.concurrent_chats
        self.metrics = metrics
        self.running: Tally[str] = Tally()

    def take(self, caller: Caller) -> Release:
        """One of the key's chats, until the returned callable gives it back;
        :class:`RateLimited` (and nothing taken) past its limit."""
        limit = caller.concurrent_chats or self.default
        if self.running[caller.name] >= limit:
            self.metrics.refusals.labels("concurrent_chats").inc()
            refused(caller.name, "at its concurrent chats", limit=limit)
            raise RateLimited(
                f"this API key may run {limit} chats at once",
                retry_after=CHAT_RETRY_AFTER_SECONDS,
            )
        self.running[caller.name] += 1
        return partial(self._release, caller.name)

    def _release(self, name: str) -> None:
        self.running[name] -= 1
        if not self.running[name]:
            del self.running[name]

    @asynccontextmanager
    async def hold(self, caller: Caller) -> AsyncIterator[None]:
        """One of the key's chats for the block (:meth:`take`)."""
        release = self.take(caller)
        try:
            yield
        finally:
            release()


class _Slots:
    """One kind of work's slots: at most ``size`` in flight, a bounded wait for one."""

    def __init__(self, work: Work, size: int, max_wait: float, metrics: EdgeMetrics) -> None:
        self.work = work
        self.size = size
        self.max_wait = max_wait
        self.semaphore = asyncio.Semaphore(size)
        self.in_flight = metrics.admission_in_flight.labels(work.value)
        self.waiting = metrics.admission_waiting.labels(work.value)
        self.shed = metrics.admission_shed.labels(work.value)

    async def acquire(self) -> None:
        if not self.semaphore.locked():
            # A slot is free: taken at once (this await never suspends), with no wait to
            # bound or count. asyncio.timeout's timer was most of taking a slot in a profile
            # of sequential searches (docs/benchmarks.md, "Tenth pass").
            await self.semaphore.acquire()
            self.in_flight.inc()
            return
        if self.max_wait == 0:
            self._refuse()
        self.waiting.inc()
        try:
            async with asyncio.timeout(self.max_wait):
                await self.semaphore.acquire()
        except TimeoutError:
            self._refuse()
        finally:
            self.waiting.dec()
        self.in_flight.inc()

    def release(self) -> None:
        self.in_flight.dec()
        self.semaphore.release()

    def _refuse(self) -> None:
        self.shed.inc()
        log.info("request shed", extra={"work": self.work.value, "in_flight": self.size})
        raise Overloaded(
            f"the edge is at capacity for {self.work.value} requests; try again shortly",
            retry_after=max(self.max_wait, 1.0),
        )


class WorkSlots:
    """The in-flight bound of every kind of work, from the settings."""

    def __init__(self, settings: EdgeSettings, metrics: EdgeMetrics) -> None:
        bounds = {
            Work.CHAT: (settings.chat_max_in_flight, settings.chat_max_wait_seconds),
            Work.SEARCH: (settings.search_max_in_flight, settings.search_max_wait_seconds),
            Work.INGEST: (settings.ingest_max_in_flight, settings.ingest_max_wait_seconds),
            Work.OTHER: (settings.other_max_in_flight, settings.other_max_wait_seconds),
        }
        self.slots = {
            work: _Slots(work, size, wait, metrics) for work, (size, wait) in bounds.items()
        }

    async def take(self, work: Work) -> Release:
        """A slot of ``work``, until the returned callable gives it back; :class:`Overloaded`
        (and nothing taken) when none frees in time."""
        slots = self.slots[work]
        await slots.acquire()
        return slots.release

    @asynccontextmanager
    async def hold(self, work: Work) -> AsyncIterator[None]:
        """A slot of ``work`` for the block (:meth:`take`)."""
        release = await self.take(work)
        try:
            yield
        finally:
            release()


def held_until_answered(scope: MutableMapping[str, Any]) -> list[Release]:
    """Where a route leaves the releases of what it holds until its response is sent: a list
    on the request's ASGI scope that :class:`~bruno_edge.middleware.EdgeMiddleware` puts there
    and calls, last taken first, once the app is done with the request (a stream ended, the
    client gone, or an exception on its way out). ``RuntimeError`` without that middleware:
    nothing would give the slots back."""
    try:
        held: list[Release] = scope[HELD_KEY]
    except KeyError:
        raise RuntimeError("admission slots need EdgeMiddleware to give them back") from None
    return held


class Drain:
    """The edge stopping (SIGTERM): from :meth:`begin` on, new requests are refused and
    streams race the end of the grace period (:meth:`until_cut`)."""

    #: Streams end this long before the grace period does, so their error event is sent
    #: before the server closes what is still open.
    MARGIN_SECONDS = 1.0

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.cut_at: float | None = None
        self._waiting: set[asyncio.Timeout] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def draining(self) -> bool:
        return self.cut_at is not None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the app runs on (its lifespan binds it), for :meth:`request`."""
        self._loop = loop

    def request(self) -> None:
        """:meth:`begin` from a signal handler: on the loop's next turn, not in the middle of
        whatever the handler interrupted."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.begin)

    def begin(self) -> None:
        """Start stopping: streams get until the grace period less a margin to finish."""
        if self.cut_at is not None:
            return
        loop = asyncio.get_running_loop()
        self.cut_at = loop.time() + max(0.0, self.grace_seconds - self.MARGIN_SECONDS)
        log.info("draining", extra={"grace_seconds": self.grace_seconds})
        for timeout in self._waiting:
            timeout.reschedule(self.cut_at)

    async def until_cut(self, work: Awaitable[_T]) -> _T:
        """``work``'s result, or :class:`TimeoutError` once the stream's time is up (it is
        cancelled then). Costs nothing while the edge is not stopping."""
        async with asyncio.timeout_at(self.cut_at) as timeout:
            self._waiting.add(timeout)
            try:
                return await work
            finally:
                self._waiting.discard(timeout)


async def drained_stream(
    items: AsyncGenerator[_T, None], drain: Drain, farewell: Callable[[], _T]
) -> AsyncGenerator[_T, None]:
    """``items`` until they end or the edge's grace period is nearly over; then ``farewell()``
    (an error event) as the last item, so the client learns the answer was cut."""
    async with aclosing(items):
        while True:
            try:
                item = await drain.until_cut(anext(items))
            except StopAsyncIteration:
                return
            except TimeoutError:
                log.warning("stream cut by shutdown")
                yield farewell()
                return
            yield item
