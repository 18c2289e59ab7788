"""The retrieval service's gRPC wiring: ``RetrievalService`` over a :class:`KnowledgeStore`.

Requests are checked against explicit limits here; domain errors become gRPC statuses once,
through :func:`bruno_core.abort_with`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bruno.retrieval.v1 import conversations_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc
from bruno_core import (
    BrunoError,
    GrpcServer,
    InvalidInput,
    LimitExceeded,
    abort_with,
)
from bruno_core.entrypoint import run_service
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import SERVICE as CONVERSATION_SERVICE
from bruno_retrieval.conversations import ConversationServicer, ConversationStore
from bruno_retrieval.embedding_client import EmbeddingClient
from bruno_retrieval.rerank import HttpReranker
from bruno_retrieval.store import (
    AnnConfig,
    AnnIndex,
    CollectionInfo,
    DocumentSummary,
    Embedder,
    Fusion,
    FusionConfig,
    IngestOutcome,
    KnowledgeStore,
    SearchHit,
    SearchMode,
)

log = logging.getLogger(__name__)

SERVICE = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]

MAX_TITLE_CHARS = 1_000
MAX_SOURCE_CHARS = 2_000
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 2_000
MAX_QUERY_CHARS = 8_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Hybrid is the default: it finds exact terms (error codes, names) that vectors blur.
DEFAULT_SEARCH_MODE = SearchMode.HYBRID
RERANK_DEADLINE_MARGIN_SECONDS = 0.05

_MODE_FROM_PROTO = {
    retrieval_pb2.SEARCH_MODE_UNSPECIFIED: DEFAULT_SEARCH_MODE,
    retrieval_pb2.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
    retrieval_pb2.SEARCH_MODE_VECTOR: SearchMode.VECTOR,
    retrieval_pb2.SEARCH_MODE_TEXT: SearchMode.TEXT,
}
_MODE_TO_PROTO = {mode: proto for proto, mode in _MODE_FROM_PROTO.items() if proto}
_OUTCOME_TO_PROTO = {
    IngestOutcome.CREATED: retrieval_pb2.INGEST_OUTCOME_CREATED,
    IngestOutcome.UNCHANGED: retrieval_pb2.INGEST_OUTCOME_UNCHANGED,
    IngestOutcome.REPLACED: retrieval_pb2.INGEST_OUTCOME_REPLACED,
}

_Response = TypeVar("_Response")
Context = grpc.aio.ServicerContext[Any, Any]


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Serves ``bruno.retrieval.v1.RetrievalService`` from one knowledge store."""

    def __init__(
        self,
        store: KnowledgeStore,
        settings: RetrievalSettings,
        *,
        reranker: HttpReranker | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._reranker = reranker

    async def IngestDocument(
        self, request: retrieval_pb2.IngestDocumentRequest, context: Context
    ) -> retrieval_pb2.IngestDocumentResponse:
        return await _answer(context, lambda: self._ingest(request))

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: Context
    ) -> retrieval_pb2.SearchResponse:
        return await _answer(context, lambda: self._search(request, context.time_remaining()))

    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: Context
    ) -> retrieval_pb2.ListDocumentsResponse:
        return await _answer(context, lambda: self._list(request))

    async def DeleteDocument(
        self, request: retrieval_pb2.DeleteDocumentRequest, context: Context
    ) -> retrieval_pb2.DeleteDocumentResponse:
        return await _answer(context, lambda: self._delete(request))

    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: Context
    ) -> retrieval_pb2.ListCollectionsResponse:
        return await _answer(context, self._list_collections)

    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: Context
    ) -> retrieval_pb2.DeleteCollectionResponse:
        return await _answer(context, lambda: self._delete_collection(request))

    async def ReindexCollection(
        self, request: retrieval_pb2.ReindexCollectionRequest, context: Context
    ) -> retrieval_pb2.ReindexCollectionResponse:
        return await _answer(context, lambda: self._reindex(request))

    async def _ingest(
        self, request: retrieval_pb2.IngestDocumentRequest
    ) -> retrieval_pb2.IngestDocumentResponse:
        size = len(request.text.encode("utf-8"))
        if size > self._settings.max_document_bytes:
            raise LimitExceeded(
                f"text is {size} bytes; the limit is {self._settings.max_document_bytes}"
            )
        if len(request.title) > MAX_TITLE_CHARS or len(request.source) > MAX_SOURCE_CHARS:
            raise LimitExceeded(
                f"title is limited to {MAX_TITLE_CHARS} characters, source to {MAX_SOURCE_CHARS}"
            )
        _check_metadata(request.metadata)
        result = await self._store.ingest(
            request.collection,
            text=request.text,
            document_id=request.document_id,
            title=request.title,
            source=request.source,
            metadata=dict(request.metadata),
        )
        return retrieval_pb2.IngestDocumentResponse(
            document_id=result.document_id,
            collection=result.collection,
            chunks=result.chunks,
            outcome=_OUTCOME_TO_PROTO[result.outcome],
            content_hash=result.content_hash,
        )

    async def _search(
        self, request: retrieval_pb2.SearchRequest, time_remaining: float | None
    ) -> retrieval_pb2.SearchResponse:
        if len(request.query) > MAX_QUERY_CHARS:
            raise LimitExceeded(f"query is limited to {MAX_QUERY_CHARS} characters")
        top_k = request.top_k or self._settings.default_top_k
        if top_k > self._settings.max_top_k:
            raise InvalidInput(f"top_k must be at most {self._settings.max_top_k}")
        mode = _MODE_FROM_PROTO.get(request.mode)
        if mode is None:
            raise InvalidInput(f"unknown search mode {request.mode}")
        started = asyncio.get_running_loop().time()
        rerank = self._reranker is not None
        candidates = max(top_k, self._settings.reranker_candidates) if rerank else top_k
        result = await self._store.search(
            request.collection,
            request.query,
            top_k=candidates,
            mode=mode,
            filters=dict(request.filters),
        )
        hits = result.hits
        if self._reranker is not None:
            budget = None
            if time_remaining is not None:
                spent = asyncio.get_running_loop().time() - started
                # Leave a little of the caller's deadline for the answer itself.
                budget = time_remaining - spent - RERANK_DEADLINE_MARGIN_SECONDS
            hits = await self._reranker.rerank(
                request.query, hits, timeout_seconds=budget if budget is not None else None
            )
        return retrieval_pb2.SearchResponse(
            hits=[_hit_message(hit) for hit in hits[:top_k]], mode=_MODE_TO_PROTO[result.mode]
        )

    async def _list(
        self, request: retrieval_pb2.ListDocumentsRequest
    ) -> retrieval_pb2.ListDocumentsResponse:
        limit = request.limit or DEFAULT_PAGE_SIZE
        if limit > MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be at most {MAX_PAGE_SIZE}")
        page = await self._store.list_documents(
            request.collection, limit=limit, cursor=request.cursor
        )
        return retrieval_pb2.ListDocumentsResponse(
            documents=[_summary_message(document) for document in page.documents],
            next_cursor=page.next_cursor,
        )

    async def _delete(
        self, request: retrieval_pb2.DeleteDocumentRequest
    ) -> retrieval_pb2.DeleteDocumentResponse:
        deleted = await self._store.delete_document(request.collection, request.document_id)
        return retrieval_pb2.DeleteDocumentResponse(chunks_deleted=deleted)

    async def _list_collections(self) -> retrieval_pb2.ListCollectionsResponse:
        collections = await self._store.list_collections()
        return retrieval_pb2.ListCollectionsResponse(
            collections=[_collection_message(info) for info in collections]
        )

    async def _delete_collection(
        self, request: retrieval_pb2.DeleteCollectionRequest
    ) -> retrieval_pb2.DeleteCollectionResponse:
        deleted = await self._store.delete_collection(request.collection)
        return retrieval_pb2.DeleteCollectionResponse(documents_deleted=deleted)

    async def _reindex(
        self, request: retrieval_pb2.ReindexCollectionRequest
    ) -> retrieval_pb2.ReindexCollectionResponse:
        result = await self._store.reindex(request.collection)
        return retrieval_pb2.ReindexCollectionResponse(
            collection=_collection_message(result.collection),
            previous_model=result.previous_model,
        )


