"""Runs jobs: ingest jobs one after another, oldest first, a few documents at a time
(:data:`IN_FLIGHT`) through the knowledge store's ingest (each document committed whole or not
at all), and reindex jobs, one per collection.

    runner = JobRunner(jobs, knowledge, fetcher)
    await runner.start()          # resumes what a restart interrupted, then runs the queue
    job = await runner.submit("default", "ann", documents)
    job = await runner.cancel(job.id, owner="ann")
    await runner.stop()

A document of a URL job is fetched and read when the job gets to it (``fetcher``,
:mod:`bruno_retrieval.fetching`), then ingested like any other under the URL asked for (where
a redirect ended is its ``fetched_url`` metadata); one that cannot be fetched or read fails
alone, with the reason in the job's errors. A restart fetches it again.

Ingest jobs yield to interactive work where the cost is: the embedding service serves search
queries ahead of document batches. A document that fails transiently (the embedding service
late or unavailable) is ingested again after a back-off, a few times (:mod:`.retries`). A
cancel is honoured between documents: the documents in flight are committed whole (or not at
all, if they fail; one waiting to be tried again is not) and those committed before stay.

When retrieval starts, a job it finds running was interrupted: an ingest job goes back to the
queue with its ``resumes`` counted and carries on from its first document not accounted for; a
reindex job is failed with the reason (the collection is left as it was: a reindex switches
over in one step at its end), to be started again.

An ingest job waits while its collection is reindexed; the other collections' jobs go on. A
reindex moves a collection to the embedding service's default model; if the service no longer
serves the old one, a document cannot be embedded for the old table
(:class:`.reindex.CollectionReindexing`): the job runs after the switch and commits with the new
model. If the reindex is cancelled, fails or is cut short by
a restart, the job runs against the old table and each of its documents fails visibly with the
model conflict (reindex again, then submit them again). A synchronous ingest refused for a
reindex (:meth:`JobRunner.ingest_or_job`) becomes such a job, so a write acknowledged as
committed is never one a reindex could lose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from datetime import UTC, datetime

from bruno_core import BrunoError, Conflict, Internal
from bruno_core.contract import MAX_METADATA_VALUE_CHARS, MAX_TITLE_CHARS
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.fetching import UrlFetcher
from bruno_retrieval.jobs import metrics
from bruno_retrieval.jobs.model import DocumentError, Job, JobKind, JobState, StagedDocument
from bruno_retrieval.jobs.retries import DocumentRetries, with_retries
from bruno_retrieval.jobs.store import JobStore, new_job_id
from bruno_retrieval.knowledge import KnowledgeStore
from bruno_retrieval.knowledge.pages import TextSegment
from bruno_retrieval.knowledge.reindex import CollectionReindexing, ReindexCancelled
from bruno_retrieval.knowledge.results import IngestOutcome, IngestResult

log = logging.getLogger(__name__)

# Documents of a job ingested at once: their commits go together (the writer's group commit)
# and the job's record is written once for all of them, so a job of small documents is not
# one table version per document in two tables. Four, as the upload route sends them.
IN_FLIGHT = 4
#: The metadata key of a URL job's document that holds where a redirect ended.
FETCHED_URL_KEY = "fetched_url"
_INTERRUPTED_REINDEX = (
    "retrieval restarted during the reindex; the collection was left as it was: start it again"
)


def _now() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    """Runs the jobs of one :class:`JobStore` against one :class:`KnowledgeStore`."""

    def __init__(
        self,
        jobs: JobStore,
        knowledge: KnowledgeStore,
        fetcher: UrlFetcher | None = None,
        *,
        retries: DocumentRetries | None = None,
    ) -> None:
        self._jobs = jobs
        self._knowledge = knowledge
        self._fetcher = fetcher
        self._retries = retries or DocumentRetries()
        self._tasks = BackgroundTasks()
        self._queued = asyncio.Event()
        self._reindex_lock = asyncio.Lock()
        # A running job's stop, set by its cancel: ends a reindex, or an ingest's back-off.
        self._stops: dict[str, asyncio.Event] = {}
        # The jobs held back for a reindex may run once it ends, however it ends.
        knowledge.when_reindex_ends(self._queued.set)

    async def start(self) -> None:
        """Settle the jobs a restart interrupted, then run the queue in the background."""
        for job in await self._jobs.unfinished():
            await self._jobs.update(job.id, _after_restart)
        self._tasks.spawn(self._run_queue())

    async def stop(self) -> None:
        """Stop between steps: an ingest in flight is abandoned before its commit or after it,
        never half-written; the job stays running and is resumed at the next start."""
        self._tasks.cancel()
        await self._tasks.wait()

    async def submit(
        self, collection: str, owner: str, documents: AsyncIterable[StagedDocument | DocumentError]
    ) -> Job:
        job = await self._jobs.submit(collection, owner, documents)
        self._queued.set()
        return job

    async def cancel(self, job_id: str, *, owner: str = "") -> Job:
        """Cancel a queued job at once, a running one after its document in flight; a finished
        job is returned as it is."""
        await self._jobs.get(job_id, owner=owner)  # NotFound before anything changes
        job = await self._jobs.update(job_id, _cancel_requested)
        if job.cancel_requested and (stop := self._stops.get(job_id)) is not None:
            stop.set()
        return job

    async def start_reindex(self, collection: str, owner: str) -> Job:
        """Start reindexing ``collection``, or return the reindex of it already running
        (whoever started it). NotFound for a collection that does not exist."""
        async with self._reindex_lock:
            for job in await self._jobs.unfinished():
                if job.kind is JobKind.REINDEX and job.collection == collection:
                    return job
            info = await self._knowledge.collection_info(collection)
            now = _now()
            job = Job(
                id=new_job_id(),
                kind=JobKind.REINDEX,
                collection=info.name,
                owner=owner,
                state=JobState.RUNNING,
                created_at=now,
                started_at=now,
                documents_total=info.documents,
            )
            await self._jobs.create(job)
            stop = self._stops[job.id] = asyncio.Event()
            self._tasks.spawn(self._run_reindex(job, stop))
        return job

    async def wait_until_idle(self) -> None:
        """Until no job is queued or running (tests, benchmarks)."""
        while True:
            changed = self._jobs.next_change()
            if not await self._jobs.unfinished():
                return
            await changed.wait()

    async def _run_queue(self) -> None:
        while True:
            # Cleared before looking: a submission or a reindex ending from here on wakes it.
            self._queued.clear()
            queued = [
                job
                for job in await self._jobs.unfinished()
                if job.kind is JobKind.INGEST
                and job.state is JobState.QUEUED
                and not self._knowledge.reindexing(job.collection)  # it runs after the switch
            ]
            if not queued:
                await self._queued.wait()
                continue
            try:
                await self._run_ingest(queued[0])
            except Exception as error:  # the job's record failed, not one document: stop it
                log.exception("ingest job failed", extra={"job": queued[0].id})
                await self._fail_quietly(queued[0].id, f"the job could not go on: {error}")

    async def _run_ingest(self, job: Job) -> None:
        stop = self._stops[job.id] = asyncio.Event()  # before it runs: no cancel is missed
        try:
            await self._run_ingest_batches(job, stop)
        finally:
            self._stops.pop(job.id, None)

    async def _run_ingest_batches(self, job: Job, stop: asyncio.Event) -> None:
        job = await self._jobs.update(job.id, _started)
        while job.state is JobState.RUNNING and not job.cancel_requested:
            batch = await self._jobs.staged(job.id, job.next_position, IN_FLIGHT)
            if not batch:
                job = await self._jobs.update(job.id, lambda j: j.finished_by_counts(_now()))
                break
            steps = await asyncio.gather(*(self._ingest(job, document, stop) for document in batch))
            job = await self._jobs.update(job.id, functools.partial(_advanced, steps))
        if job.state is JobState.RUNNING and job.cancel_requested:
            await self._jobs.update(job.id, _cancelled)
        if job.state is JobState.QUEUED:
            log.info("ingest job waits for a reindex", extra={"job": job.id})
            return
        log.info(
            "ingest job ended",
            extra={"job": job.id, "done": job.documents_done, "failed": job.documents_failed},
        )

    async def _ingesting(self, collection: str, document: StagedDocument) -> IngestResult:
        if document.url:
            document = await self._fetched(document)
        return await self._knowledge.ingest(
            collection,
            text=document.text,
            document_id=document.document_id,
            title=document.title,
            source=document.source,
            metadata=document.metadata,
            segments=document.segments,
        )

    async def _fetched(self, document: StagedDocument) -> StagedDocument:
        """``document`` with the title, text and pages of what its URL answered. Its source stays
        the URL asked for (what the user typed and will look for; a redirect's target may be a
        signed URL that expires); where a redirect ended is its metadata's ``fetched_url``
        (left out when longer than a metadata value may be)."""
        if self._fetcher is None:
            # A configuration error: no later attempt can pass, so not Unavailable (retried).
            raise Internal("this retrieval service does not fetch URLs")
        page = await self._fetcher.fetch(document.url)
        metadata = dict(document.metadata)
        if page.url != document.url and len(page.url) <= MAX_METADATA_VALUE_CHARS:
            metadata[FETCHED_URL_KEY] = page.url
        return dataclasses.replace(
            document,
            title=page.document.title[:MAX_TITLE_CHARS],
            metadata=metadata,
            text=page.document.text,
            segments=tuple(
                TextSegment(segment.start, segment.page)
                for segment in page.document.segments
                if segment.page is not None
            ),
        )

    async def _ingest(self, job: Job, document: StagedDocument, stop: asyncio.Event) -> _Step:
        """Ingest one document, again after a transient failure (:mod:`.retries`) until
        ``stop``; the change it makes to the job."""
        ingesting = with_retries(
            lambda: self._ingesting(job.collection, document), stop, self._retries, job.kind
        )
        return await _step_of(job, document, ingesting)

    async def ingest_or_job(
        self, collection: str, owner: str, document: StagedDocument, *, wait_seconds: float
    ) -> IngestResult | Job:
        """Ingest ``document``, answering its result if it is done within ``wait_seconds``,
        else a job of its own that follows it to its end. The ingest runs in a task of its own:
        neither the wait nor the caller giving up stops it. A document refused because its
        collection is being reindexed to its model becomes a job queued behind the reindex."""
        ingesting = self._tasks.spawn(self._ingesting(collection, document))
        await asyncio.wait({ingesting}, timeout=wait_seconds)
        if ingesting.done():
            try:
                return ingesting.result()
            except CollectionReindexing:
                return await self.submit(collection, owner, _alone(document))
        job = await self._jobs.adopt(collection, owner, document)
        self._tasks.spawn(self._follow(job, document, ingesting))
        return job

    async def _follow(
        self, job: Job, document: StagedDocument, ingesting: Awaitable[IngestResult]
    ) -> None:
        """Record the end of an ingest that became ``job`` (or queue it behind a reindex)."""
        step = await _step_of(job, document, ingesting)
        await self._jobs.update(job.id, lambda j: _ended(step(j)))
        if step.waits:
            self._queued.set()

    async def _run_reindex(self, job: Job, stop: asyncio.Event) -> None:
        def progress(chunks: int) -> None:
            self._tasks.spawn(
                self._jobs.update(
                    job.id,
                    lambda j: dataclasses.replace(j, chunks_written=max(j.chunks_written, chunks)),
                )
            )

        rebuilt = self._knowledge.start_reindex(job.collection, stop=stop, progress=progress)
        try:
            # Shielded: stopping the runner must not cut a switch-over in half.
            result = await asyncio.shield(rebuilt)
        except ReindexCancelled:
            await self._jobs.update(job.id, _cancelled)
        except BrunoError as error:
            await self._fail_quietly(job.id, error.detail)
        except Exception:
            log.exception("reindex job failed", extra={"job": job.id})
            await self._fail_quietly(job.id, "the reindex failed; the cause is in its logs")
        else:
            documents, chunks = result.collection.documents, result.collection.chunks
            metrics.JOB_DOCUMENTS.labels(job.kind, "done").inc(documents)
            metrics.JOB_CHUNKS.labels(job.kind).inc(chunks)
            await self._jobs.update(
                job.id,
                lambda j: dataclasses.replace(
                    j, documents_total=documents, documents_done=documents, chunks_written=chunks
                ).finish(JobState.SUCCEEDED, _now()),
            )
        finally:
            self._stops.pop(job.id, None)

    async def _fail_quietly(self, job_id: str, reason: str) -> None:
        try:
            await self._jobs.update(job_id, lambda j: j.finish(JobState.FAILED, _now(), reason))
        except Exception:
            log.exception("marking a job failed failed too", extra={"job": job_id})


async def _step_of(job: Job, document: StagedDocument, ingesting: Awaitable[IngestResult]) -> _Step:
    """What ``ingesting`` the document did to the job, counted on the metrics."""
    try:
        result = await ingesting
    except CollectionReindexing:
        return _Step(document.position, waits=True)
    except Conflict as error:  # the model conflict: the job's own record says what to do
        failure = DocumentError.of(
            document.document_id, document.source, f"{error.detail}; then submit it again"
        )
    except BrunoError as error:
        failure = DocumentError.of(document.document_id, document.source, error.detail)
    except Exception:
        log.exception("ingesting a job's document failed", extra={"job": job.id})
        failure = DocumentError.of(
            document.document_id,
            document.source,
            "the retrieval service failed on this document; the cause is in its logs",
        )
    else:
        written = 0 if result.outcome is IngestOutcome.UNCHANGED else result.chunks
        metrics.JOB_DOCUMENTS.labels(job.kind, "done").inc()
        metrics.JOB_CHUNKS.labels(job.kind).inc(written)
        return _Step(document.position + 1, chunks=written)
    metrics.JOB_DOCUMENTS.labels(job.kind, "failed").inc()
    return _Step(document.position + 1, failure=failure)


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """What one document did to its job: where the job goes on, and what to count."""

    next_position: int
    chunks: int = 0
    failure: DocumentError | None = None
    waits: bool = False  # its collection is being reindexed: the job waits for the switch

    def __call__(self, job: Job) -> Job:
        if self.waits:
            if job.cancel_requested:
                return job.finish(JobState.CANCELLED, _now(), "cancelled")
            return dataclasses.replace(job, state=JobState.QUEUED)
        if job.next_position >= self.next_position:  # already counted
            return job
        if self.failure is not None:
            return dataclasses.replace(
                job,
                next_position=self.next_position,
                documents_failed=job.documents_failed + 1,
                errors=(*job.errors, self.failure),
            )
        return dataclasses.replace(
            job,
            next_position=self.next_position,
            documents_done=job.documents_done + 1,
            chunks_written=job.chunks_written + self.chunks,
        )


def _advanced(steps: list[_Step], job: Job) -> Job:
    for step in steps:
        job = step(job)
        if step.waits:
            # Goes on from this document after the reindex; one committed beside it is
            # ingested again then, a no-op (same text).
            break
    return job


def _ended(job: Job) -> Job:
    """A job of one document that is over, unless it went back to the queue."""
    return job.finished_by_counts(_now()) if job.state is JobState.RUNNING else job


async def _alone(document: StagedDocument) -> AsyncIterator[StagedDocument | DocumentError]:
    yield document


def _started(job: Job) -> Job:
    if job.state is not JobState.QUEUED:
        return job
    return dataclasses.replace(job, state=JobState.RUNNING, started_at=job.started_at or _now())


def _cancel_requested(job: Job) -> Job:
    """A caller's cancel: a queued job ends now, a running one after its document in flight."""
    if job.state is JobState.QUEUED:
        return job.finish(JobState.CANCELLED, _now(), "cancelled before it started")
    if job.state is JobState.RUNNING:
        return dataclasses.replace(job, cancel_requested=True)
    return job


def _cancelled(job: Job) -> Job:
    """The runner stopped a job whose cancel was requested."""
    return (
        job.finish(JobState.CANCELLED, _now(), "cancelled")
        if job.state is JobState.RUNNING
        else job
    )


def _after_restart(job: Job) -> Job:
    if job.kind is JobKind.REINDEX:
        return job.finish(JobState.FAILED, _now(), _INTERRUPTED_REINDEX)
    if job.cancel_requested:
        return job.finish(JobState.CANCELLED, _now(), "cancelled")
    if job.state is JobState.RUNNING:
        return dataclasses.replace(job, state=JobState.QUEUED, resumes=job.resumes + 1)
    return job
