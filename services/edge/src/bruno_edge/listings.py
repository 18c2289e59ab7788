"""Retrieval's document listings in the edge's public shape, written once for the documents
route and the MCP documents resource.

    documents = [document_summary(doc) for doc in page.documents]
"""

from __future__ import annotations

from datetime import UTC

from bruno.retrieval.v1 import retrieval_pb2
from bruno_edge.schemas import DocumentSummary


def document_summary(doc: retrieval_pb2.DocumentSummary) -> DocumentSummary:
    """One listed document as ``DocumentSummary``; ``ingested_at`` in UTC (``None`` when the
    store has no time for it)."""
    return DocumentSummary(
        document_id=doc.document_id,
        title=doc.title,
        source=doc.source,
        chunks=doc.chunks,
        content_hash=doc.content_hash,
        metadata=dict(doc.metadata),
        # A protobuf Timestamp is UTC; without tzinfo the JSON would carry no offset at all.
        ingested_at=doc.ingested_at.ToDatetime(tzinfo=UTC) if doc.HasField("ingested_at") else None,
    )
