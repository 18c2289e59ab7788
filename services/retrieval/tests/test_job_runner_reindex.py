"""Ingest jobs and a reindex of their collection, over a real LanceDB: an ingest of the new model
during the reindex becomes a job queued behind it that commits after the switch, and fails
visibly, per document, when the collection keeps its old model (a cancel, a restart); the
other collections' jobs go on meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import Job, JobState, StagedDocument
from bruno_retrieval.knowledge import SearchMode

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings, JobService

MakeSettings = Callable[..., RetrievalSettings]
# What ``default`` holds before the reindex, embedded by the embedder's first model.
STORED = ["stored-0.md", "stored-1.md"]
# A job that waits for a held embedding would wait forever: this bounds the hang, it measures
# nothing.
_HANG_GUARD_SECONDS = 30


def document(name: str, text: str) -> StagedDocument:
    return StagedDocument(position=0, document_id=name, title=name, source=name, text=text)


async def ingest_during_the_reindex(service: JobService, name: str, text: str) -> Job:
    """What ``POST /api/v1/documents`` asks of retrieval: the document, or its job."""
    answer = await service.runner.ingest_or_job(
        "default", "ann", document(name, text), wait_seconds=_HANG_GUARD_SECONDS
    )
    assert isinstance(answer, Job), answer
    return answer


@pytest.fixture
def settings(make_settings: MakeSettings) -> RetrievalSettings:
    return make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)


async def reindex_held(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> tuple[Job, asyncio.Event]:
    """Store :data:`STORED`, switch the embedding service to another model and start reindexing
    ``default``, held while it copies the stored notes; the reindex job and its release."""
    stored = [document(name, f"Velero stored note {name}.") for name in STORED]
    job = await service.submit(*stored)
    assert (await service.until_finished(job)).state is JobState.SUCCEEDED
    service.embedder.model_name, service.embedder.dimension = "model-b", 32
    copying, released = hold_embeddings(service.embedder, marker="Velero stored")
    reindex = await service.runner.start_reindex("default", "admin")
    await asyncio.wait_for(copying.wait(), _HANG_GUARD_SECONDS)
    return reindex, released


@pytest.fixture
async def service(
    settings: RetrievalSettings, embedder: FakeEmbedder, make_job_service: type[JobService]
) -> AsyncIterator[JobService]:
    async with make_job_service(settings, embedder) as running:
        yield running


async def test_an_ingest_during_a_reindex_answers_a_queued_job_that_commits_after_the_switch(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    reindex, released = await reindex_held(service, hold_embeddings)

    queued = await ingest_during_the_reindex(service, "fresh.md", "Restic fresh note.")

    assert (queued.state, queued.owner, queued.documents_total) == (JobState.QUEUED, "ann", 1)
    assert await service.document_ids() == STORED  # not committed: nothing acknowledged it
    released.set()
    done = await service.until_finished(queued)
    assert (done.state, done.documents_done, done.errors) == (JobState.SUCCEEDED, 1, ())
    assert (await service.until_finished(reindex)).state is JobState.SUCCEEDED
    info = await service.knowledge.collection_info("default")
    assert (info.embedding_model, info.documents) == ("model-b", 3)
    found = await service.knowledge.search("default", "restic fresh", mode=SearchMode.VECTOR)
    assert found.hits[0].document_id == "fresh.md"


async def test_an_ingest_job_behind_a_cancelled_reindex_fails_visibly_with_the_model_conflict(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    reindex, released = await reindex_held(service, hold_embeddings)
    before = await service.knowledge.collection_info("default")
    queued = await ingest_during_the_reindex(service, "fresh.md", "Restic fresh note.")

    await service.runner.cancel(reindex.id, owner="admin")
    released.set()

    assert (await service.until_finished(reindex)).state is JobState.CANCELLED
    failed = await service.until_finished(queued)
    assert (failed.state, failed.reason) == (JobState.FAILED, "1 of 1 documents failed")
    [error] = failed.errors
    assert error.document_id == "fresh.md"
    assert "was built with hash-bow" in error.message
    assert error.message.endswith("to rebuild it with the current model; then submit it again")
    # Nothing of it written: the collection is as it was before the reindex.
    assert await service.knowledge.collection_info("default") == before
    assert await service.document_ids() == STORED


async def test_a_restart_mid_reindex_fails_the_reindex_and_the_ingest_queued_behind_it_visibly(
    settings: RetrievalSettings,
    embedder: FakeEmbedder,
    hold_embeddings: HoldEmbeddings,
    make_job_service: type[JobService],
) -> None:
    async with make_job_service(settings, embedder) as first:
        reindex, released = await reindex_held(first, hold_embeddings)
        queued = await ingest_during_the_reindex(first, "fresh.md", "Restic fresh note.")
        # The process dies mid-way: the runner stops, the reindex goes no further.
        await first.runner.stop()
        embedder.failing = True
        released.set()
        await first.knowledge.wait_for_background()
    embedder.failing = False

    async with make_job_service(settings, embedder) as restarted:
        interrupted = await restarted.jobs.get(reindex.id)
        assert interrupted.state is JobState.FAILED
        assert interrupted.reason.startswith("retrieval restarted during the reindex")
        failed = await restarted.until_finished(queued)
        assert failed.state is JobState.FAILED
        [error] = failed.errors
        assert "was built with hash-bow" in error.message
        assert "then submit it again" in error.message
        assert await restarted.document_ids() == STORED


async def test_another_collections_ingest_job_runs_while_a_reindex_holds_its_own(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    _, released = await reindex_held(service, hold_embeddings)
    waiting = await service.submit(document("fresh.md", "Restic fresh note."))
    other = await service.submit(
        document("elsewhere.md", "Restic note elsewhere."), collection="other"
    )

    done = await service.until_finished(other)  # the older job of ``default`` does not block it

    assert (done.state, await service.document_ids("other")) == (
        JobState.SUCCEEDED,
        ["elsewhere.md"],
    )
    assert (await service.jobs.get(waiting.id)).state is JobState.QUEUED
    released.set()
    assert (await service.until_finished(waiting)).state is JobState.SUCCEEDED
    assert await service.document_ids() == ["fresh.md", *STORED]


async def test_an_ingest_that_outlasted_its_wait_and_met_a_reindex_waits_for_the_switch(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    # The ingest's embedding, of the new model, is slow: it is still under way when the
    # reindex starts, and comes to its commit while the reindex copies.
    await service.submit(document("a.md", "Velero stored a."))
    await service.runner.wait_until_idle()
    service.embedder.model_name, service.embedder.dimension = "model-b", 32
    embedding, slow_released = hold_embeddings(service.embedder, marker="Restic")
    adopted = await service.runner.ingest_or_job(
        "default", "ann", document("fresh.md", "Restic fresh note."), wait_seconds=0.01
    )
    assert isinstance(adopted, Job)
    assert adopted.state is JobState.RUNNING
    await asyncio.wait_for(embedding.wait(), _HANG_GUARD_SECONDS)
    copying, copy_released = hold_embeddings(service.embedder, marker="Velero stored")
    reindex = await service.runner.start_reindex("default", "admin")
    await asyncio.wait_for(copying.wait(), _HANG_GUARD_SECONDS)

    slow_released.set()
    # Queued again, or (wrongly) finished.
    requeued = await service.until(adopted, lambda found: found.state is not JobState.RUNNING)

    assert requeued.state is JobState.QUEUED
    assert (requeued.documents_done, requeued.documents_failed) == (0, 0)
    assert "fresh.md" not in await service.document_ids()
    copy_released.set()
    assert (await service.until_finished(reindex)).state is JobState.SUCCEEDED
    done = await service.until_finished(adopted)
    assert (done.state, done.documents_done) == (JobState.SUCCEEDED, 1)
    assert await service.document_ids() == ["a.md", "fresh.md"]


async def test_a_running_job_that_meets_a_reindex_goes_back_to_the_queue_and_counts_once(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    await service.submit(document("a.md", "Velero stored a."))
    await service.runner.wait_until_idle()
    service.embedder.model_name, service.embedder.dimension = "model-b", 32
    embedding, slow_released = hold_embeddings(service.embedder, marker="Restic")
    # In one batch: the first document meets the reindex, the second fails on its own.
    job = await service.submit(
        document("fresh.md", "Restic fresh note."), document("blank.md", " ")
    )
    await asyncio.wait_for(embedding.wait(), _HANG_GUARD_SECONDS)  # started, before the reindex
    copying, copy_released = hold_embeddings(service.embedder, marker="Velero stored")
    reindex = await service.runner.start_reindex("default", "admin")
    await asyncio.wait_for(copying.wait(), _HANG_GUARD_SECONDS)

    slow_released.set()
    requeued = await service.until(job, lambda found: found.state is not JobState.RUNNING)

    # It goes on from the document that met the reindex: nothing after it counted yet.
    assert (requeued.state, requeued.next_position, requeued.documents_failed) == (
        JobState.QUEUED,
        0,
        0,
    )
    copy_released.set()
    assert (await service.until_finished(reindex)).state is JobState.SUCCEEDED
    done = await service.until_finished(job)
    assert (done.documents_done, done.documents_failed) == (1, 1)
    assert [error.document_id for error in done.errors] == ["blank.md"]
    assert await service.document_ids() == ["a.md", "fresh.md"]
