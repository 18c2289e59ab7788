"""An ingest job's document that fails transiently (the embedding service late or unavailable)
is tried again, whole, a bounded number of times, over a real LanceDB; a permanent failure is
not, and a cancel ends the wait for the next attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from bruno.embedding.v1 import embedding_pb2
from bruno_core import DeadlineExceeded, InvalidInput
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import JobState, StagedDocument
from bruno_retrieval.jobs.retries import DocumentRetries
from bruno_retrieval.knowledge import Embedded

if TYPE_CHECKING:
    from conftest import FakeEmbedder, JobService

MakeSettings = Callable[..., RetrievalSettings]
QUICK = DocumentRetries(attempts=3, first_wait_seconds=0.01, max_wait_seconds=0.05)
TIMEOUT = "the embedding service did not answer in time"


def document(name: str) -> StagedDocument:
    return StagedDocument(
        position=0,
        document_id=name,
        title=name,
        source=name,
        text=f"# {name}\n\nThe notes of {name} about backups.",
    )


class Failing:
    """Makes the embedder fail the documents whose text names ``name``, ``times`` times (or
    always), with ``error``; counts those calls and signals the first."""

    def __init__(
        self,
        embedder: FakeEmbedder,
        monkeypatch: pytest.MonkeyPatch,
        name: str,
        *,
        times: int | None = None,
        error: Callable[[], Exception] = lambda: DeadlineExceeded(TIMEOUT),
    ) -> None:
        self.calls = 0
        self.failed_once = asyncio.Event()
        embed = embedder.embed

        async def failing(
            texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
        ) -> Embedded:
            if input_type == embedding_pb2.INPUT_TYPE_DOCUMENT and any(name in t for t in texts):
                self.calls += 1
                if times is None or self.calls <= times:
                    self.failed_once.set()
                    raise error()
            return await embed(texts, input_type, model)

        monkeypatch.setattr(embedder, "embed", failing)


@pytest.fixture
async def service(
    make_settings: MakeSettings, embedder: FakeEmbedder, make_job_service: type[JobService]
) -> AsyncIterator[JobService]:
    """Not started: each test starts it with its retries, after setting its failures."""
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    running = make_job_service(settings, embedder)
    yield running
    await running.close()


def retries_counted() -> float:
    return (
        REGISTRY.get_sample_value("bruno_retrieval_job_document_retries_total", {"kind": "ingest"})
        or 0.0
    )


async def test_a_document_that_times_out_twice_is_committed_once_by_its_third_attempt(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Failing(service.embedder, monkeypatch, "slow.md", times=2)
    await service.start(QUICK)
    before = retries_counted()

    done = await service.finished(await service.submit(document("a.md"), document("slow.md")))

    assert (done.state, done.documents_done, done.documents_failed) == (JobState.SUCCEEDED, 2, 0)
    assert slow.calls == 3
    assert await service.document_ids() == ["a.md", "slow.md"]
    assert retries_counted() == before + 2


async def test_a_document_that_always_times_out_fails_after_its_attempts_while_the_rest_commit(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = Failing(service.embedder, monkeypatch, "stuck.md")
    await service.start(QUICK)

    done = await service.finished(
        await service.submit(document("a.md"), document("stuck.md"), document("c.md"))
    )

    assert (done.state, done.documents_done, done.documents_failed) == (JobState.FAILED, 2, 1)
    assert [(e.document_id, e.message) for e in done.errors] == [
        ("stuck.md", f"{TIMEOUT}; gave up after 3 attempts")
    ]
    assert stuck.calls == 3
    assert await service.document_ids() == ["a.md", "c.md"]


async def test_a_commit_that_keeps_losing_races_is_tried_again_then_fails_saying_so(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LanceDB raises its retryable commit conflict as a plain RuntimeError.
    raced = Failing(
        service.embedder,
        monkeypatch,
        "raced.md",
        error=lambda: RuntimeError("Retryable commit conflict for version 7: please retry"),
    )
    await service.start(QUICK)

    done = await service.finished(await service.submit(document("raced.md")))

    assert [(e.document_id, e.message) for e in done.errors] == [
        ("raced.md", "the collection's table kept losing commit races; gave up after 3 attempts")
    ]
    assert raced.calls == 3


async def test_a_cancel_during_the_back_off_ends_the_job_without_another_attempt(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = Failing(service.embedder, monkeypatch, "stuck.md")
    # A back-off far longer than the test waits: only the cancel can end it.
    await service.start(DocumentRetries(attempts=5, first_wait_seconds=600, max_wait_seconds=600))
    job = await service.submit(document("a.md"), document("stuck.md"))
    await asyncio.wait_for(stuck.failed_once.wait(), 10)

    await service.runner.cancel(job.id, owner="ann")
    done = await service.finished(job)

    assert (done.state, done.reason) == (JobState.CANCELLED, "cancelled")
    assert [(e.document_id, e.message) for e in done.errors] == [
        ("stuck.md", f"{TIMEOUT}; the job was cancelled after 1 attempt")
    ]
    assert stuck.calls == 1
    assert await service.document_ids() == ["a.md"]


async def test_a_permanent_failure_is_not_tried_again(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = Failing(
        service.embedder,
        monkeypatch,
        "bad.md",
        error=lambda: InvalidInput("the embedding model refused this text"),
    )
    await service.start(QUICK)
    before = retries_counted()

    done = await service.finished(await service.submit(document("bad.md"), document("b.md")))

    assert [(e.document_id, e.message) for e in done.errors] == [
        ("bad.md", "the embedding model refused this text")
    ]
    assert refused.calls == 1
    assert retries_counted() == before
    assert await service.document_ids() == ["b.md"]
