"""Between ``bruno.retrieval.v1`` messages and the retrieval domain's own types.

Proto3 has no "unset" for scalars: ``0`` and ``""`` mean "the default" here, which the domain
spells ``None`` (a ``top_k`` or page ``limit``) or leaves to its own rules (an empty
collection is ``default``, an empty document id is derived from the text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from bruno.retrieval.v1 import conversations_pb2, jobs_pb2, retrieval_pb2
from bruno_core import InvalidInput
from bruno_core.contract import check_fetch_url
from bruno_retrieval.conversations import StoredConversation, StoredTurn
from bruno_retrieval.jobs import DocumentError, Job, JobKind, JobState, StagedDocument
from bruno_retrieval.knowledge import (
    CollectionInfo,
    Committed,
    DeleteResult,
    DocumentPage,
    DocumentSummary,
    IngestOutcome,
    IngestResult,
    ReindexResult,
    SearchHit,
    SearchMode,
    SearchResult,
    TextSegment,
)

_MODE_FROM_PROTO = {
    retrieval_pb2.SEARCH_MODE_UNSPECIFIED: SearchMode.HYBRID,
    retrieval_pb2.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
    retrieval_pb2.SEARCH_MODE_VECTOR: SearchMode.VECTOR,
    retrieval_pb2.SEARCH_MODE_TEXT: SearchMode.TEXT,
}
_MODE_TO_PROTO = {mode: proto for proto, mode in _MODE_FROM_PROTO.items() if proto}
_JOB_KIND_TO_PROTO = {
    JobKind.INGEST: jobs_pb2.JOB_KIND_INGEST,
    JobKind.REINDEX: jobs_pb2.JOB_KIND_REINDEX,
}
_JOB_STATE_TO_PROTO = {
    JobState.QUEUED: jobs_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
_OUTCOME_TO_PROTO = {
    IngestOutcome.CREATED: retrieval_pb2.INGEST_OUTCOME_CREATED,
    IngestOutcome.UNCHANGED: retrieval_pb2.INGEST_OUTCOME_UNCHANGED,
    IngestOutcome.REPLACED: retrieval_pb2.INGEST_OUTCOME_REPLACED,
}


def or_none(value: int) -> int | None:
    """A proto3 number, ``0`` (unset) as ``None``: the domain's default applies."""
    return value or None


def search_mode(value: retrieval_pb2.SearchMode.ValueType) -> SearchMode:
    """The mode a request asks for (hybrid when unset); InvalidInput for one not in v1."""
    mode = _MODE_FROM_PROTO.get(value)
    if mode is None:
        raise InvalidInput(f"unknown search mode {value}")
    return mode


def text_segments(segments: Sequence[retrieval_pb2.TextSegment]) -> list[TextSegment]:
    """The pages of an ingest's text (the store checks them against the text)."""
    return [TextSegment(start=segment.start, page=segment.page) for segment in segments]


def at_least(message: retrieval_pb2.Committed, given: bool) -> Committed | None:
    """The write a read must see (``given``: the request set the field); InvalidInput for one
    no write answered."""
    if not given:
        return None
    if not message.table or not message.version:
        raise InvalidInput("at_least needs the table and version a write answered")
    return Committed(message.table, message.version)


def _committed(committed: Committed | None) -> retrieval_pb2.Committed | None:
    if committed is None:
        return None
    return retrieval_pb2.Committed(table=committed.table, version=committed.version)


def ingest_response(result: IngestResult) -> retrieval_pb2.IngestDocumentResponse:
    return retrieval_pb2.IngestDocumentResponse(
        document_id=result.document_id,
        collection=result.collection,
        chunks=result.chunks,
        outcome=_OUTCOME_TO_PROTO[result.outcome],
        content_hash=result.content_hash,
        committed=_committed(result.committed),
    )


def delete_response(result: DeleteResult) -> retrieval_pb2.DeleteDocumentResponse:
    return retrieval_pb2.DeleteDocumentResponse(
        chunks_deleted=result.chunks, committed=_committed(result.committed)
    )


def search_response(result: SearchResult) -> retrieval_pb2.SearchResponse:
    return retrieval_pb2.SearchResponse(
        hits=[_hit(hit) for hit in result.hits], mode=_MODE_TO_PROTO[result.mode]
    )


