"""The knowledge base: documents cut into chunks, embedded and kept in LanceDB, one table per
collection.

    store = await KnowledgeStore.open("data/lancedb", embedder)
    result = await store.ingest("default", text=markdown, document_id="runbook.md")
    found = await store.search("default", "how do I restore a backup?", top_k=5)

Writes are atomic per document: the chunks of a new version are all embedded before anything
is written, then one ``merge_insert`` commit swaps the document's old chunks for the new ones,
so a reader sees either the whole old version or the whole new one. This process is the single
writer of its tables; an ``asyncio.Lock`` per collection orders its own writers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import lancedb
import pyarrow as pa
from lancedb.expr import Expr, col, lit
from lancedb.index import FTS
from lancedb.query import ColumnOrdering

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict, Internal, InvalidInput, NotFound
from bruno_retrieval.chunking import Chunk, chunk_text

DEFAULT_COLLECTION = "default"
MAX_DOCUMENT_ID_CHARS = 200

_COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_DERIVED_ID_HEX_CHARS = 16
# Reciprocal rank fusion constant from Cormack et al. (2009); damps the weight of top ranks.
_RRF_K = 60
# Each leg of a hybrid search fetches more than top_k so fusion has candidates to agree on.
_HYBRID_CANDIDATES_FACTOR = 3
# LanceDB advises optimizing (compaction, folding new rows into indexes) every ~20 writes.
_OPTIMIZE_EVERY_WRITES = 20

_RESULT_COLUMNS = [
    "chunk_id",
    "document_id",
    "chunk_index",
    "title",
    "source",
    "text",
    "heading_path",
    "metadata",
    "content_hash",
]


class Embedder(Protocol):
    """What the store needs from the embedding service (``EmbeddingClient`` is one)."""

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType
    ) -> list[list[float]]: ...


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


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    mode: SearchMode


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


def collection_name(name: str) -> str:
    """The table name of a collection: empty means ``default``; anything else must be a
    lower-case slug, because it becomes a directory or object-store prefix."""
    name = name or DEFAULT_COLLECTION
    if not _COLLECTION_NAME.fullmatch(name):
        raise InvalidInput(
            f"collection {name[:80]!r} must match {_COLLECTION_NAME.pattern} "
            "(lower-case letters, digits, '_' and '-', at most 63 characters)"
        )
    return name


def check_document_id(document_id: str) -> str:
    """Reject ids that could not be shown, filtered on or told apart reliably.

    Filters are built as typed expressions, never as SQL text, so quotes are harmless."""
    if not 1 <= len(document_id) <= MAX_DOCUMENT_ID_CHARS:
        raise InvalidInput(f"document_id must have 1 to {MAX_DOCUMENT_ID_CHARS} characters")
    if _CONTROL_CHARS.search(document_id) or document_id != document_id.strip():
        raise InvalidInput(
            "document_id must not contain control characters or surrounding whitespace"
        )
    return document_id


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def table_schema(dimension: int) -> pa.Schema:
    """One row per chunk; document-level fields are repeated on every chunk of a document."""
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("document_id", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("chunk_count", pa.int32(), nullable=False),
            pa.field("title", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("heading_path", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),  # JSON object of strings
            pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the document
            pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


class KnowledgeStore:
    """Ingests, searches, lists and deletes documents in LanceDB collections."""

    def __init__(
        self,
        db: lancedb.AsyncConnection,
        embedder: Embedder,
        *,
        chunk_size_tokens: int = 200,
        chunk_overlap_tokens: int = 40,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._chunk_size = chunk_size_tokens
        self._chunk_overlap = chunk_overlap_tokens
        # One handle per table: every read must see the commits made through the writer's.
        self._tables: dict[str, Any] = {}
        self._open_lock = asyncio.Lock()
        self._write_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._writes_since_optimize: defaultdict[str, int] = defaultdict(int)

    @classmethod
    async def open(
        cls,
        uri: str,
        embedder: Embedder,
        *,
        chunk_size_tokens: int = 200,
        chunk_overlap_tokens: int = 40,
        read_consistency_interval: timedelta | None = None,
    ) -> KnowledgeStore:
        """Connect to the LanceDB database at ``uri`` (a directory or an ``s3://`` URI).

        ``read_consistency_interval`` matters only when other processes write the same tables.
        """
        db = await lancedb.connect_async(uri, read_consistency_interval=read_consistency_interval)
        # Connecting is lazy; listing proves the location is readable before health says SERVING.
        await db.list_tables(limit=1)
        return cls(
            db,
            embedder,
            chunk_size_tokens=chunk_size_tokens,
            chunk_overlap_tokens=chunk_overlap_tokens,
        )

    def close(self) -> None:
        for table in self._tables.values():
            table.close()
        self._tables.clear()

    async def ingest(
        self,
        collection: str,
        *,
        text: str,
        document_id: str = "",
        title: str = "",
        source: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> IngestResult:
        """Store ``text`` as document ``document_id`` (derived from the text when empty).

        The same id with the same text is a no-op that calls no model; changed text replaces
        every old chunk in one commit. If embedding fails nothing is written.
        """
        collection = collection_name(collection)
        if not text.strip():
            raise InvalidInput("text must not be empty")
        digest = content_hash(text)
        document_id = check_document_id(document_id or digest[:_DERIVED_ID_HEX_CHARS])

        current = await self._current_version(collection, document_id)
        if current is not None and current[0] == digest:
            return IngestResult(
                collection, document_id, IngestOutcome.UNCHANGED, current[1], digest
            )

        chunks = chunk_text(text, size_tokens=self._chunk_size, overlap_tokens=self._chunk_overlap)
        # Embedding happens outside the lock: it is the slow part and writes nothing.
        vectors = await self._embedder.embed(
            [_embedding_input(chunk) for chunk in chunks], embedding_pb2.INPUT_TYPE_DOCUMENT
        )
        dimension = _check_vectors(vectors, len(chunks))

        async with self._write_locks[collection]:
            table = await self._table(collection) or await self._create_table(collection, dimension)
            await _check_dimension(table, collection, dimension)
            current = await self._current_version(collection, document_id)
            if current is not None and current[0] == digest:
                outcome = IngestOutcome.UNCHANGED
                return IngestResult(collection, document_id, outcome, current[1], digest)
            rows = _chunk_rows(
                document_id=document_id,
                title=title,
                source=source,
                metadata=metadata or {},
                digest=digest,
                chunks=chunks,
                vectors=vectors,
                schema=await table.schema(),
            )
            await (
                table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(_is_document(document_id))
                .execute(rows)
            )
            await self._after_write(collection, table)
        outcome = IngestOutcome.CREATED if current is None else IngestOutcome.REPLACED
        return IngestResult(collection, document_id, outcome, len(chunks), digest)

    async def search(
        self, collection: str, query: str, *, top_k: int, mode: SearchMode = SearchMode.HYBRID
    ) -> SearchResult:
        """The ``top_k`` chunks of ``collection`` that best match ``query``.

        VECTOR ranks by cosine similarity (score = 1 - cosine distance), TEXT by BM25 over the
        chunk text, HYBRID fuses both rankings by reciprocal rank fusion (score = the summed
        1 / (60 + rank)). A collection that does not exist yet is empty if it is ``default``
        and NotFound otherwise.
        """
        collection = collection_name(collection)
        if not query.strip():
            raise InvalidInput("query must not be empty")
        if top_k < 1:
            raise InvalidInput("top_k must be positive")
        table = await self._existing_table(collection)
        if table is None:
            return SearchResult([], mode)
        if mode is SearchMode.TEXT:
            return SearchResult(await _text_hits(table, query, top_k), mode)
        vector = await self._query_vector(table, collection, query)
        if mode is SearchMode.VECTOR:
            return SearchResult(await _vector_hits(table, vector, top_k), mode)
        candidates = top_k * _HYBRID_CANDIDATES_FACTOR
        by_vector, by_text = await asyncio.gather(
            _vector_hits(table, vector, candidates), _text_hits(table, query, candidates)
        )
        return SearchResult(reciprocal_rank_fusion(by_vector, by_text, top_k), mode)

    async def list_documents(
        self, collection: str, *, limit: int, cursor: str = ""
    ) -> DocumentPage:
        """A page of documents ordered by id, starting after ``cursor``."""
        collection = collection_name(collection)
        if limit < 1:
            raise InvalidInput("limit must be positive")
        if len(cursor) > MAX_DOCUMENT_ID_CHARS:
            raise InvalidInput("cursor is not one this service gave out")
        table = await self._existing_table(collection)
        if table is None:
            return DocumentPage([], "")
        first_chunks = col("chunk_index") == lit(0)
        if cursor:
            first_chunks = first_chunks & (col("document_id") > lit(cursor))
        rows = (
            await table.query()
            .where(first_chunks)
            .order_by([ColumnOrdering(column_name="document_id")])
            .select(
                [
                    "document_id",
                    "title",
                    "source",
                    "chunk_count",
                    "content_hash",
                    "metadata",
                    "ingested_at",
                ]
            )
            .limit(limit + 1)
            .to_arrow()
        ).to_pylist()
        documents = [
            DocumentSummary(
                document_id=row["document_id"],
                title=row["title"],
                source=row["source"],
                chunks=row["chunk_count"],
                content_hash=row["content_hash"],
                ingested_at=row["ingested_at"],
                metadata=json.loads(row["metadata"]),
            )
            for row in rows[:limit]
        ]
        next_cursor = documents[-1].document_id if len(rows) > limit else ""
        return DocumentPage(documents, next_cursor)

    async def delete_document(self, collection: str, document_id: str) -> int:
        """Remove every chunk of a document; returns how many. NotFound when unknown."""
        collection = collection_name(collection)
        check_document_id(document_id)
        async with self._write_locks[collection]:
            table = await self._table(collection)
            deleted: int = 0
            if table is not None:
                deleted = (await table.delete(_is_document(document_id))).num_deleted_rows
            if table is None or deleted == 0:
                raise NotFound(f"document {document_id!r} not found in collection {collection!r}")
            await self._after_write(collection, table)
        return deleted

    async def _existing_table(self, collection: str) -> Any | None:
        table = await self._table(collection)
        if table is None and collection != DEFAULT_COLLECTION:
            raise NotFound(f"collection {collection!r} not found")
        return table

    async def _table(self, collection: str) -> Any | None:
        """The one cached handle of a collection's table, or None if there is no such table."""
        if (table := self._tables.get(collection)) is not None:
            return table
        async with self._open_lock:
            if (table := self._tables.get(collection)) is not None:
                return table
            try:
                table = await self._db.open_table(collection)
            except ValueError:  # LanceDB's "table not found"
                return None
            return await self._remember(collection, table)

    async def _create_table(self, collection: str, dimension: int) -> Any:
        async with self._open_lock:
            table = await self._db.create_table(collection, schema=table_schema(dimension))
            return await self._remember(collection, table)

    async def _remember(self, collection: str, table: Any) -> Any:
        if not any(index.columns == ["text"] for index in await table.list_indices()):
            # Native full-text index; rows written after it are searched unindexed until the
            # next optimize, so text search is complete either way.
            await table.create_index("text", config=FTS())
        self._tables[collection] = table
        return table

    async def _current_version(self, collection: str, document_id: str) -> tuple[str, int] | None:
        """(content hash, chunk count) of the stored document, or None."""
        table = await self._table(collection)
        if table is None:
            return None
        rows = (
            await table.query()
            .where(_is_document(document_id) & (col("chunk_index") == lit(0)))
            .select(["content_hash", "chunk_count"])
            .limit(1)
            .to_arrow()
        ).to_pylist()
        return (rows[0]["content_hash"], rows[0]["chunk_count"]) if rows else None

    async def _query_vector(self, table: Any, collection: str, query: str) -> list[float]:
        vectors = await self._embedder.embed([query], embedding_pb2.INPUT_TYPE_QUERY)
        dimension = _check_vectors(vectors, 1)
        await _check_dimension(table, collection, dimension)
        return vectors[0]

    async def _after_write(self, collection: str, table: Any) -> None:
        self._writes_since_optimize[collection] += 1
        if self._writes_since_optimize[collection] >= _OPTIMIZE_EVERY_WRITES:
            self._writes_since_optimize[collection] = 0
            await table.optimize()


def _embedding_input(chunk: Chunk) -> str:
    # The heading path tells the model what a chunk deep inside a section is about.
    return f"{chunk.heading_path}\n\n{chunk.text}" if chunk.heading_path else chunk.text


def _is_document(document_id: str) -> Expr:
    return col("document_id") == lit(document_id)


def _check_vectors(vectors: list[list[float]], expected: int) -> int:
    """The common dimension of ``vectors``; Internal if the embedder broke its contract."""
    if len(vectors) != expected:
        raise Internal(f"embedder returned {len(vectors)} vectors for {expected} texts")
    dimensions = {len(vector) for vector in vectors}
    if len(dimensions) != 1 or 0 in dimensions:
        raise Internal(f"embedder returned vectors of dimensions {sorted(dimensions)}")
    if not all(math.isfinite(value) for vector in vectors for value in vector):
        raise Internal("embedder returned a vector with NaN or infinite values")
    return dimensions.pop()


async def _check_dimension(table: Any, collection: str, dimension: int) -> None:
    stored = (await table.schema()).field("vector").type.list_size
    if stored != dimension:
        raise Conflict(
            f"collection {collection!r} holds {stored}-dimensional vectors but the embedding "
            f"model gives {dimension}; ingest into a new collection after changing models"
        )


def _chunk_rows(
    *,
    document_id: str,
    title: str,
    source: str,
    metadata: Mapping[str, str],
    digest: str,
    chunks: list[Chunk],
    vectors: list[list[float]],
    schema: pa.Schema,
) -> pa.Table:
    now = datetime.now(UTC)
    metadata_json = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
    return pa.Table.from_pylist(
        [
            {
                "chunk_id": f"{document_id}:{chunk.index}",
                "document_id": document_id,
                "chunk_index": chunk.index,
                "chunk_count": len(chunks),
                "title": title,
                "source": source,
                "text": chunk.text,
                "heading_path": chunk.heading_path,
                "metadata": metadata_json,
                "content_hash": digest,
                "ingested_at": now,
                "vector": vector,
            }
            for chunk, vector in zip(chunks, vectors, strict=True)
        ],
        schema=schema,
    )


def _hit(row: Mapping[str, Any], score: float) -> SearchHit:
    return SearchHit(
        document_id=row["document_id"],
        chunk_id=row["chunk_id"],
        chunk_index=row["chunk_index"],
        title=row["title"],
        source=row["source"],
        text=row["text"],
        heading_path=row["heading_path"],
        score=score,
        content_hash=row["content_hash"],
        metadata=json.loads(row["metadata"]),
    )


async def _vector_hits(table: Any, vector: list[float], limit: int) -> list[SearchHit]:
    rows = (
        await table.query()
        .nearest_to(vector)
        .distance_type("cosine")
        .select([*_RESULT_COLUMNS, "_distance"])
        .limit(limit)
        .to_arrow()
    ).to_pylist()
    return [_hit(row, 1.0 - row["_distance"]) for row in rows]


async def _text_hits(table: Any, query: str, limit: int) -> list[SearchHit]:
    rows = (
        await table.query()
        .nearest_to_text(query, columns="text")
        .select([*_RESULT_COLUMNS, "_score"])
        .limit(limit)
        .to_arrow()
    ).to_pylist()
    return [_hit(row, row["_score"]) for row in rows]


def reciprocal_rank_fusion(
    by_vector: list[SearchHit], by_text: list[SearchHit], top_k: int
) -> list[SearchHit]:
    """Reciprocal rank fusion of two rankings of the same collection.

    The two legs are separate reads, so a replace may commit between them; a document seen
    in two versions keeps only the vector leg's version, so no answer mixes versions."""
    version = {hit.document_id: hit.content_hash for hit in by_vector}
    by_text = [hit for hit in by_text if version.get(hit.document_id) in (None, hit.content_hash)]
    scores: defaultdict[str, float] = defaultdict(float)
    hits: dict[str, SearchHit] = {}
    for ranking in (by_vector, by_text):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] += 1.0 / (_RRF_K + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:top_k]
    return [dataclasses.replace(hits[chunk_id], score=scores[chunk_id]) for chunk_id in best]
