"""``/api/v1/documents``: ingest, list and delete the documents of a collection."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from bruno.retrieval.v1 import retrieval_pb2
from bruno_edge.api.deps import DownstreamsDep, SettingsDep
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.clients import rpc_errors
from bruno_edge.schemas import (
    COLLECTION_PATTERN,
    DOCUMENT_ID_PATTERN,
    DocumentIn,
    DocumentIngested,
    DocumentPage,
    DocumentSummary,
)

router = APIRouter(prefix=f"{API_PREFIX}/documents", tags=["documents"])

MAX_PAGE_SIZE = 500
MAX_CURSOR_CHARS = 1000

CollectionQuery = Annotated[str, Query(pattern=COLLECTION_PATTERN)]

_STATUS = {
    retrieval_pb2.INGEST_OUTCOME_CREATED: "created",
    retrieval_pb2.INGEST_OUTCOME_REPLACED: "replaced",
    retrieval_pb2.INGEST_OUTCOME_UNCHANGED: "unchanged",
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": DocumentIngested, "description": "Same id and text: nothing changed."},
        **problem_responses(401, 413, 422, 503, 504),
    },
)
async def ingest_document(
    document: DocumentIn,
    response: Response,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> DocumentIngested:
    request = retrieval_pb2.IngestDocumentRequest(
        collection=document.collection,
        document_id=document.id or "",
        title=document.title,
        source=document.source,
        text=document.text,
        metadata=document.metadata,
    )
    with rpc_errors("retrieval"):
        # Ingesting embeds every chunk, so it gets the chat deadline rather than the short one.
        ingested = await downstreams.retrieval.IngestDocument(
            request, timeout=settings.chat_timeout_seconds
        )
    outcome = _STATUS.get(ingested.outcome, "created")
    if outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    return DocumentIngested(
        document_id=ingested.document_id,
        chunks=ingested.chunks,
        collection=ingested.collection or document.collection,
        status=outcome,
    )


@router.get("", responses=problem_responses(401, 422, 503, 504))
async def list_documents(
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    collection: CollectionQuery = "default",
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> DocumentPage:
    request = retrieval_pb2.ListDocumentsRequest(
        collection=collection, limit=limit or 0, cursor=cursor or ""
    )
    with rpc_errors("retrieval"):
        page = await downstreams.retrieval.ListDocuments(
            request, timeout=settings.request_timeout_seconds
        )
    return DocumentPage(
        documents=[
            DocumentSummary(
                document_id=doc.document_id,
                title=doc.title,
                source=doc.source,
                chunks=doc.chunks,
                content_hash=doc.content_hash,
                metadata=dict(doc.metadata),
                ingested_at=doc.ingested_at.ToDatetime(tzinfo=UTC)
                if doc.HasField("ingested_at")
                else None,
            )
            for doc in page.documents
        ],
        next_cursor=page.next_cursor or None,
    )


# `:path` because ids may hold slashes (the CLI names documents by their relative path).
@router.delete(
    "/{document_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 422, 503, 504),
)
async def delete_document(
    document_id: Annotated[str, Path(pattern=DOCUMENT_ID_PATTERN)],
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    collection: CollectionQuery = "default",
) -> Response:
    request = retrieval_pb2.DeleteDocumentRequest(collection=collection, document_id=document_id)
    with rpc_errors("retrieval"):
        await downstreams.retrieval.DeleteDocument(
            request, timeout=settings.request_timeout_seconds
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
