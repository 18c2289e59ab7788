"""What the knowledge base answers: the outcome of an ingest, search hits, document and
collection summaries. Plain frozen values; the servicer translates them into messages."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum


class IngestOutcome(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REPLACED = "replaced"


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Committed:
    """Where a write landed: the collection's table and the table version that holds it. A
    read asking for at least this (``at_least``) sees the write or a later state."""

    table: str
    version: int

    def __str__(self) -> str:  # the consistency token the edge hands out
        return f"{self.table}@{self.version}"


@dataclasses.dataclass(frozen=True, slots=True)
class IngestResult:
    collection: str
    document_id: str
    outcome: IngestOutcome
    chunks: int
    content_hash: str
    committed: Committed | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteResult:
    chunks: int
    committed: Committed


@dataclasses.dataclass(frozen=True, slots=True)
class SearchHit:
    document_id: str
    chunk_id: str
    chunk_index: int
    title: str
    source: str
    text: str
    heading_path: str
    score: float  # higher is better; comparable within one search only
    content_hash: str
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    page: int | None = None  # of a paged original (a PDF), where the chunk starts


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    mode: SearchMode  # the mode that answered: TEXT while a reindex makes vectors unusable


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentSummary:
    document_id: str
    title: str
    source: str
    chunks: int
    content_hash: str
    ingested_at: datetime
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentPage:
    documents: list[DocumentSummary]
    next_cursor: str  # empty on the last page


@dataclasses.dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    embedding_model: str
    dimension: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReindexResult:
    collection: CollectionInfo
    previous_model: str
    committed: Committed | None = None
