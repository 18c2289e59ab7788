"""The rows the knowledge base keeps: one per chunk in a collection's table, one per collection
in the catalog, and how they are built from, and read back into, the domain's values."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from bruno_retrieval.chunking import Chunk
from bruno_retrieval.knowledge.filters import filter_terms
from bruno_retrieval.knowledge.results import DocumentSummary, SearchHit

# The columns a search reads (never the vector).
RESULT_COLUMNS = [
    "chunk_id",
    "document_id",
    "chunk_index",
    "title",
    "source",
    "text",
    "heading_path",
    "page",
    "metadata",
    "content_hash",
]
# What a search reads of a table from before pages (ensure_page_column): its hits have no page.
RESULT_COLUMNS_BEFORE_PAGES = [column for column in RESULT_COLUMNS if column != "page"]
# The columns a document listing reads from each document's first chunk.
SUMMARY_COLUMNS = [
    "document_id",
    "title",
    "source",
    "chunk_count",
    "content_hash",
    "metadata",
    "ingested_at",
]

CATALOG_SCHEMA = pa.schema(
    [
        pa.field("collection", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("dimension", pa.int32(), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


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
            # The page of a paged original the chunk starts on; null for other documents. A
            # table from before pages gets the column, all null (ensure_page_column).
            pa.field("page", pa.int32(), nullable=True),
            pa.field("metadata", pa.string(), nullable=False),  # JSON object of strings
            pa.field("filter_terms", pa.list_(pa.string()), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the document
            pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


def chunk_rows(
    *,
    document_id: str,
    title: str,
    source: str,
    metadata: Mapping[str, str],
    digest: str,
    chunks: Sequence[Chunk],
    pages: Sequence[int | None],
    vectors: Sequence[Sequence[float]],
) -> pa.Table:
    """The rows of one document version (``pages``: each chunk's), its vectors of one
    dimension."""
    now = datetime.now(UTC)
    metadata_json = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
    terms = filter_terms(metadata)
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
                "page": page,
                "metadata": metadata_json,
                "filter_terms": terms,
                "content_hash": digest,
                "ingested_at": now,
                "vector": vector,
            }
            for chunk, page, vector in zip(chunks, pages, vectors, strict=True)
        ],
        schema=table_schema(len(vectors[0])),
    )


def reindexed_rows(
    rows: Sequence[Mapping[str, Any]], vectors: Sequence[Sequence[float]]
) -> pa.Table:
    """Stored rows with new vectors; a row from before metadata filters gets its terms."""
    out = []
    for row, vector in zip(rows, vectors, strict=True):
        new = dict(row)
        if "filter_terms" not in new:
            new["filter_terms"] = filter_terms(json.loads(new["metadata"]))
        new["vector"] = vector
        out.append(new)
    return pa.Table.from_pylist(out, schema=table_schema(len(vectors[0])))


async def ensure_page_column(table: Any) -> None:
    """Give a table from before pages its ``page`` column (nulls: no page known)."""
    if "page" not in (await table.schema()).names:
        await table.add_columns(pa.field("page", pa.int32(), nullable=True))


class PagedTables:
    """Which tables have the ``page`` column, for what a search may read of them.

    A table from before pages gets the column only when the writer opens it; a reader can
    reach it first (during an upgrade) and must read it without the column, writing nothing.
    Once a table has the column it keeps it, so only a table seen without it is looked at
    again (the writer may add it meanwhile, and a reader's table follows the writer's commits).

        columns = await paged_tables.result_columns(table)
    """

    def __init__(self) -> None:
        self._paged: set[str] = set()

    async def result_columns(self, table: Any) -> list[str]:
        if table.name in self._paged:
            return RESULT_COLUMNS
        if "page" not in (await table.schema()).names:
            return RESULT_COLUMNS_BEFORE_PAGES
        self._paged.add(table.name)
        return RESULT_COLUMNS


def catalog_row(collection: str, table: str, model: str, dimension: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "collection": collection,
                "table": table,
                "model": model,
                "dimension": dimension,
                "updated_at": datetime.now(UTC),
            }
        ],
        schema=CATALOG_SCHEMA,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Ranking:
    """One search leg's rows, best first, column by column as LanceDB answered them (a column
    name -> its values, :data:`RESULT_COLUMNS`), with each row's score (higher is better).

    Fusion reads only the ids, versions and scores (:func:`.fusion.fuse`); a row becomes a
    :class:`SearchHit` only when the search answers it (:meth:`hit`), so the candidates a
    hybrid search fetches and fusion drops cost no Python object each."""

    columns: Mapping[str, list[Any]]
    scores: list[float]

    @property
    def chunk_ids(self) -> list[str]:
        return self.columns.get("chunk_id", [])

    @property
    def document_ids(self) -> list[str]:
        return self.columns.get("document_id", [])

    @property
    def content_hashes(self) -> list[str]:
        return self.columns.get("content_hash", [])

    def hit(self, at: int, score: float) -> SearchHit:
        """The row at ``at`` (0 = best) as a hit scored ``score``."""
        columns = self.columns
        pages = columns.get("page")  # absent from a table from before pages
        return SearchHit(
            document_id=columns["document_id"][at],
            chunk_id=columns["chunk_id"][at],
            chunk_index=columns["chunk_index"][at],
            title=columns["title"][at],
            source=columns["source"][at],
            text=columns["text"][at],
            heading_path=columns["heading_path"][at],
            page=None if pages is None else pages[at],
            score=score,
            content_hash=columns["content_hash"][at],
            metadata=json.loads(columns["metadata"][at]),
        )

    def hits(self, limit: int | None = None) -> list[SearchHit]:
        """The first ``limit`` rows (all when None) as hits with their own scores."""
        count = len(self.scores) if limit is None else min(limit, len(self.scores))
        return [self.hit(at, self.scores[at]) for at in range(count)]


def document_summary(row: Mapping[str, Any]) -> DocumentSummary:
    return DocumentSummary(
        document_id=row["document_id"],
        title=row["title"],
        source=row["source"],
        chunks=row["chunk_count"],
        content_hash=row["content_hash"],
        ingested_at=row["ingested_at"],
        metadata=json.loads(row["metadata"]),
    )
