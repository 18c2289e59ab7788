"""Retrieval's gRPC face: ``RetrievalService`` over the knowledge store and
``ConversationService`` over the conversation store. Each call is translated for the domain
(:mod:`bruno_retrieval.converters`) and its answer translated back; errors are raised, not
caught: the server's error policy (:mod:`bruno_core.grpc_server`) turns them into statuses."""

from __future__ import annotations

from typing import Any

import grpc

from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_retrieval import converters
from bruno_retrieval.conversations import ConversationStore
from bruno_retrieval.knowledge import KnowledgeStore

SERVICE = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]
CONVERSATION_SERVICE = conversations_pb2.DESCRIPTOR.services_by_name["ConversationService"]

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
