"""Jobs kept beside the knowledge base, so they survive a restart of any service.

Two LanceDB tables (their leading underscore keeps them out of the collection names):
``_bruno_jobs`` holds one row per job, rewritten whole with one ``merge_insert`` per change;
``_bruno_job_documents`` holds the documents of ingest jobs not finished yet, by job and
position, deleted when the job ends. Every change to a job is a read-modify-write under one
lock, so a cancel and a step of the runner never overwrite each other. This process is the
single writer of both tables.

    jobs = await JobStore.open(settings)
    job = await jobs.submit("default", "ann", documents, rejected=[])
    job = await jobs.get(job.id, owner="ann")
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.expr import col, lit

from bruno_core import InvalidInput, LimitExceeded, NotFound
from bruno_core.contract import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import metrics
from bruno_retrieval.jobs.model import DocumentError, Job, JobKind, JobState, StagedDocument
from bruno_retrieval.knowledge.pages import TextSegment

log = logging.getLogger(__name__)

JOBS_TABLE = "_bruno_jobs"
DOCUMENTS_TABLE = "_bruno_job_documents"
# Staged documents are written in batches while a submission streams in: few table versions,
# and at most this many documents (each within the document limit) held in memory.
_STAGE_BATCH = 32
# Each job row is rewritten at every step; compacting now and then keeps reads fast.
_OPTIMIZE_EVERY_WRITES = 100
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")

_JOB_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
        pa.field("owner", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("documents_total", pa.int64(), nullable=False),
        pa.field("documents_done", pa.int64(), nullable=False),
        pa.field("documents_failed", pa.int64(), nullable=False),
        pa.field("chunks_written", pa.int64(), nullable=False),
        pa.field("errors", pa.string(), nullable=False),  # JSON list of [id, source, message]
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("cancel_requested", pa.bool_(), nullable=False),
        pa.field("resumes", pa.int64(), nullable=False),
        pa.field("next_position", pa.int64(), nullable=False),
    ]
)

_DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("document_id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),  # JSON object
        pa.field("segments", pa.string(), nullable=False),  # JSON list of [start, page]
        # A URL job's document, fetched when the job gets to it; null for a document staged
        # with its text (and in every row of a table from before URL jobs: see open).
        pa.field("url", pa.string(), nullable=True),
    ]
)


def new_job_id() -> str:
    return uuid.uuid4().hex


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} not found")


class JobStore:
    """Jobs and their staged documents in LanceDB (see the module docstring)."""

    def __init__(self, jobs: Any, documents: Any, settings: RetrievalSettings) -> None:
        self._jobs = jobs
        self._documents = documents
        self._settings = settings
        self._lock = asyncio.Lock()
        self._writes = 0
        self._counted: dict[str, Job] = {}  # what this store added to the state gauge
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, settings: RetrievalSettings) -> JobStore:
        db = await lancedb.connect_async(settings.lancedb_uri)
        jobs = await db.create_table(JOBS_TABLE, schema=_JOB_SCHEMA, exist_ok=True)
        try:
            # Opened, not created with exist_ok: a table from before URL jobs has another schema.
            documents = await db.open_table(DOCUMENTS_TABLE)
        except ValueError:  # not there yet
            documents = await db.create_table(
                DOCUMENTS_TABLE, schema=_DOCUMENT_SCHEMA, exist_ok=True
            )
        if "url" not in (await documents.schema()).names:
            await documents.add_columns(pa.field("url", pa.string(), nullable=True))
        store = cls(jobs, documents, settings)
        await store._prune()
        return store

    def close(self) -> None:
        for job in self._counted.values():
            metrics.JOBS.labels(job.kind, job.state).dec()
        self._counted = {}
        self._jobs.close()
        self._documents.close()

    # --- submitting -------------------------------------------------------------------------

    async def submit(
        self,
        collection: str,
        owner: str,
        documents: AsyncIterable[StagedDocument | DocumentError],
    ) -> Job:
        """Stage ``documents`` (a :class:`DocumentError` is one the caller could not read,
        counted as failed at once) and queue a job for them. The job exists once every
        document is staged; if staging fails, nothing of it stays."""
        job_id = new_job_id()
        staged, rejected = 0, list[DocumentError]()
        batch: list[StagedDocument] = []
        try:
            async for item in documents:
                if staged + len(rejected) >= self._settings.job_max_documents:
                    raise LimitExceeded(
                        f"a job holds at most {self._settings.job_max_documents} documents"
                    )
                if isinstance(item, DocumentError):
                    rejected.append(item)
                    continue
                batch.append(dataclasses.replace(item, position=staged))
                staged += 1
                if len(batch) >= _STAGE_BATCH:
                    await self._stage(job_id, batch)
                    batch = []
            if batch:
                await self._stage(job_id, batch)
            if not staged and not rejected:
                raise InvalidInput("a job needs at least one document")
            job = Job(
                id=job_id,
                kind=JobKind.INGEST,
                collection=collection,
                owner=owner,
                state=JobState.QUEUED,
                created_at=datetime.now(UTC),
                documents_total=staged + len(rejected),
                documents_failed=len(rejected),
                errors=tuple(rejected),
            )
            if not staged:  # nothing readable: the job is over before it starts
                job = dataclasses.replace(job, started_at=job.created_at)
                job = job.finished_by_counts(job.created_at)
            async with self._lock:
                await self._write(job, None)
        except BaseException:
            await asyncio.shield(self._unstage(job_id))
            raise
        metrics.JOB_DOCUMENTS.labels(JobKind.INGEST, "failed").inc(len(rejected))
        return job

    async def adopt(self, collection: str, owner: str, document: StagedDocument) -> Job:
        """A running job of one document whose ingest has already started (a synchronous
        ingest that outlasted its wait): staged, so a restart resumes it."""
        now = datetime.now(UTC)
        job = Job(
            id=new_job_id(),
            kind=JobKind.INGEST,
            collection=collection,
            owner=owner,
            state=JobState.RUNNING,
            created_at=now,
            started_at=now,
            documents_total=1,
        )
        await self._stage(job.id, [dataclasses.replace(document, position=0)])
        return await self.create(job)

    async def create(self, job: Job) -> Job:
        """Store a new job with no staged documents (a reindex)."""
        async with self._lock:
            await self._write(job, None)
        return job

    async def _stage(self, job_id: str, documents: Sequence[StagedDocument]) -> None:
        rows = [
            {
                "job_id": job_id,
                "position": document.position,
                "document_id": document.document_id,
                "title": document.title,
                "source": document.source,
                "text": document.text,
                "metadata": json.dumps(dict(document.metadata), ensure_ascii=False),
                "segments": json.dumps([[s.start, s.page] for s in document.segments]),
                "url": document.url or None,
            }
            for document in documents
        ]
        await self._documents.add(pa.Table.from_pylist(rows, schema=_DOCUMENT_SCHEMA))

    async def _unstage(self, job_id: str) -> None:
        await self._documents.delete(col("job_id") == lit(job_id))

    async def staged(self, job_id: str, start: int, count: int) -> list[StagedDocument]:
        """The staged documents of ``job_id`` at positions ``start`` to ``start + count``."""
        rows = (
            await self._documents.query()
            .where(
                (col("job_id") == lit(job_id))
                & (col("position") >= lit(start))
                & (col("position") < lit(start + count))
            )
            .to_arrow()
        ).to_pylist()
        return sorted((_staged_from_row(row) for row in rows), key=lambda d: d.position)

    # --- reading ----------------------------------------------------------------------------

    async def get(self, job_id: str, *, owner: str = "") -> Job:
        """The job; NotFound when unknown or not ``owner``'s (when one is named)."""
        found = await self._read(job_id) if _JOB_ID.match(job_id) else None
        if found is None or not found.belongs_to(owner):
            raise _not_found(job_id)
        return found

    async def page(
        self,
        *,
        owner: str = "",
        collections: Iterable[str] = (),
        limit: int | None = None,
        cursor: str = "",
    ) -> tuple[list[Job], str]:
        """A page of jobs, newest first, and the cursor of the next page ("" on the last)."""
        limit = DEFAULT_PAGE_SIZE if limit is None else limit
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        after = _cursor_key(cursor)
        query = self._jobs.query()
        where = None
        if owner:
            where = col("owner") == lit(owner)
        if wanted := list(collections):
            in_collections = col("collection").isin(wanted)
            where = in_collections if where is None else where & in_collections
        if where is not None:
            query = query.where(where)
        jobs = sorted(
            (_job_from_row(row) for row in (await query.to_arrow()).to_pylist()),
            key=_order_key,
        )
        if after is not None:
            jobs = [job for job in jobs if _order_key(job) > after]
        page = jobs[:limit]
        next_cursor = _cursor_of(page[-1]) if len(jobs) > limit else ""
        return page, next_cursor

    async def unfinished(self) -> list[Job]:
        """Queued and running jobs, oldest first."""
        rows = (
            await self._jobs.query()
            .where(col("state").isin([JobState.QUEUED, JobState.RUNNING]))
            .to_arrow()
        ).to_pylist()
        return sorted((_job_from_row(row) for row in rows), key=lambda job: job.created_at)

    def next_change(self) -> asyncio.Event:
        """An event set when a job is next written (taken before reading, so none is missed)."""
        return self._changed

    async def _read(self, job_id: str) -> Job | None:
        rows = (
            await self._jobs.query().where(col("id") == lit(job_id)).limit(1).to_arrow()
        ).to_pylist()
        return _job_from_row(rows[0]) if rows else None

    # --- changing ---------------------------------------------------------------------------

    async def update(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        """Apply ``change`` to the job as stored now and write the result in one commit."""
        async with self._lock:
            found = await self._read(job_id)
            if found is None:
                raise _not_found(job_id)
            changed = change(found)
            if changed != found:
                await self._write(changed, found)
        if changed.state.finished and not found.state.finished and changed.kind is JobKind.INGEST:
            await self._unstage(job_id)
        return changed

    async def _write(self, job: Job, before: Job | None) -> None:
        """Write ``job`` (the lock held) and move the state gauge from ``before``."""
        await (
            self._jobs.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(pa.Table.from_pylist([_row_of(job)], schema=_JOB_SCHEMA))
        )
        if before is not None:
            metrics.JOBS.labels(before.kind, before.state).dec()
        metrics.JOBS.labels(job.kind, job.state).inc()
        self._counted[job.id] = job
        self._changed.set()
        self._changed = asyncio.Event()
        self._writes += 1
        if self._writes % _OPTIMIZE_EVERY_WRITES == 0:
            try:  # the write is committed: a failed optimize must not fail it
                await self._jobs.optimize()
                await self._documents.optimize()
            except Exception:
                log.exception("optimizing the jobs tables failed")

    async def _prune(self) -> None:
        """Forget jobs finished longer ago than the retention, and documents staged for no job
        (a submission cut short by a restart); count the rest on the state gauge."""
        cutoff = datetime.now(UTC) - timedelta(days=self._settings.job_retention_days)
        await self._jobs.delete(col("finished_at") < lit(cutoff))
        jobs = [_job_from_row(row) for row in (await self._jobs.query().to_arrow()).to_pylist()]
        for job in jobs:
            metrics.JOBS.labels(job.kind, job.state).inc()
        self._counted = {job.id: job for job in jobs}
        known = {job.id for job in jobs if not job.state.finished}
        staged = (await self._documents.query().select(["job_id"]).to_arrow()).column("job_id")
        if orphans := set(staged.to_pylist()) - known:
            await self._documents.delete(col("job_id").isin(sorted(orphans)))


def _order_key(job: Job) -> tuple[float, str]:
    """Newest first, then by id: a total order a cursor can resume."""
    return (-job.created_at.timestamp(), job.id)


def _cursor_of(job: Job) -> str:
    return f"{int(job.created_at.timestamp() * 1_000_000)}.{job.id}"


def _cursor_key(cursor: str) -> tuple[float, str] | None:
    if not cursor:
        return None
    micros, _, job_id = cursor.partition(".")
    if not micros.isdigit() or not _JOB_ID.match(job_id):
        raise InvalidInput("cursor is not one this service gave out")
    return (-int(micros) / 1_000_000, job_id)


def _row_of(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind.value,
        "collection": job.collection,
        "owner": job.owner,
        "state": job.state.value,
        "documents_total": job.documents_total,
        "documents_done": job.documents_done,
        "documents_failed": job.documents_failed,
        "chunks_written": job.chunks_written,
        "errors": json.dumps(
            [[e.document_id, e.source, e.message] for e in job.errors], ensure_ascii=False
        ),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "reason": job.reason,
        "cancel_requested": job.cancel_requested,
        "resumes": job.resumes,
        "next_position": job.next_position,
    }


def _job_from_row(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        kind=JobKind(row["kind"]),
        collection=row["collection"],
        owner=row["owner"],
        state=JobState(row["state"]),
        created_at=row["created_at"],
        documents_total=row["documents_total"],
        documents_done=row["documents_done"],
        documents_failed=row["documents_failed"],
        chunks_written=row["chunks_written"],
        errors=tuple(DocumentError(*entry) for entry in json.loads(row["errors"])),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        reason=row["reason"],
        cancel_requested=row["cancel_requested"],
        resumes=row["resumes"],
        next_position=row["next_position"],
    )


def _staged_from_row(row: dict[str, Any]) -> StagedDocument:
    return StagedDocument(
        position=row["position"],
        document_id=row["document_id"],
        title=row["title"],
        source=row["source"],
        text=row["text"],
        metadata=json.loads(row["metadata"]),
        segments=tuple(TextSegment(start, page) for start, page in json.loads(row["segments"])),
        url=row["url"] or "",
    )
