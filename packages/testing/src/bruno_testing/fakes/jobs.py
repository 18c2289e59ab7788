"""An in-memory ``JobService`` over :class:`FakeRetrieval`: a job runs to its end while it is
submitted (an ingest through the fake's ``IngestDocument``, a reindex through its
``ReindexCollection``), so a caller sees it finished at its first look. It fetches nothing: a
URL sent is kept in ``urls`` and recorded as a failed document (the real fetcher is tested with a
real server, in retrieval's tests and end to end)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from typing_extensions import override

from bruno.retrieval.v1 import jobs_pb2, jobs_pb2_grpc, retrieval_pb2
from bruno_core import BrunoError, InvalidInput, NotFound
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    check_fetch_url,
    document_id_from_url,
)
from bruno_testing.fakes.retrieval import FakeRetrieval

Context = grpc.aio.ServicerContext[Any, Any]
FAKE_FETCH_ERROR = "the fake job service fetches no URLs"


class FakeJobs(jobs_pb2_grpc.JobServiceServicer):
    """Jobs kept in a list, newest last; every one finished when it is answered."""

    def __init__(self, retrieval: FakeRetrieval) -> None:
        self.retrieval = retrieval
        self.jobs: list[jobs_pb2.Job] = []
        self.urls: list[str] = []

    def _new(self, kind: jobs_pb2.JobKind.ValueType, collection: str, owner: str) -> jobs_pb2.Job:
        job = jobs_pb2.Job(id=uuid.uuid4().hex, kind=kind, collection=collection, owner=owner)
        job.created_at.GetCurrentTime()
        job.started_at.GetCurrentTime()
        return job

    def _finish(self, job: jobs_pb2.Job) -> jobs_pb2.Job:
        job.finished_at.GetCurrentTime()
        if job.documents_failed:
            job.state = jobs_pb2.JOB_STATE_FAILED
            job.reason = f"{job.documents_failed} of {job.documents_total} documents failed"
        else:
            job.state = jobs_pb2.JOB_STATE_SUCCEEDED
        self.jobs.append(job)
        return job

    @override
    async def SubmitIngestJob(
        self, request_iterator: AsyncIterator[jobs_pb2.SubmitIngestJobRequest], context: Context
    ) -> jobs_pb2.Job:
        await self.retrieval._maybe_fail(context)
        parts = [part async for part in request_iterator]
        if not parts or parts[0].WhichOneof("part") != "header":
            raise InvalidInput("a job submission starts with its header")
        header = parts[0].header
        collection = COLLECTION_NAME.check(header.collection or DEFAULT_COLLECTION)
        job = self._new(jobs_pb2.JOB_KIND_INGEST, collection, header.owner)
        failed = [p.rejected for p in parts[1:] if p.WhichOneof("part") == "rejected"]
        documents = [p.document for p in parts[1:] if p.WhichOneof("part") == "document"]
        urls = [p.url.url for p in parts[1:] if p.WhichOneof("part") == "url"]
        self.urls.extend(urls)  # what it was sent, checked or not
        for url in urls:
            check_fetch_url(url)
        failed += [
            jobs_pb2.DocumentError(
                document_id=document_id_from_url(url), source=url, message=FAKE_FETCH_ERROR
            )
            for url in urls
        ]
        if len(failed) + len(documents) != len(parts) - 1:
            raise InvalidInput("a job submission has one header, first")
        if not failed and not documents:
            raise InvalidInput("a job needs at least one document")
        job.documents_total = len(failed) + len(documents)
        job.errors.extend(failed)
        for document in documents:
            document.collection = collection
            try:
                ingested = await self.retrieval.IngestDocument(document, context)
            except BrunoError as error:
                job.errors.append(
                    jobs_pb2.DocumentError(
                        document_id=document.document_id,
                        source=document.source,
                        message=error.detail,
                    )
                )
                continue
            job.documents_done += 1
            if ingested.outcome != retrieval_pb2.INGEST_OUTCOME_UNCHANGED:
                job.chunks_written += ingested.chunks
        job.documents_failed = len(job.errors)
        return self._finish(job)

    @override
    async def IngestDocumentOrJob(
        self, request: jobs_pb2.IngestDocumentOrJobRequest, context: Context
    ) -> jobs_pb2.IngestDocumentOrJobResponse:
        """Always done within the wait: the fake ingests at once."""
        ingested = await self.retrieval.IngestDocument(request.document, context)
        return jobs_pb2.IngestDocumentOrJobResponse(ingested=ingested)

    @override
    async def StartReindexJob(
        self, request: jobs_pb2.StartReindexJobRequest, context: Context
    ) -> jobs_pb2.Job:
        collection = COLLECTION_NAME.check(request.collection or DEFAULT_COLLECTION)
        job = self._new(jobs_pb2.JOB_KIND_REINDEX, collection, request.owner)
        reindexed = await self.retrieval.ReindexCollection(
            retrieval_pb2.ReindexCollectionRequest(collection=collection), context
        )
        job.documents_total = job.documents_done = reindexed.collection.documents
        job.chunks_written = reindexed.collection.chunks
        return self._finish(job)

    def _own(self, job_id: str, owner: str) -> jobs_pb2.Job:
        for job in self.jobs:
            if job.id == job_id and (not owner or job.owner == owner):
                return job
        raise NotFound(f"job {job_id!r} not found")

    @override
    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: Context) -> jobs_pb2.Job:
        await self.retrieval._maybe_fail(context)
        return self._own(request.id, request.owner)

    @override
    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: Context
    ) -> jobs_pb2.ListJobsResponse:
        await self.retrieval._maybe_fail(context)
        jobs = [
            job
            for job in reversed(self.jobs)
            if (not request.owner or job.owner == request.owner)
            and (not request.collections or job.collection in request.collections)
        ]
        start = next((n + 1 for n, job in enumerate(jobs) if request.cursor.endswith(job.id)), 0)
        page = jobs[start : start + (request.limit or 20)]
        more = start + len(page) < len(jobs)
        next_cursor = f"0.{page[-1].id}" if more and page else ""
        return jobs_pb2.ListJobsResponse(jobs=page, next_cursor=next_cursor)

    @override
    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: Context) -> jobs_pb2.Job:
        await self.retrieval._maybe_fail(context)
        return self._own(request.id, request.owner)
