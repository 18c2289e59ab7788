"""Which failures of a URL job's document are tried again, over a real LanceDB: one that no
later attempt can pass fails at its first attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import JobRunner, JobState, JobStore, StagedDocument
from bruno_retrieval.jobs.retries import DocumentRetries
from bruno_retrieval.knowledge import KnowledgeStore

if TYPE_CHECKING:
    from conftest import FakeEmbedder

# Waits short enough that a wrongly retried document shows in its error, not in the test's time.
QUICK = DocumentRetries(attempts=5, first_wait_seconds=0.01, max_wait_seconds=0.01)


async def one(url: str) -> AsyncIterator[StagedDocument]:
    yield StagedDocument.to_fetch(url)


async def test_a_runner_that_does_not_fetch_urls_fails_the_url_at_once(
    make_settings: Callable[..., RetrievalSettings], embedder: FakeEmbedder
) -> None:
    settings = make_settings()
    knowledge = await KnowledgeStore.open(settings, embedder)
    jobs = await JobStore.open(settings)
    runner = JobRunner(jobs, knowledge, None, retries=QUICK)  # no fetcher: a configuration
    await runner.start()
    try:
        job = await runner.submit("default", "ann", one("https://wiki.example/ups"))
        await asyncio.wait_for(runner.wait_until_idle(), 30)
        done = await jobs.get(job.id)
    finally:
        await runner.stop()
        jobs.close()
        knowledge.close()

    assert done.state is JobState.FAILED
    (error,) = done.errors
    # One attempt: not "…; gave up after 5 attempts".
    assert (error.source, error.message) == (
        "https://wiki.example/ups",
        "this retrieval service does not fetch URLs",
    )
