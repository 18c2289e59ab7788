"""Retrying a LanceDB commit that lost a race it can win on a second try.

Table maintenance runs beside the writes: an index build (``create_index``) and a compaction
(``optimize``) of the same table may commit at once, and the later one is refused with a
*retryable* commit conflict ("This CreateIndex transaction was preempted by concurrent
transaction Rewrite … Please retry."). LanceDB retries plain appends itself, not these. Done
again from the version that won the operation succeeds, so it is: the table handle moved to
the latest version (a handle that did not make the winning commit would otherwise lose again),
a few times, each logged, after a short random wait; any other error, or the last attempt's,
is raised as it is.

    await retry_commit_conflicts(table, table.optimize, "optimizing the collection")
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Each retry redoes the whole operation (an index build trains again): a few are plenty, as
# the race needs another maintenance commit landing in the same short window.
ATTEMPTS = 4
# The lance error's words; LanceDB raises it as a plain RuntimeError.
_RETRYABLE = "Retryable commit conflict"


def is_retryable_commit_conflict(error: BaseException) -> bool:
    """Whether ``error`` is LanceDB's commit conflict that a new attempt resolves."""
    return isinstance(error, RuntimeError) and _RETRYABLE in str(error)


async def retry_commit_conflicts(
    table: Any, operation: Callable[[], Awaitable[_T]], what: str, *, attempts: int = ATTEMPTS
) -> _T:
    """``operation()`` on ``table``, run again (up to ``attempts`` in all) from the table's
    latest version while it loses a commit race."""

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s lost a commit race; trying again",
            what,
            extra={"attempt": state.attempt_number, "error": str(error)},
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable_commit_conflict),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        before_sleep=log_retry,
        reraise=True,
    )
    tried = False

    async def attempt() -> _T:
        nonlocal tried
        if tried:
            await table.checkout_latest()
        tried = True
        # Awaited here: tenacity would hand back, unawaited, what a plain callable returns.
        return await operation()

    result: _T = await retrying(attempt)
    return result