async def _answer(context: Context, handle: Callable[[], Awaitable[_Response]]) -> _Response:
    """Run a handler; a domain error becomes its status, anything else INTERNAL (logged)."""
    try:
        return await handle()
    except BrunoError as error:
        await abort_with(context, error)
    except Exception:
        log.exception("unexpected error")
        await _abort_internal(context)


async def _abort_internal(context: Context) -> NoReturn:
    # The details stay in the log: a storage error message can carry paths and internals.
    await context.abort(grpc.StatusCode.INTERNAL, "internal error in the retrieval service")
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def _check_metadata(metadata: Any) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise LimitExceeded(f"metadata is limited to {MAX_METADATA_ENTRIES} entries")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
            raise LimitExceeded(
                f"metadata keys are limited to {MAX_METADATA_KEY_CHARS} characters, "
                f"values to {MAX_METADATA_VALUE_CHARS}"
            )


def _hit_message(hit: SearchHit) -> retrieval_pb2.SearchHit:
    return retrieval_pb2.SearchHit(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        text=hit.text,
        score=hit.score,
        chunk_index=hit.chunk_index,
        metadata=hit.metadata,
        heading_path=hit.heading_path,
    )


def _collection_message(info: CollectionInfo) -> retrieval_pb2.CollectionInfo:
    return retrieval_pb2.CollectionInfo(
        name=info.name,
        documents=info.documents,
        chunks=info.chunks,
        embedding_model=info.embedding_model,
        dimension=info.dimension,
    )


