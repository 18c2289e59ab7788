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


@dataclasses.dataclass(frozen=True, slots=True)
class IngestResult:
    collection: str
    document_id: str
    outcome: IngestOutcome
    chunks: int
    content_hash: str


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
