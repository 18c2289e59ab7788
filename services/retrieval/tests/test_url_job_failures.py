"""Which failures of a URL job's document are tried again, over a real LanceDB and a real HTTP
server on loopback: one that no later attempt can pass fails at its first attempt, and a busy
server's Retry-After is waited for, up to the longest wait of a job."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import JobState
from bruno_retrieval.jobs.retries import DocumentRetries
from bruno_testing.website import Page, Website

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


# --- a busy server's Retry-After --------------------------------------------------------------

# Waits as short as the back-off can be, up to 5 s: a wait the server asked for shows in the log.
PATIENT = DocumentRetries(attempts=5, first_wait_seconds=0.01, max_wait_seconds=5)
NOTES = Page(b"# Notes\n\nThe NAS wakes at 06:00 sharp.", "text/markdown")


@pytest.fixture
def url_service(
    make_settings: Callable[..., RetrievalSettings],
    embedder: FakeEmbedder,
    make_job_service: type[JobService],
) -> JobService:
    settings = make_settings(fetch_allowed_networks=frozenset({"127.0.0.1/32"}))
    return make_job_service(settings, embedder, fetching=True)


def waits_logged(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        getattr(record, "wait_seconds", math.nan)
        for record in caplog.records
        if record.getMessage() == "a job's document failed transiently; trying again"
    ]


async def test_a_url_answered_429_is_fetched_again_no_sooner_than_its_retry_after(
    url_service: JobService, caplog: pytest.LogCaptureFixture
) -> None:
    busy = Page(b"", "text/plain", 429, {"Retry-After": "1"})
    await url_service.start(PATIENT)
    try:
        with Website({"/notes.md": [busy, NOTES]}) as site, caplog.at_level(logging.WARNING):
            done = await url_service.finished(await url_service.submit_urls(site.url("/notes.md")))
    finally:
        await url_service.close()

    assert (done.state, done.documents_done) == (JobState.SUCCEEDED, 1)
    assert [path for path, _ in site.requests] == ["/notes.md", "/notes.md"]
    # Its back-off alone would have been 0.01 to 0.02 s.
    assert waits_logged(caplog) == [1.0]


async def test_a_url_whose_retry_after_is_longer_than_a_job_waits_fails_at_once_saying_so(
    url_service: JobService, caplog: pytest.LogCaptureFixture
) -> None:
    an_hour_on = formatdate(time.time() + 3600, usegmt=True)
    down = Page(b"", "text/plain", 503, {"Retry-After": an_hour_on})
    await url_service.start(PATIENT)
    try:
        with Website({"/notes.md": [down, NOTES]}) as site:
            done = await url_service.finished(await url_service.submit_urls(site.url("/notes.md")))
    finally:
        await url_service.close()

    assert done.state is JobState.FAILED
    (error,) = done.errors
    assert re.fullmatch(
        r"answered 503 Service Unavailable and asked to be asked again in 3[56]\d\d s, longer "
        r"than a job waits \(5 s\): submit it again later; gave up after 1 attempt",
        error.message,
    ), error.message
    assert len(site.requests) == 1
    assert waits_logged(caplog) == []