def _summary_message(document: DocumentSummary) -> retrieval_pb2.DocumentSummary:
    ingested_at = Timestamp()
    ingested_at.FromDatetime(document.ingested_at)
    return retrieval_pb2.DocumentSummary(
        document_id=document.document_id,
        title=document.title,
        source=document.source,
        chunks=document.chunks,
        content_hash=document.content_hash,
        metadata=document.metadata,
        ingested_at=ingested_at,
    )


async def create_server(
    settings: RetrievalSettings, *, embedder: Embedder | None = None
) -> GrpcServer:
    """The retrieval server, not yet started, with its database already open.

    Without ``embedder`` it embeds through the embedding service at ``settings.embedding_addr``.
    Start it with ``await server.start()``; health turns SERVING then.
    """
    server = GrpcServer(
        "retrieval",
        settings,
        listen_addr=settings.retrieval_listen_addr,
        metrics_port=settings.retrieval_metrics_port,
    )
    if embedder is None:
        client = EmbeddingClient.from_settings(settings)
        server.on_stop(client.close)
        embedder = client
    store = await KnowledgeStore.open(
        settings.lancedb_uri,
        embedder,
        chunk_size_tokens=settings.chunk_size_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        fusion=FusionConfig(Fusion(settings.hybrid_fusion), settings.hybrid_vector_weight),
        ann=AnnConfig(
            min_rows=settings.ann_min_rows,
            index=AnnIndex(settings.ann_index),
            ef=settings.ann_ef,
            nprobes=settings.ann_nprobes,
            refine_factor=settings.ann_refine_factor,
        ),
    )
    reranker = (
        HttpReranker(settings.reranker_url, timeout_seconds=settings.reranker_timeout_seconds)
        if settings.reranker_url
        else None
    )
    server.add_servicer(
        SERVICE,
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
        RetrievalServicer(store, settings, reranker=reranker),
    )
    conversations = await ConversationStore.open(
        settings.lancedb_uri, max_turns=settings.conversation_max_turns
    )
    server.add_servicer(
        CONVERSATION_SERVICE,
        conversations_pb2_grpc.add_ConversationServiceServicer_to_server,
        ConversationServicer(conversations),
    )
    return server


def main() -> None:
    run_service("retrieval", RetrievalSettings(), create_server)
