"""The reads the knowledge base makes of a collection's table: rankings for search, the stored
version of documents, a page of documents, and the rows of a table as a stream."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from lancedb.expr import Expr, col, lit
from lancedb.query import ColumnOrdering, FullTextQuery

from bruno_retrieval.knowledge.ann import VectorIndexes
from bruno_retrieval.knowledge.results import DocumentSummary
from bruno_retrieval.knowledge.schema import SUMMARY_COLUMNS, Ranking, document_summary


async def ranked_columns(query: Any) -> dict[str, list[Any]]:
    """The rows of a search ``query`` (LanceDB's ``AsyncFTSQuery`` or ``AsyncVectorQuery``),
    executed by LanceDB's query itself, column by column (none for no row).

    LanceDB's ``to_arrow()`` first looks up the table's schema, another wait on its runtime
    and a walk over the projection, to give blob columns their row ids; these tables have no
    blob column, and a search paid that on each leg: ~0.3-0.7 ms of CPU of 3-4
    (docs/benchmarks.md, "Third pass: retrieval"). The columns are read as lists, not as a
    dict per row: fusion needs a few of them for every candidate, the answer every column for a
    few rows (:class:`.schema.Ranking`)."""
    stream = await query._inner.execute(max_batch_length=None, timeout=None)
    columns: dict[str, list[Any]] = {}
    async for batch in stream:
        for name, values in batch.to_pydict().items():
            columns.setdefault(name, []).extend(values)
    return columns


def first_chunks() -> Expr:
    """Rows of a document's first chunk: one row per document."""
    return col("chunk_index") == lit(0)


async def text_ranking(
    table: Any, query: FullTextQuery, limit: int, where: str | None, columns: list[str]
) -> Ranking:
    """The ``limit`` chunks best matching ``query`` by BM25 over their text (``columns``: the
    result columns the table has, :class:`.schema.PagedTables`)."""
    search = table.query().nearest_to_text(query)
    if where:
        search = search.where(where)
    found = await ranked_columns(search.select([*columns, "_score"]).limit(limit))
    return Ranking(found, found.pop("_score", []))


async def vector_ranking(
    table: Any,
    vector: list[float],
    limit: int,
    where: str | None,
    indexes: VectorIndexes,
    columns: list[str],
    top_k: int | None = None,
) -> Ranking:
    """The ``limit`` chunks nearest ``vector`` (score = cosine similarity); ``top_k`` of them
    are answered, the rest are candidates for a fusion (``columns``: as for
    :func:`text_ranking`)."""
    query = table.query().nearest_to(vector).distance_type("cosine")
    query = indexes.tune(query, table.name, limit, top_k or limit)
    if where:
        query = query.where(where)
    found = await ranked_columns(query.select([*columns, "_distance"]).limit(limit))
    return Ranking(found, [1.0 - distance for distance in found.pop("_distance", [])])


@dataclasses.dataclass(frozen=True, slots=True)
class StoredVersion:
    """What is stored of a document: its text's hash, its chunk count, whether its chunks
    know their pages."""

    digest: str
    chunks: int
    paged: bool

    def covers(self, digest: str, *, paged: bool) -> bool:
        """Whether storing text of ``digest`` (with pages, or not) would add nothing: the
        same text, and pages already known if the new version has them."""
        return self.digest == digest and (self.paged or not paged)


async def versions(table: Any, document_ids: list[str]) -> dict[str, StoredVersion]:
    """The stored version of each document among ``document_ids``."""
    rows = (
        await table.query()
        .where(col("document_id").isin(document_ids) & first_chunks())
        .select(["document_id", "content_hash", "chunk_count", "page"])
        .to_arrow()
    ).to_pylist()
    return {
        row["document_id"]: StoredVersion(
            row["content_hash"], row["chunk_count"], row["page"] is not None
        )
        for row in rows
    }


async def documents_after(table: Any, cursor: str, limit: int) -> list[DocumentSummary]:
    """Up to ``limit`` documents ordered by id, those after ``cursor`` (all when empty)."""
    where = first_chunks() & (col("document_id") > lit(cursor)) if cursor else first_chunks()
    rows = (
        await table.query()
        .where(where)
        .order_by([ColumnOrdering(column_name="document_id")])
        .select(SUMMARY_COLUMNS)
        .limit(limit)
        .to_arrow()
    ).to_pylist()
    return [document_summary(row) for row in rows]


async def document_count(table: Any) -> int:
    return int(await table.count_rows(first_chunks().to_sql()))


async def row_batches(
    table: Any, columns: list[str], size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """The table's rows (``columns`` only), ``size`` at a time, read as a stream."""
    rows: list[dict[str, Any]] = []
    async for record_batch in await table.query().select(columns).to_batches():
        rows.extend(record_batch.to_pylist())
        while len(rows) >= size:
            yield rows[:size]
            rows = rows[size:]
    if rows:
        yield rows
