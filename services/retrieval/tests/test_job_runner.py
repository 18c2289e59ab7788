"""Ingest and reindex jobs over a real LanceDB: progress, failures one document at a time,
cancel, restarts, owners and listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from bruno_core import InvalidInput, LimitExceeded, NotFound
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import DocumentError, Job, JobState, StagedDocument
from bruno_retrieval.jobs.runner import IN_FLIGHT
from bruno_retrieval.jobs.store import DOCUMENTS_TABLE
from bruno_retrieval.knowledge import IngestResult

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings, JobService

MakeSettings = Callable[..., RetrievalSettings]


def document(name: str, text: str | None = None) -> StagedDocument:
    return StagedDocument(
        position=0,
        document_id=name,
        title=name,
        source=name,
        text=text if text is not None else f"# {name}\n\nThe notes of {name} about backups.",
    )


@pytest.fixture
def settings(make_settings: MakeSettings) -> RetrievalSettings:
    return make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)


@pytest.fixture
async def service(
    settings: RetrievalSettings, embedder: FakeEmbedder, make_job_service: type[JobService]
) -> AsyncIterator[JobService]:
    async with make_job_service(settings, embedder) as running:
        yield running


async def test_an_ingest_job_commits_every_document_and_counts_its_chunks(
    service: JobService,
) -> None:
    job = await service.submit(document("a.md"), document("b.md"), document("c.md"))
    assert (job.state, job.documents_total) == (JobState.QUEUED, 3)

    done = await service.finished(job)

    assert done.state is JobState.SUCCEEDED
    assert (done.documents_done, done.documents_failed) == (3, 0)
    assert done.chunks_written > 0
    assert done.started_at is not None
    assert done.finished_at is not None
    assert await service.document_ids() == ["a.md", "b.md", "c.md"]


async def test_a_document_ingested_again_unchanged_counts_as_done_with_no_chunks_written(
    service: JobService,
) -> None:
    await service.finished(await service.submit(document("a.md")))

    again = await service.finished(await service.submit(document("a.md")))

    assert (again.state, again.documents_done, again.chunks_written) == (JobState.SUCCEEDED, 1, 0)


async def test_a_bad_document_fails_alone_while_the_rest_commit(service: JobService) -> None:
    job = await service.submit(
        document("a.md"),
        document("blank.md", text="   "),
        DocumentError("scan.pdf", "scan.pdf", "scan.pdf has no text layer"),
        document("c.md"),
    )
    assert (job.documents_total, job.documents_failed) == (4, 1)

    done = await service.finished(job)

    assert done.state is JobState.FAILED
    assert (done.documents_done, done.documents_failed) == (2, 2)
    assert done.reason == "2 of 4 documents failed"
    assert [(e.document_id, e.message) for e in done.errors] == [
        ("scan.pdf", "scan.pdf has no text layer"),
        ("blank.md", "text must not be empty"),
    ]
    assert await service.document_ids() == ["a.md", "c.md"]


async def test_progress_advances_a_few_documents_at_a_time(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    holding, released = hold_embeddings(service.embedder, queries_only=False)
    job = await service.submit(*[document(f"{n}.md") for n in range(IN_FLIGHT + 1)])
    await asyncio.wait_for(holding.wait(), 10)
    running = await service.jobs.get(job.id)
    assert (running.state, running.documents_done) == (JobState.RUNNING, 0)

    # The next document's embedding is held in its turn, so the job stops after the first few.
    holding_next, released_next = hold_embeddings(service.embedder, queries_only=False)
    released.set()
    await asyncio.wait_for(holding_next.wait(), 10)

    moved = await service.jobs.get(job.id)
    assert (moved.state, moved.documents_done) == (JobState.RUNNING, IN_FLIGHT)
    released_next.set()
    done = await service.finished(job)
    assert (done.state, done.documents_done) == (JobState.SUCCEEDED, IN_FLIGHT + 1)


async def test_cancel_stops_after_the_documents_in_flight_and_keeps_what_was_committed(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    holding, released = hold_embeddings(service.embedder, queries_only=False)
    names = [f"{n}.md" for n in range(IN_FLIGHT + 2)]
    job = await service.submit(*map(document, names))
    await asyncio.wait_for(holding.wait(), 10)

    asked = await service.runner.cancel(job.id, owner="ann")
    assert (asked.state, asked.cancel_requested) == (JobState.RUNNING, True)
    released.set()
    done = await service.finished(job)

    assert (done.state, done.reason) == (JobState.CANCELLED, "cancelled")
    assert done.documents_done == IN_FLIGHT
    assert await service.document_ids() == names[:IN_FLIGHT]


async def test_cancelling_a_queued_job_ends_it_at_once_and_a_finished_one_stays_as_it_was(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    holding, released = hold_embeddings(service.embedder, queries_only=False)
    first = await service.submit(document("a.md"))
    await asyncio.wait_for(holding.wait(), 10)
    second = await service.submit(document("b.md"))

    cancelled = await service.runner.cancel(second.id, owner="ann")
    assert cancelled.state is JobState.CANCELLED

    released.set()
    done = await service.finished(first)
    assert (await service.runner.cancel(first.id)).state is done.state is JobState.SUCCEEDED
    assert await service.document_ids() == ["a.md"]


async def test_a_job_interrupted_by_a_restart_resumes_where_it_stopped(
    settings: RetrievalSettings,
    embedder: FakeEmbedder,
    hold_embeddings: HoldEmbeddings,
    make_job_service: type[JobService],
) -> None:
    documents = [document(f"doc-{n}.md") for n in range(4)]
    async with make_job_service(settings, embedder) as first:
        job = await first.submit(*documents)
        await first.finished(job)  # let it run to the end once, then make it look interrupted
    async with make_job_service(settings, embedder) as service:
        holding, released = hold_embeddings(embedder, queries_only=False)
        job = await service.submit(*[document(f"new-{n}.md") for n in range(3)])
        await asyncio.wait_for(holding.wait(), 10)
        # Stopping the runner abandons the document in flight: the job stays running.
        await service.runner.stop()
        released.set()
        assert (await service.jobs.get(job.id)).state is JobState.RUNNING

    async with make_job_service(settings, embedder) as restarted:
        done = await restarted.finished(job)
        assert (done.state, done.resumes) == (JobState.SUCCEEDED, 1)
        assert (done.documents_done, done.documents_total) == (3, 3)
        assert [d for d in await restarted.document_ids() if d.startswith("new")] == [
            "new-0.md",
            "new-1.md",
            "new-2.md",
        ]
        staged = await restarted.knowledge._catalog.db.open_table(DOCUMENTS_TABLE)
        assert await staged.count_rows() == 0


async def test_a_reindex_interrupted_by_a_restart_is_failed_with_the_reason(
    settings: RetrievalSettings,
    embedder: FakeEmbedder,
    hold_embeddings: HoldEmbeddings,
    make_job_service: type[JobService],
) -> None:
    async with make_job_service(settings, embedder) as service:
        await service.finished(await service.submit(document("a.md")))
        holding, released = hold_embeddings(embedder, queries_only=False)
        job = await service.runner.start_reindex("default", "admin")
        await asyncio.wait_for(holding.wait(), 10)
        await service.runner.stop()
        released.set()
        await service.knowledge.wait_for_background()

    async with make_job_service(settings, embedder) as restarted:
        failed = await restarted.jobs.get(job.id)
        assert failed.state is JobState.FAILED
        assert failed.reason.startswith("retrieval restarted during the reindex")


async def test_a_second_reindex_of_a_collection_joins_the_running_one(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    await service.finished(await service.submit(document("a.md"), document("b.md")))
    holding, released = hold_embeddings(service.embedder, queries_only=False)

    first = await service.runner.start_reindex("default", "admin")
    await asyncio.wait_for(holding.wait(), 10)
    second = await service.runner.start_reindex("default", "other-admin")
    assert second.id == first.id

    released.set()
    done = await service.finished(first)
    assert (done.state, done.documents_done) == (JobState.SUCCEEDED, 2)
    assert done.chunks_written > 0
    third = await service.runner.start_reindex("default", "admin")
    assert third.id != first.id


async def test_a_cancelled_reindex_leaves_the_collection_as_it_was(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    await service.finished(await service.submit(document("a.md")))
    before = await service.knowledge.collection_info("default")
    holding, released = hold_embeddings(service.embedder, queries_only=False)
    job = await service.runner.start_reindex("default", "admin")
    await asyncio.wait_for(holding.wait(), 10)

    await service.runner.cancel(job.id)
    released.set()

    assert (await service.finished(job)).state is JobState.CANCELLED
    assert await service.knowledge.collection_info("default") == before


async def test_reindexing_a_collection_that_does_not_exist_is_not_found(
    service: JobService,
) -> None:
    with pytest.raises(NotFound):
        await service.runner.start_reindex("nowhere", "admin")


async def test_another_owners_job_is_not_found(service: JobService) -> None:
    job = await service.submit(document("a.md"), owner="ann")

    with pytest.raises(NotFound):
        await service.jobs.get(job.id, owner="bob")
    with pytest.raises(NotFound):
        await service.runner.cancel(job.id, owner="bob")
    with pytest.raises(NotFound):
        await service.jobs.get("../" + job.id)
    assert (await service.jobs.get(job.id, owner="ann")).id == job.id


async def test_jobs_are_listed_newest_first_in_pages_of_the_owners_collections(
    service: JobService,
) -> None:
    submitted = [await service.submit(document(f"{n}.md"), owner="ann") for n in range(3)]
    await service.submit(document("bob.md"), owner="bob")
    await service.submit(document("p.md"), collection="private")

    first, cursor = await service.jobs.page(owner="ann", collections=["default"], limit=2)
    rest, end = await service.jobs.page(
        owner="ann", collections=["default"], limit=2, cursor=cursor
    )

    newest_first = [job.id for job in reversed(submitted)]
    assert [job.id for job in [*first, *rest]] == newest_first
    assert end == ""


async def test_a_submission_over_the_document_limit_leaves_nothing_behind(
    make_settings: MakeSettings, embedder: FakeEmbedder, make_job_service: type[JobService]
) -> None:
    settings = make_settings(job_max_documents=40)
    async with make_job_service(settings, embedder) as service:
        with pytest.raises(LimitExceeded):
            await service.submit(*[document(f"{n}.md") for n in range(41)])

        listed, _ = await service.jobs.page()
        staged = await service.knowledge._catalog.db.open_table(DOCUMENTS_TABLE)
        assert (listed, await staged.count_rows()) == ([], 0)


async def test_an_ingest_done_within_its_wait_answers_its_result_and_makes_no_job(
    service: JobService,
) -> None:
    result = await service.runner.ingest_or_job("default", "ann", document("a.md"), wait_seconds=10)

    assert isinstance(result, IngestResult)
    assert result.document_id == "a.md"
    assert await service.jobs.page() == ([], "")


async def test_an_ingest_refused_within_its_wait_raises_and_makes_no_job(
    service: JobService,
) -> None:
    with pytest.raises(InvalidInput):
        await service.runner.ingest_or_job(
            "default", "ann", document("blank.md", text=" "), wait_seconds=10
        )

    assert await service.jobs.page() == ([], "")


async def test_an_ingest_that_outlasts_its_wait_becomes_a_job_that_commits_it(
    service: JobService, hold_embeddings: HoldEmbeddings
) -> None:
    _, released = hold_embeddings(service.embedder, queries_only=False)

    job = await service.runner.ingest_or_job(
        "default", "ann", document("slow.md"), wait_seconds=0.05
    )

    assert isinstance(job, Job)
    assert (job.state, job.owner, job.documents_total) == (JobState.RUNNING, "ann", 1)
    released.set()
    done = await service.finished(job)
    assert (done.state, done.documents_done) == (JobState.SUCCEEDED, 1)
    assert done.chunks_written > 0
    assert await service.document_ids() == ["slow.md"]


async def test_an_ingest_that_became_a_job_is_resumed_after_a_restart(
    settings: RetrievalSettings,
    embedder: FakeEmbedder,
    hold_embeddings: HoldEmbeddings,
    make_job_service: type[JobService],
) -> None:
    async with make_job_service(settings, embedder) as service:
        _, released = hold_embeddings(embedder, queries_only=False)
        job = await service.runner.ingest_or_job(
            "default", "ann", document("slow.md"), wait_seconds=0.05
        )
        # Stopping abandons the ingest in flight, unwritten: the job stays running.
        await service.runner.stop()
        released.set()

    async with make_job_service(settings, embedder) as restarted:
        assert isinstance(job, Job)
        done = await restarted.finished(job)
        assert (done.state, done.resumes, done.documents_done) == (JobState.SUCCEEDED, 1, 1)
        assert await restarted.document_ids() == ["slow.md"]


async def test_job_progress_is_counted_on_the_metrics(service: JobService) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    done_before = sample("bruno_retrieval_job_documents_total", kind="ingest", outcome="done")
    failed_before = sample("bruno_retrieval_job_documents_total", kind="ingest", outcome="failed")
    chunks_before = sample("bruno_retrieval_job_chunks_written_total", kind="ingest")
    succeeded_before = sample("bruno_retrieval_jobs", kind="ingest", state="succeeded")

    job = await service.submit(document("a.md"), document("b.md"), document("c.md", text=" "))
    done = await service.finished(job)

    assert sample("bruno_retrieval_job_documents_total", kind="ingest", outcome="done") == (
        done_before + 2
    )
    assert sample("bruno_retrieval_job_documents_total", kind="ingest", outcome="failed") == (
        failed_before + 1
    )
    assert sample("bruno_retrieval_job_chunks_written_total", kind="ingest") == (
        chunks_before + done.chunks_written
    )
    assert sample("bruno_retrieval_jobs", kind="ingest", state="failed") >= 1
    assert sample("bruno_retrieval_jobs", kind="ingest", state="succeeded") == succeeded_before
