"""Retrieval's knowledge base: documents in LanceDB collections, searched by vector, keyword or
both. :class:`KnowledgeStore` is its face; the modules beside it each hold one idea of it.

    store = await KnowledgeStore.open(settings, embedder)
    await store.ingest("default", text=markdown, document_id="runbook.md")
"""

from bruno_retrieval.knowledge.ann import AnnConfig, AnnIndex
from bruno_retrieval.knowledge.catalog import CATALOG_TABLE
from bruno_retrieval.knowledge.embedding import Embedded, Embedder, ModelNotServed
from bruno_retrieval.knowledge.fusion import Fusion, FusionConfig, fuse
from bruno_retrieval.knowledge.pages import TextSegment
from bruno_retrieval.knowledge.rerank import HttpReranker
from bruno_retrieval.knowledge.results import (
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
)
from bruno_retrieval.knowledge.store import KnowledgeStore

__all__ = [
    "CATALOG_TABLE",
    "AnnConfig",
    "AnnIndex",
    "CollectionInfo",
    "Committed",
    "DeleteResult",
    "DocumentPage",
    "DocumentSummary",
    "Embedded",
    "Embedder",
    "Fusion",
    "FusionConfig",
    "HttpReranker",
    "IngestOutcome",
    "IngestResult",
    "KnowledgeStore",
    "ModelNotServed",
    "ReindexResult",
    "SearchHit",
    "SearchMode",
    "SearchResult",
    "TextSegment",
    "fuse",
]
