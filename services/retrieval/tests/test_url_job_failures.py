"""Which failures of a URL job's document are tried again, over a real LanceDB: one that no
later attempt can pass fails at its first attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import JobState
from bruno_retrieval.jobs.retries import DocumentRetries

if TYPE_CHECKING:
    from conftest import FakeEmbedder, JobService

# Waits short enough that a wrongly retried document shows in its error, not in the test's time.
QUICK = DocumentRetries(attempts=5, first_wait_seconds=0.01, max_wait_seconds=0.01)


async def test_a_runner_that_does_not_fetch_urls_fails_the_url_at_once(
    make_settings: Callable[..., RetrievalSettings],
    embedder: FakeEmbedder,
    make_job_service: type[JobService],
) -> None:
    service = make_job_service(make_settings(), embedder)  # no fetcher: a configuration
    await service.start(QUICK)
    try:
        done = await service.finished(await service.submit_urls("https://wiki.example/ups"))
    finally:
        await service.close()

    assert done.state is JobState.FAILED
    (error,) = done.errors
    # One attempt: not "…; gave up after 5 attempts".
    assert (error.source, error.message) == (
        "https://wiki.example/ups",
        "this retrieval service does not fetch URLs",
    )