def documents_response(page: DocumentPage) -> retrieval_pb2.ListDocumentsResponse:
    return retrieval_pb2.ListDocumentsResponse(
        documents=[_summary(document) for document in page.documents],
        next_cursor=page.next_cursor,
    )


def collections_response(
    collections: Sequence[CollectionInfo],
) -> retrieval_pb2.ListCollectionsResponse:
    return retrieval_pb2.ListCollectionsResponse(collections=[_collection(c) for c in collections])


def reindex_response(result: ReindexResult) -> retrieval_pb2.ReindexCollectionResponse:
    return retrieval_pb2.ReindexCollectionResponse(
        collection=_collection(result.collection),
        previous_model=result.previous_model,
        committed=_committed(result.committed),
    )


def stored_turns(turns: Sequence[conversations_pb2.Turn]) -> list[StoredTurn]:
    """The turns of an append (the store stamps their time)."""
    return [StoredTurn(role=t.role, content=t.content, chunk_ids=tuple(t.chunk_ids)) for t in turns]


def conversation_message(found: StoredConversation) -> conversations_pb2.Conversation:
    return conversations_pb2.Conversation(
        conversation_id=found.conversation_id,
        turns=[_turn(turn) for turn in found.turns],
        created_at=_timestamp(found.created_at),
        updated_at=_timestamp(found.updated_at),
        owner=found.owner,
    )


def staged_document(
    request: retrieval_pb2.IngestDocumentRequest, collection: str
) -> StagedDocument:
    """A document of a job submission (its position is given when it is staged)."""
    if request.collection and request.collection != collection:
        raise InvalidInput(
            f"a document of a job into {collection!r} names the collection {request.collection!r}"
        )
    return StagedDocument(
        position=0,
        document_id=request.document_id,
        title=request.title,
        source=request.source,
        text=request.text,
        metadata=dict(request.metadata),
        segments=tuple(text_segments(request.segments)),
    )


def document_to_fetch(message: jobs_pb2.UrlDocument) -> StagedDocument:
    """A URL job's document; InvalidInput for a URL the knowledge base may not fetch."""
    return StagedDocument.to_fetch(check_fetch_url(message.url))


def document_error(message: jobs_pb2.DocumentError) -> DocumentError:
    return DocumentError.of(message.document_id, message.source, message.message)


def job_message(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        id=job.id,
        kind=_JOB_KIND_TO_PROTO[job.kind],
        collection=job.collection,
        owner=job.owner,
        state=_JOB_STATE_TO_PROTO[job.state],
        documents_total=job.documents_total,
        documents_done=job.documents_done,
        documents_failed=job.documents_failed,
        chunks_written=job.chunks_written,
        errors=[
            jobs_pb2.DocumentError(document_id=e.document_id, source=e.source, message=e.message)
            for e in job.errors
        ],
        created_at=_timestamp(job.created_at),
        reason=job.reason,
        cancel_requested=job.cancel_requested,
        resumes=job.resumes,
    )
    if job.started_at is not None:
        message.started_at.CopyFrom(_timestamp(job.started_at))
    if job.finished_at is not None:
        message.finished_at.CopyFrom(_timestamp(job.finished_at))
    return message


def _hit(hit: SearchHit) -> retrieval_pb2.SearchHit:
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
        page=hit.page or 0,
    )


def _collection(info: CollectionInfo) -> retrieval_pb2.CollectionInfo:
    return retrieval_pb2.CollectionInfo(
        name=info.name,
        documents=info.documents,
        chunks=info.chunks,
        embedding_model=info.embedding_model,
        dimension=info.dimension,
    )


def _summary(document: DocumentSummary) -> retrieval_pb2.DocumentSummary:
    return retrieval_pb2.DocumentSummary(
        document_id=document.document_id,
        title=document.title,
        source=document.source,
        chunks=document.chunks,
        content_hash=document.content_hash,
        metadata=document.metadata,
        ingested_at=_timestamp(document.ingested_at),
    )


def _turn(turn: StoredTurn) -> conversations_pb2.Turn:
    return conversations_pb2.Turn(
        role=turn.role,
        content=turn.content,
        created_at=_timestamp(turn.created_at),
        chunk_ids=list(turn.chunk_ids),
    )


def _timestamp(moment: datetime | None) -> Timestamp:
    stamp = Timestamp()
    if moment is not None:
        stamp.FromDatetime(moment)
    return stamp
