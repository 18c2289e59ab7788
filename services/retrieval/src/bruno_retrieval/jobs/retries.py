"""Trying a job's document again after a transient failure.

A synchronous ingest may fail fast; a job runs in the background and rides out trouble that
passes: the embedding service not answering in time or being unavailable (its queue full, a
restart), a URL that timed out, could not be connected to or answered a 5xx, 408 or 429
(:class:`~bruno_retrieval.fetching.FetchFailed`), or a LanceDB commit that lost a race. Such a
document is ingested again, whole (an
ingest commits all of it or nothing), after an exponentially growing wait with jitter, up to
:attr:`DocumentRetries.attempts` in all; its error then says how many attempts were made. Any
other error (a bad document, the model conflict, not found, a URL refused for good) is raised at
once, as are :class:`.reindex.CollectionReindexing` (the job waits for the reindex instead) and
a URL that took its whole time limit (:class:`~bruno_retrieval.fetching.FetchTooSlow`: it would
be as slow again). A URL whose server answered 429 or 503 with ``Retry-After`` is not asked
again before the time it named (the back-off still applies when it is longer); one that asks
for longer than :attr:`DocumentRetries.max_wait_seconds`, the longest a job waits between
attempts, fails at once, its error saying so: asking sooner would only be refused again. A
cancel of the job ends the wait before the next attempt.

    result = await with_retries(lambda: ingest(document), cancelled, DocumentRetries(), "ingest")
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bruno_core import Unavailable
from bruno_retrieval.commit_conflicts import is_retryable_commit_conflict
from bruno_retrieval.fetching import FetchFailed, FetchTooSlow
from bruno_retrieval.jobs import metrics
from bruno_retrieval.knowledge.reindex import CollectionReindexing

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentRetries:
    """How often and how patiently a job's document is tried. The defaults wait about 5, 10,
    20 and 40 s (plus up to ``first_wait_seconds`` of jitter) between five attempts: with the
    embedding client's own deadline per attempt, a few minutes of a busy embedding service."""

    attempts: int = 5
    first_wait_seconds: float = 5.0
    max_wait_seconds: float = 60.0


def is_transient(error: BaseException) -> bool:
    """Whether trying ``error``'s operation again later may succeed: the embedding service
    unavailable or late (``DeadlineExceeded`` is an ``Unavailable``), a full queue included
    although it asks interactive callers not to retry at once, or a retryable commit
    conflict; a URL's fetch that failed in a way that may pass. Not a collection under
    reindex: that waits for the switch, not for time; nor a URL that took the fetcher's whole
    time limit: a server that slow will be as slow again, and each attempt costs the limit."""
    if isinstance(error, CollectionReindexing | FetchTooSlow):
        return False
    return isinstance(error, Unavailable) or is_retryable_commit_conflict(error)


async def with_retries(
    operation: Callable[[], Awaitable[_T]],
    cancelled: asyncio.Event,
    policy: DocumentRetries,
    kind: str,
) -> _T:
    """``operation()``, run again while it fails transiently, up to ``policy.attempts``; once
    ``cancelled`` is set no further attempt starts. A transient failure that ends it is raised
    as :class:`~bruno_core.Unavailable` saying how many attempts were made; any other error is
    raised as it is."""
    attempts = 0
    last: BaseException | None = None

    async def attempt() -> _T:
        nonlocal attempts
        attempts += 1
        # Awaited here: tenacity would hand back, unawaited, what a plain callable returns.
        return await operation()

    def count_retry(state: RetryCallState) -> None:
        nonlocal last
        last = _error_of(state)
        metrics.JOB_DOCUMENT_RETRIES.labels(kind).inc()
        log.warning(
            "a job's document failed transiently; trying again",
            extra={
                "attempt": state.attempt_number,
                "error": str(last),
                "wait_seconds": round(state.upcoming_sleep, 3),
            },
        )

    def may_pass(error: BaseException) -> bool:
        return is_transient(error) and not _asks_too_long(error, policy)

    back_off_time = wait_exponential_jitter(
        multiplier=policy.first_wait_seconds,
        max=policy.max_wait_seconds,
        jitter=policy.first_wait_seconds,
    )

    def wait(state: RetryCallState) -> float:
        # Not sooner than the server asked (may_pass left only what asks for no more than
        # the longest wait).
        return max(back_off_time(state), _asked_wait(_error_of(state)) or 0.0)

    async def back_off(seconds: float) -> None:
        # A cancel (before or during the wait) ends it; the next attempt is not made.
        try:
            await asyncio.wait_for(cancelled.wait(), seconds)
        except TimeoutError:
            return
        raise _CancelledDuringBackOff

    retrying = AsyncRetrying(
        retry=retry_if_exception(may_pass),
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        sleep=back_off,
        before_sleep=count_retry,
        reraise=True,
    )
    try:
        result: _T = await retrying(attempt)
    except _CancelledDuringBackOff:
        raise Unavailable(
            f"{_detail(last)}; the job was cancelled after {_times(attempts)}"
        ) from last
    except Exception as error:
        if not is_transient(error):
            raise
        detail = _detail(error)
        asked = _asked_wait(error)
        if asked is not None and _asks_too_long(error, policy):
            detail += (
                f" and asked to be asked again in {asked:.0f} s, longer than a job waits "
                f"({policy.max_wait_seconds:g} s): submit it again later"
            )
        raise Unavailable(f"{detail}; gave up after {_times(attempts)}") from error
    return result


class _CancelledDuringBackOff(Exception):
    """The job was cancelled while its document waited to be tried again."""


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def _asked_wait(error: BaseException | None) -> float | None:
    """How long the server of a URL asked to be left alone, if it said (``Retry-After``)."""
    return error.retry_after_seconds if isinstance(error, FetchFailed) else None


def _asks_too_long(error: BaseException, policy: DocumentRetries) -> bool:
    asked = _asked_wait(error)
    return asked is not None and asked > policy.max_wait_seconds


def _detail(error: BaseException | None) -> str:
    if isinstance(error, Unavailable):
        return error.detail
    return "the collection's table kept losing commit races"


def _times(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"
