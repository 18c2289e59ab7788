"""Retrieval's gRPC face: ``RetrievalService`` over the knowledge store,
``ConversationService`` over the conversation store and ``JobService`` over the job runner.
Each call is translated for the domain (:mod:`bruno_retrieval.converters`) and its answer
translated back; errors are raised, not caught: the server's error policy
(:mod:`bruno_core.grpc_server`) turns them into statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import InvalidInput
from bruno_core.contract import COLLECTION_NAME, DEFAULT_COLLECTION
from bruno_retrieval import converters
from bruno_retrieval.conversations import ConversationStore
from bruno_retrieval.jobs import DocumentError, Job, JobRunner, JobStore, StagedDocument
from bruno_retrieval.knowledge import KnowledgeStore

SERVICE = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]
CONVERSATION_SERVICE = conversations_pb2.DESCRIPTOR.services_by_name["ConversationService"]
JOB_SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobService"]

Context = grpc.aio.ServicerContext[Any, Any]


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Serves ``bruno.retrieval.v1.RetrievalService`` from one knowledge store."""

    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store

    async def IngestDocument(
        self, request: retrieval_pb2.IngestDocumentRequest, context: Context
    ) -> retrieval_pb2.IngestDocumentResponse:
        result = await self._store.ingest(
            request.collection,
            text=request.text,
            document_id=request.document_id,
            title=request.title,
            source=request.source,
            metadata=dict(request.metadata),
            segments=converters.text_segments(request.segments),
        )
        return converters.ingest_response(result)

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: Context
    ) -> retrieval_pb2.SearchResponse:
        result = await self._store.search(
            request.collection,
            request.query,
            top_k=converters.or_none(request.top_k),
            mode=converters.search_mode(request.mode),
            filters=dict(request.filters),
            seconds_left=context.time_remaining(),
            at_least=converters.at_least(request.at_least, request.HasField("at_least")),
        )
        return converters.search_response(result)

    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: Context
    ) -> retrieval_pb2.ListDocumentsResponse:
        page = await self._store.list_documents(
            request.collection,
            limit=converters.or_none(request.limit),
            cursor=request.cursor,
            at_least=converters.at_least(request.at_least, request.HasField("at_least")),
        )
        return converters.documents_response(page)

    async def DeleteDocument(
        self, request: retrieval_pb2.DeleteDocumentRequest, context: Context
    ) -> retrieval_pb2.DeleteDocumentResponse:
        deleted = await self._store.delete_document(request.collection, request.document_id)
        return converters.delete_response(deleted)

    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: Context
    ) -> retrieval_pb2.ListCollectionsResponse:
        return converters.collections_response(await self._store.list_collections())

    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: Context
    ) -> retrieval_pb2.DeleteCollectionResponse:
        deleted = await self._store.delete_collection(request.collection)
        return retrieval_pb2.DeleteCollectionResponse(documents_deleted=deleted)

    async def ReindexCollection(
        self, request: retrieval_pb2.ReindexCollectionRequest, context: Context
    ) -> retrieval_pb2.ReindexCollectionResponse:
        return converters.reindex_response(await self._store.reindex(request.collection))


class ConversationServicer(conversations_pb2_grpc.ConversationServiceServicer):
    """Serves ``bruno.retrieval.v1.ConversationService`` from one conversation store."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    async def AppendTurns(
        self, request: conversations_pb2.AppendTurnsRequest, context: Context
    ) -> conversations_pb2.AppendTurnsResponse:
        turns = converters.stored_turns(request.turns)
        kept = await self._store.append(
            request.conversation_id, turns, create=request.create, owner=request.owner
        )
        return conversations_pb2.AppendTurnsResponse(turns=kept)

    async def GetConversation(
        self, request: conversations_pb2.GetConversationRequest, context: Context
    ) -> conversations_pb2.Conversation:
        found = await self._store.get(
            request.conversation_id, max_turns=request.max_turns, owner=request.owner
        )
        return converters.conversation_message(found)

    async def DeleteConversation(
        self, request: conversations_pb2.DeleteConversationRequest, context: Context
    ) -> conversations_pb2.DeleteConversationResponse:
        await self._store.delete(request.conversation_id, owner=request.owner)
        return conversations_pb2.DeleteConversationResponse()


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    """Serves ``bruno.retrieval.v1.JobService`` from one job runner and its store."""

    def __init__(self, runner: JobRunner, jobs: JobStore) -> None:
        self._runner = runner
        self._jobs = jobs

    async def SubmitIngestJob(
        self, request_iterator: AsyncIterator[jobs_pb2.SubmitIngestJobRequest], context: Context
    ) -> jobs_pb2.Job:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidInput("a job submission starts with its header")
        collection = COLLECTION_NAME.check(first.header.collection or DEFAULT_COLLECTION)

        async def documents() -> AsyncIterator[StagedDocument | DocumentError]:
            async for part in request_iterator:
                kind = part.WhichOneof("part")
                if kind == "document":
                    yield converters.staged_document(part.document, collection)
                elif kind == "url":
                    yield converters.document_to_fetch(part.url)
                elif kind == "rejected":
                    yield converters.document_error(part.rejected)
                else:
                    raise InvalidInput("a job submission has one header, first")

        job = await self._runner.submit(collection, first.header.owner, documents())
        return converters.job_message(job)

    async def IngestDocumentOrJob(
        self, request: jobs_pb2.IngestDocumentOrJobRequest, context: Context
    ) -> jobs_pb2.IngestDocumentOrJobResponse:
        collection = COLLECTION_NAME.check(request.document.collection or DEFAULT_COLLECTION)
        outcome = await self._runner.ingest_or_job(
            collection,
            request.owner,
            converters.staged_document(request.document, collection),
            wait_seconds=request.wait_ms / 1000,
        )
        if isinstance(outcome, Job):
            return jobs_pb2.IngestDocumentOrJobResponse(job=converters.job_message(outcome))
        return jobs_pb2.IngestDocumentOrJobResponse(ingested=converters.ingest_response(outcome))

    async def StartReindexJob(
        self, request: jobs_pb2.StartReindexJobRequest, context: Context
    ) -> jobs_pb2.Job:
        collection = COLLECTION_NAME.check(request.collection or DEFAULT_COLLECTION)
        return converters.job_message(await self._runner.start_reindex(collection, request.owner))

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: Context) -> jobs_pb2.Job:
        return converters.job_message(await self._jobs.get(request.id, owner=request.owner))

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: Context
    ) -> jobs_pb2.ListJobsResponse:
        jobs, next_cursor = await self._jobs.page(
            owner=request.owner,
            collections=request.collections,
            limit=converters.or_none(request.limit),
            cursor=request.cursor,
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[converters.job_message(job) for job in jobs], next_cursor=next_cursor
        )

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: Context) -> jobs_pb2.Job:
        return converters.job_message(await self._runner.cancel(request.id, owner=request.owner))
