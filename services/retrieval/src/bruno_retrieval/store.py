"""The knowledge base: documents cut into chunks, embedded and kept in LanceDB, one table per
collection.

    store = await KnowledgeStore.open("data/lancedb", embedder)
    result = await store.ingest("default", text=markdown, document_id="runbook.md")
    found = await store.search("default", "how do I restore a backup?", top_k=5)

Writes are atomic per document: the chunks of a new version are all embedded before anything
is written, then one ``merge_insert`` commit swaps the document's old chunks for the new ones,
so a reader sees either the whole old version or the whole new one. Concurrent ingests into one
collection are committed together (group commit): whoever takes the collection's write lock
writes every document waiting at that moment in one commit, so many small documents do not
cost one table version each. This process is the single writer of its tables.

A small catalog table (``_bruno_collections``) records, per collection, the table holding its
chunks and the embedding model and dimension it was built with. Ingesting or searching with
another model is a :class:`Conflict` until :meth:`KnowledgeStore.reindex` re-embeds the
collection into a shadow table and switches the catalog over in one step; the old table is
dropped once no search is reading it, so search never fails during a reindex.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import lancedb
import pyarrow as pa
from lancedb.expr import Expr, col, lit
from lancedb.index import FTS, IvfHnswSq, IvfPq
from lancedb.query import ColumnOrdering

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict, Internal, InvalidInput, NotFound, Unavailable
from bruno_retrieval.chunking import (
    DEFAULT_OVERLAP_TOKENS,
    DEFAULT_SIZE_TOKENS,
    Chunk,
    chunk_text,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_COLLECTION = "default"
MAX_DOCUMENT_ID_CHARS = 200
MAX_FILTERS = 16
CATALOG_TABLE = "_bruno_collections"
# Filter keys that name a column; any other key is looked up in the metadata.
COLUMN_FILTERS = frozenset({"source", "title", "document_id"})

_COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_DERIVED_ID_HEX_CHARS = 16
# Reciprocal rank fusion constant from Cormack et al. (2009); damps the weight of top ranks.
_RRF_K = 60
# Each leg of a hybrid search fetches more than top_k so fusion has candidates to agree on.
_HYBRID_CANDIDATES_FACTOR = 4
_MIN_HYBRID_CANDIDATES = 20
# Vectors per HNSW graph (IVF partition) of an HNSW_SQ index.
_HNSW_PARTITION_ROWS = 250_000
# LanceDB advises optimizing (compaction, folding new rows into indexes) every ~20 writes.
_OPTIMIZE_EVERY_WRITES = 20
# One group commit writes at most this many documents.
_MAX_DOCUMENTS_PER_COMMIT = 256
_REINDEX_BATCH = 256
# How long a switch-over waits for searches still reading the old table before dropping it.
_DRAIN_SECONDS = 30.0

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

    async def model(self) -> str:
        """The name of the model that made the vectors of the latest ``embed``."""
        ...


class IngestOutcome(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REPLACED = "replaced"


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


class Fusion(StrEnum):
    """How hybrid search combines its vector and text rankings (see :func:`fuse`)."""

    COSINE = "cosine"  # the vector leg's raw cosine similarity plus the text leg scaled to [0, 1]
    RRF = "rrf"  # weighted reciprocal rank fusion
    MINMAX = "minmax"  # weighted sum of scores scaled to [0, 1] per leg
    ZSCORE = "zscore"  # weighted sum of standardised scores per leg


@dataclasses.dataclass(frozen=True, slots=True)
class FusionConfig:
    """The fusion hybrid search uses; ``vector_weight`` is the vector leg's share (0..1).

    The default was chosen by ``make bench-retrieval`` on Cranfield and on a paraphrase
    corpus (docs/benchmarks.md): 0.92 x cosine similarity + 0.08 x the min-max scaled BM25
    score beats both single modes on Cranfield by 7% and stays within noise of vector search
    on paraphrases, where equal-weight RRF loses a third. Its scores keep the cosine's
    absolute scale (about 0..1), so one relevance threshold means the same for every query."""

    method: Fusion = Fusion.COSINE
    vector_weight: float = 0.92

    def __post_init__(self) -> None:
        if not 0.0 <= self.vector_weight <= 1.0:
            raise ValueError("vector_weight must be between 0 and 1")


class AnnIndex(StrEnum):
    """The approximate index a collection's vectors get (see :class:`AnnConfig`)."""

    HNSW_SQ = "hnsw_sq"  # a graph over 8-bit scalar-quantised vectors
    IVF_PQ = "ivf_pq"  # inverted lists of product-quantised vectors


# Candidates re-ranked by exact distance, x top_k, unless configured: 8-bit scalar quantisation
# orders near neighbours almost right, product quantisation recalls 45% without it.
_REFINE_FACTORS = {AnnIndex.HNSW_SQ: 2, AnnIndex.IVF_PQ: 10}


@dataclasses.dataclass(frozen=True, slots=True)
class AnnConfig:
    """When the vector column gets an approximate index, which one and how it is searched.

    ``min_rows``: past this many chunks the index is built in the background (0 turns ANN
    off); exact search costs ~0.55 ms per 1,000 chunks of 384 dimensions on 2 cores, so
    ~11 ms at 20,000. ``index``: HNSW_SQ (the default) walks a graph of 8-bit quantised vectors
    keeping ``ef`` candidates in each of the ``nprobes`` nearest of its partitions (one per
    250,000 chunks present when it is built); IVF_PQ searches ``nprobes`` of its √n partitions
    of product-quantised vectors. Either way ``refine_factor`` x top_k candidates are re-ranked
    by exact distance (unset: 2 for HNSW_SQ, 10 for IVF_PQ), so scores are exact cosines —
    without it HNSW_SQ's distances are off by up to 0.28, which would move the fusion and the
    relevance threshold. Measured at 100,000 chunks (docs/benchmarks.md): recall@10 against
    exact search 1.000 for both with these defaults; HNSW_SQ answers in ~4 ms instead of 5-6
    and cuts hybrid search by ~13%, for a longer build (~1 min per 100,000 chunks on 2 cores,
    in the background, against seconds) and ten times the size (~0.6 KB per 384-dim chunk
    against ~0.06 KB). IVF_PQ suits a memory-tight host with millions of chunks."""

    min_rows: int = 20_000
    index: AnnIndex = AnnIndex.HNSW_SQ
    ef: int = 80
    nprobes: int = 20
    refine_factor: int | None = None

    def index_config(self, rows: int, dimension: int) -> IvfHnswSq | IvfPq:
        """The LanceDB index to build over ``rows`` vectors of ``dimension``."""
        if self.index is AnnIndex.HNSW_SQ:
            # One graph per partition: a graph's build holds its vectors in memory.
            partitions = max(1, rows // _HNSW_PARTITION_ROWS)
            return IvfHnswSq(distance_type="cosine", num_partitions=partitions)
        return IvfPq(
            distance_type="cosine",
            num_partitions=max(1, int(math.sqrt(rows))),
            num_sub_vectors=_sub_vectors(dimension),
        )

    def tune(self, query: Any, index: AnnIndex, limit: int, top_k: int) -> Any:
        """``query`` (a vector query of ``limit`` rows answering ``top_k``) set up to search
        an ``index`` of this kind."""
        refine = self.refine_for(index, limit, top_k)
        # ef: the HNSW walk must keep at least the rows the refine step re-ranks. IVF-PQ
        # ignores it; set for both, a search stays valid while an index is being replaced by
        # one of the other kind.
        return query.nprobes(self.nprobes).refine_factor(refine).ef(max(self.ef, limit * refine))

    def refine_for(self, index: AnnIndex, limit: int, top_k: int) -> int:
        """The refine factor for a query of ``limit`` rows of which ``top_k`` are answered.

        Hybrid search asks the vector leg for more candidates than it answers (40 for a top 10)
        so the fusion can weigh them; re-ranking ``refine_factor`` x *candidates* rows by exact
        distance (400 for IVF_PQ) would multiply the rows read, the slowest part of an ANN
        query. The pool is ``refine_factor`` x top_k rounded up to a multiple of ``limit``
        (120), so the top_k come out as a plain vector search's would and the other candidates
        are ordered by exact distance within it. Measured at 100,000 chunks: the fused top 10
        equal an exact-vector hybrid's for every probe with either pool (docs/benchmarks.md).
        """
        factor = self.refine_factor or _REFINE_FACTORS[index]
        return max(1, -(-factor * top_k // limit))


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


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """A catalog row: which table holds a collection and what model made its vectors."""

    collection: str
    table: str
    model: str  # "" for a table adopted from before the catalog: the next model is recorded
    dimension: int


@dataclasses.dataclass
class _PendingWrite:
    document_id: str
    digest: str
    model: str
    dimension: int
    rows: pa.Table
    future: asyncio.Future[tuple[IngestOutcome, int]]


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


def filter_terms(metadata: Mapping[str, str]) -> list[str]:
    """The exact-match terms a chunk is found by: one per metadata pair, plus one per item of a
    comma-separated value (so ``tags="k8s, backup"`` matches the filter ``tags=backup``)."""
    terms: set[str] = set()
    for key, value in metadata.items():
        terms.add(_term(key, value))
        if "," in value:
            terms.update(_term(key, item.strip()) for item in value.split(",") if item.strip())
    return sorted(terms)


def _term(key: str, value: str) -> str:
    return json.dumps([key, value], ensure_ascii=False)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def filter_expression(filters: Mapping[str, str]) -> str | None:
    """The SQL predicate for exact-match ``filters`` (all must hold), values always quoted."""
    if len(filters) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters")
    clauses = []
    for key, value in sorted(filters.items()):
        if not key or len(key) > 128 or len(value) > 2_000 or _CONTROL_CHARS.search(key):
            raise InvalidInput(
                "filter keys must have 1 to 128 characters (no control characters), "
                "values at most 2000"
            )
        if key in COLUMN_FILTERS:
            # Quoted here: lancedb's lit().to_sql() leaves a backslash-quote open (injection).
            clauses.append(f"{key} = {_sql_string(value)}")
        else:
            clauses.append(f"array_has(filter_terms, {_sql_string(_term(key, value))})")
    return " AND ".join(clauses) or None


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
            pa.field("filter_terms", pa.list_(pa.string()), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the document
            pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


_CATALOG_SCHEMA = pa.schema(
    [
        pa.field("collection", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("dimension", pa.int32(), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class KnowledgeStore:
    """Ingests, searches, lists and deletes documents in LanceDB collections."""

    def __init__(
        self,
        db: lancedb.AsyncConnection,
        embedder: Embedder,
        catalog: Any,
        *,
        chunk_size_tokens: int = DEFAULT_SIZE_TOKENS,
        chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        fusion: FusionConfig | None = None,
        ann: AnnConfig | None = None,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._catalog_table = catalog
        self._chunk_size = chunk_size_tokens
        self._chunk_overlap = chunk_overlap_tokens
        self.fusion = fusion or FusionConfig()
        self.ann = ann or AnnConfig()
        self._entries: dict[str, _Entry] = {}
        # One handle per table: every read must see the commits made through the writer's.
        self._tables: dict[str, Any] = {}
        self._open_lock = asyncio.Lock()
        self._write_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: defaultdict[str, list[_PendingWrite]] = defaultdict(list)
        self._writes_since_optimize: defaultdict[str, int] = defaultdict(int)
        self._readers: Counter[str] = Counter()
        self._drained: dict[str, asyncio.Event] = {}
        self._reindexing: Counter[str] = Counter()
        # The vector index of each table that has one (or is having one built).
        self._vector_indexes: dict[str, AnnIndex] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(
        cls,
        uri: str,
        embedder: Embedder,
        *,
        chunk_size_tokens: int = DEFAULT_SIZE_TOKENS,
        chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        fusion: FusionConfig | None = None,
        ann: AnnConfig | None = None,
        read_consistency_interval: timedelta | None = None,
        storage_options: Mapping[str, str] | None = None,
    ) -> KnowledgeStore:
        """Connect to the LanceDB database at ``uri`` (a directory or an ``s3://`` URI).

        ``read_consistency_interval`` matters only when other processes write the same tables;
        ``storage_options`` go to the object store (endpoint, credentials, ``allow_http``).
        """
        db = await lancedb.connect_async(
            uri,
            read_consistency_interval=read_consistency_interval,
            storage_options=dict(storage_options) if storage_options else None,
        )
        # Connecting is lazy; this read proves the location is usable before health says SERVING.
        names = set(await _table_names(db))
        if CATALOG_TABLE in names:
            catalog = await db.open_table(CATALOG_TABLE)
        else:
            catalog = await db.create_table(CATALOG_TABLE, schema=_CATALOG_SCHEMA, exist_ok=True)
        store = cls(
            db,
            embedder,
            catalog,
            chunk_size_tokens=chunk_size_tokens,
            chunk_overlap_tokens=chunk_overlap_tokens,
            fusion=fusion,
            ann=ann,
        )
        await store._load_catalog(names)
        return store

    def close(self) -> None:
        for task in self._background:
            task.cancel()
        for table in self._tables.values():
            table.close()
        self._tables.clear()
        self._catalog_table.close()

    async def wait_for_background(self) -> None:
        """Wait for the index builds and optimizations started so far (tests, benchmarks)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- ingest -----------------------------------------------------------------------------

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

        current = await self._current_versions(collection, [document_id])
        if current.get(document_id, ("", 0))[0] == digest:
            stored = current[document_id][1]
            return IngestResult(collection, document_id, IngestOutcome.UNCHANGED, stored, digest)

        chunks = chunk_text(text, size_tokens=self._chunk_size, overlap_tokens=self._chunk_overlap)
        # Embedding happens outside the lock: it is the slow part and writes nothing.
        vectors = await self._embedder.embed(
            [_embedding_input(chunk.heading_path, chunk.text) for chunk in chunks],
            embedding_pb2.INPUT_TYPE_DOCUMENT,
        )
        dimension = _check_vectors(vectors, len(chunks))
        model = await self._embedder.model()
        rows = _chunk_rows(
            document_id=document_id,
            title=title,
            source=source,
            metadata=metadata or {},
            digest=digest,
            chunks=chunks,
            vectors=vectors,
            schema=table_schema(dimension),
        )
        pending = _PendingWrite(
            document_id, digest, model, dimension, rows, asyncio.get_running_loop().create_future()
        )
        self._pending[collection].append(pending)
        # Whoever takes the lock commits every waiting document; a caller that gives up
        # (cancelled) must not abort that commit for the others: it runs in a task of its own.
        await asyncio.shield(self._spawn(self._write_pending(collection, pending)))
        outcome, count = await pending.future
        return IngestResult(collection, document_id, outcome, count, digest)

    async def _write_pending(self, collection: str, pending: _PendingWrite) -> None:
        async with self._write_locks[collection]:
            if not pending.future.done():
                await self._commit_pending(collection)

    async def _commit_pending(self, collection: str) -> None:
        """Write every waiting document of ``collection`` (lock held), one commit per round."""
        queue = self._pending[collection]
        while queue:
            batch: dict[str, _PendingWrite] = {}
            for pending in list(queue):
                if pending.document_id not in batch and len(batch) < _MAX_DOCUMENTS_PER_COMMIT:
                    batch[pending.document_id] = pending
                    queue.remove(pending)
            try:
                await self._commit(collection, list(batch.values()))
            except Exception as error:
                for pending in batch.values():
                    _settle(pending.future, error)
            except BaseException:  # the store is closing: nobody may wait forever
                for pending in [*batch.values(), *queue]:
                    _settle(pending.future, Unavailable("the store closed before the write"))
                raise

    async def _commit(self, collection: str, batch: list[_PendingWrite]) -> None:
        entry = self._entries.get(collection)
        if entry is None:
            first = batch[0]
            entry = await self._create_collection(collection, first.model, first.dimension)
        elif not entry.model and batch:
            entry = await self._record_model(entry, batch[0].model)
        writable = []
        for pending in batch:
            try:
                _check_model(entry, pending.model, pending.dimension)
            except Conflict as error:
                _settle(pending.future, error)
                continue
            writable.append(pending)
        if not writable:
            return
        table = await self._open(entry)
        current = await _versions(table, [p.document_id for p in writable])
        changed = []
        for pending in writable:
            stored = current.get(pending.document_id)
            if stored is not None and stored[0] == pending.digest:
                _settle(pending.future, (IngestOutcome.UNCHANGED, stored[1]))
            else:
                changed.append(pending)
        if not changed:
            return
        rows = pa.concat_tables([p.rows for p in changed]).select((await table.schema()).names)
        ids = [p.document_id for p in changed]
        await (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(col("document_id").isin(ids))
            .execute(rows)
        )
        for pending in changed:
            outcome = (
                IngestOutcome.REPLACED if pending.document_id in current else IngestOutcome.CREATED
            )
            _settle(pending.future, (outcome, pending.rows.num_rows))
        self._after_write(collection, entry, table)

    # --- search -----------------------------------------------------------------------------

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int,
        mode: SearchMode = SearchMode.HYBRID,
        filters: Mapping[str, str] | None = None,
        fusion: FusionConfig | None = None,
    ) -> SearchResult:
        """The ``top_k`` chunks of ``collection`` that best match ``query``.

        VECTOR ranks by cosine similarity (score = 1 - cosine distance), TEXT by BM25 over the
        chunk text, HYBRID fuses both (:func:`fuse`, configured by ``fusion``). ``filters`` are
        exact matches on source, title, document_id or any metadata key, applied before
        ranking. A collection that does not exist yet is empty if it is ``default`` and
        NotFound otherwise.
        """
        collection = collection_name(collection)
        if not query.strip():
            raise InvalidInput("query must not be empty")
        if top_k < 1:
            raise InvalidInput("top_k must be positive")
        where = filter_expression(filters or {})
        async with self._reading(collection) as found:
            if found is None:
                return SearchResult([], mode)
            entry, table = found
            if where and "filter_terms" not in (await table.schema()).names:
                raise Conflict(
                    f"collection {collection!r} predates metadata filters; "
                    f"run `bruno reindex {collection}` to rebuild it"
                )
            if mode is SearchMode.TEXT:
                return SearchResult(await _text_hits(table, query, top_k, where), mode)
            candidates = max(top_k * _HYBRID_CANDIDATES_FACTOR, _MIN_HYBRID_CANDIDATES)
            # The keyword leg needs no query vector: it runs while the query is embedded.
            text_leg = (
                asyncio.ensure_future(_text_hits(table, query, candidates, where))
                if mode is SearchMode.HYBRID
                else None
            )
            try:
                try:
                    vector = await self._query_vector(entry, query)
                except Conflict:
                    switched = self._entries.get(collection) != entry
                    if collection not in self._reindexing and not switched:
                        raise
                    # The embedding service already serves the new model and the shadow table
                    # is not ready (or became current while this query was embedded): keyword
                    # search answers until the switch (mode says so).
                    hits = await (text_leg or _text_hits(table, query, top_k, where))
                    return SearchResult(hits[:top_k], SearchMode.TEXT)
                if text_leg is None:
                    hits = await self._vector_hits(table, vector, top_k, where)
                    return SearchResult(hits, mode)
                by_vector = await self._vector_hits(table, vector, candidates, where, top_k)
                by_text = await text_leg
            finally:
                if text_leg is not None and not text_leg.done():
                    text_leg.cancel()
                elif text_leg is not None and not text_leg.cancelled():
                    text_leg.exception()  # seen: an error of the vector leg is the one raised
        return SearchResult(fuse(by_vector, by_text, top_k, fusion or self.fusion), mode)

    async def legs(
        self, collection: str, query: str, *, candidates: int
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """The vector and text rankings hybrid search fuses (for the benchmark's comparison)."""
        collection = collection_name(collection)
        async with self._reading(collection) as found:
            if found is None:
                return [], []
            entry, table = found
            vector = await self._query_vector(entry, query)
            by_vector, by_text = await asyncio.gather(
                self._vector_hits(table, vector, candidates, None),
                _text_hits(table, query, candidates, None),
            )
        return by_vector, by_text

    async def _vector_hits(
        self,
        table: Any,
        vector: list[float],
        limit: int,
        where: str | None,
        top_k: int | None = None,
    ) -> list[SearchHit]:
        query = table.query().nearest_to(vector).distance_type("cosine")
        if (index := self._vector_indexes.get(table.name)) is not None:
            query = self.ann.tune(query, index, limit, top_k or limit)
        if where:
            query = query.where(where)
        rows = (
            await query.select([*_RESULT_COLUMNS, "_distance"]).limit(limit).to_arrow()
        ).to_pylist()
        return [_hit(row, 1.0 - row["_distance"]) for row in rows]

    async def _query_vector(self, entry: _Entry, query: str) -> list[float]:
        vectors = await self._embedder.embed([query], embedding_pb2.INPUT_TYPE_QUERY)
        dimension = _check_vectors(vectors, 1)
        _check_model(entry, await self._embedder.model(), dimension)
        return vectors[0]

    # --- documents --------------------------------------------------------------------------

    async def list_documents(
        self, collection: str, *, limit: int, cursor: str = ""
    ) -> DocumentPage:
        """A page of documents ordered by id, starting after ``cursor``."""
        collection = collection_name(collection)
        if limit < 1:
            raise InvalidInput("limit must be positive")
        if len(cursor) > MAX_DOCUMENT_ID_CHARS:
            raise InvalidInput("cursor is not one this service gave out")
        async with self._reading(collection) as found:
            if found is None:
                return DocumentPage([], "")
            _, table = found
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
            entry = self._entries.get(collection)
            deleted: int = 0
            if entry is not None:
                table = await self._open(entry)
                deleted = (await table.delete(_is_document(document_id))).num_deleted_rows
            if entry is None or deleted == 0:
                raise NotFound(f"document {document_id!r} not found in collection {collection!r}")
            self._after_write(collection, entry, table)
        return deleted

    # --- collections ------------------------------------------------------------------------

    async def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        infos = []
        for name in sorted(self._entries):
            with contextlib.suppress(NotFound):
                infos.append(await self.collection_info(name))
        return infos

    async def collection_info(self, collection: str) -> CollectionInfo:
        collection = collection_name(collection)
        async with self._reading(collection) as found:
            if found is None:
                raise NotFound(f"collection {collection!r} not found")
            entry, table = found
            chunks = await table.count_rows()
            documents = await table.count_rows((col("chunk_index") == lit(0)).to_sql())
        return CollectionInfo(collection, documents, chunks, entry.model, entry.dimension)

    async def delete_collection(self, collection: str) -> int:
        """Drop a collection; returns how many documents it held. NotFound when unknown."""
        collection = collection_name(collection)
        async with self._write_locks[collection]:
            entry = self._entries.get(collection)
            if entry is None:
                raise NotFound(f"collection {collection!r} not found")
            table = await self._open(entry)
            documents = await table.count_rows((col("chunk_index") == lit(0)).to_sql())
            await self._catalog_table.delete(col("collection") == lit(collection))
            del self._entries[collection]
            self._forget_later(entry.table)
        return int(documents)

    async def reindex(self, collection: str) -> ReindexResult:
        """Re-embed every chunk of ``collection`` with the current model into a shadow table,
        then switch the catalog to it in one step. Searches keep reading the old table until
        the switch and never fail: while the query model no longer matches the old table,
        vector and hybrid searches answer by keywords (reported as TEXT). Ingests into the
        collection wait for the switch."""
        collection = collection_name(collection)
        # Runs to the end even if its caller gives up (a deadline, a disconnect): reindexing a
        # large collection outlasts most client timeouts, and a switch-over cut in half would
        # leave the catalog and this process disagreeing about the collection's table.
        return await asyncio.shield(self._spawn(self._reindex(collection)))

    async def _reindex(self, collection: str) -> ReindexResult:
        self._reindexing[collection] += 1
        try:
            return await self._rebuild_collection(collection)
        finally:
            self._reindexing[collection] -= 1
            if not self._reindexing[collection]:
                del self._reindexing[collection]

    async def _rebuild_collection(self, collection: str) -> ReindexResult:
        async with self._write_locks[collection]:
            entry = self._entries.get(collection)
            if entry is None:
                raise NotFound(f"collection {collection!r} not found")
            old = await self._open(entry)
            columns = [name for name in (await old.schema()).names if name != "vector"]
            shadow_name = _next_table_name(entry.table, set(await _table_names(self._db)))
            model, dimension, copied = "", 0, 0
            shadow: Any = None
            try:
                # Streamed: a large collection is never held in memory whole.
                async for batch in _row_batches(old, columns, _REINDEX_BATCH):
                    texts = [_embedding_input(r["heading_path"], r["text"]) for r in batch]
                    vectors = await self._embedder.embed(texts, embedding_pb2.INPUT_TYPE_DOCUMENT)
                    dimension = _check_vectors(vectors, len(texts))
                    model = await self._embedder.model()
                    if shadow is None:
                        shadow = await self._db.create_table(
                            shadow_name, schema=table_schema(dimension)
                        )
                    await shadow.add(_reindexed_rows(batch, vectors, table_schema(dimension)))
                    copied += len(batch)
                if shadow is None:  # an empty collection: the model tells its dimension
                    probe = await self._embedder.embed(
                        ["dimension probe"], embedding_pb2.INPUT_TYPE_DOCUMENT
                    )
                    dimension = _check_vectors(probe, 1)
                    model = await self._embedder.model()
                    shadow = await self._db.create_table(
                        shadow_name, schema=table_schema(dimension)
                    )
                await _ensure_text_index(shadow)
                if self.ann.min_rows and copied >= self.ann.min_rows:
                    await self._build_vector_index(shadow)
                new_entry = _Entry(collection, shadow_name, model, dimension)
                await self._write_entry(new_entry)  # the switch: one catalog commit
            except BaseException:
                if shadow is not None:
                    shadow.close()
                with contextlib.suppress(Exception):
                    await self._db.drop_table(shadow_name)
                raise
            self._tables[shadow_name] = shadow
            self._entries[collection] = new_entry
            self._forget_later(entry.table)
        log.info(
            "collection reindexed",
            extra={"collection": collection, "model": model, "previous_model": entry.model},
        )
        return ReindexResult(await self.collection_info(collection), entry.model)

    # --- tables, catalog and background work ------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self, collection: str) -> AsyncIterator[tuple[_Entry, Any] | None]:
        """The collection's catalog entry and table, held open against a concurrent switch."""
        entry = self._entries.get(collection)
        if entry is None:
            if collection != DEFAULT_COLLECTION:
                raise NotFound(f"collection {collection!r} not found")
            yield None
            return
        self._readers[entry.table] += 1
        try:
            yield entry, await self._open(entry)
        finally:
            self._readers[entry.table] -= 1
            if self._readers[entry.table] == 0 and entry.table in self._drained:
                self._drained[entry.table].set()

    async def _open(self, entry: _Entry) -> Any:
        """The one cached handle of a catalog entry's table."""
        if (table := self._tables.get(entry.table)) is not None:
            return table
        async with self._open_lock:
            if (table := self._tables.get(entry.table)) is None:
                table = await self._db.open_table(entry.table)
                await _ensure_text_index(table)
                if (index := await _vector_index(table)) is not None:
                    self._vector_indexes[entry.table] = index
                    if self.ann.min_rows and index is not self.ann.index:
                        self._spawn(self._rebuild_vector_index(entry.collection, table, index))
                self._tables[entry.table] = table
            return table

    async def _load_catalog(self, names: set[str]) -> None:
        rows = (await self._catalog_table.query().to_arrow()).to_pylist()
        for row in rows:
            if row["table"] in names:
                self._entries[row["collection"]] = _Entry(
                    row["collection"], row["table"], row["model"], row["dimension"]
                )
        # Tables from before the catalog: adopt those shaped like a collection.
        for name in sorted(names - {CATALOG_TABLE} - set(self._entries)):
            if not _COLLECTION_NAME.fullmatch(name):
                continue
            table: Any = await self._db.open_table(name)
            schema = await table.schema()
            table.close()
            if {"chunk_id", "document_id", "vector"} <= set(schema.names):
                entry = _Entry(name, name, "", schema.field("vector").type.list_size)
                await self._write_entry(entry)
                self._entries[name] = entry

    async def _create_collection(self, collection: str, model: str, dimension: int) -> _Entry:
        """A new, empty table for ``collection``, named after it — or ``name.N`` while a
        deleted collection's table of that name still waits for its last searches."""
        async with self._open_lock:
            taken = set(await _table_names(self._db))
            name = _next_table_name(collection, taken) if collection in taken else collection
            table: Any = await self._db.create_table(name, schema=table_schema(dimension))
            entry = _Entry(collection, name, model, dimension)
            try:
                await _ensure_text_index(table)
                await self._write_entry(entry)
            except BaseException:  # leave no table behind that blocks the next attempt
                table.close()
                with contextlib.suppress(Exception):
                    await self._db.drop_table(name)
                raise
            self._tables[name] = table
        self._entries[collection] = entry
        return entry

    async def _record_model(self, entry: _Entry, model: str) -> _Entry:
        entry = dataclasses.replace(entry, model=model)
        await self._write_entry(entry)
        self._entries[entry.collection] = entry
        return entry

    async def _write_entry(self, entry: _Entry) -> None:
        row = pa.Table.from_pylist(
            [
                {
                    "collection": entry.collection,
                    "table": entry.table,
                    "model": entry.model,
                    "dimension": entry.dimension,
                    "updated_at": datetime.now(UTC),
                }
            ],
            schema=_CATALOG_SCHEMA,
        )
        await (
            self._catalog_table.merge_insert("collection")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(row)
        )

    async def _current_versions(
        self, collection: str, document_ids: list[str]
    ) -> dict[str, tuple[str, int]]:
        entry = self._entries.get(collection)
        if entry is None:
            return {}
        return await _versions(await self._open(entry), document_ids)

    def _after_write(self, collection: str, entry: _Entry, table: Any) -> None:
        self._writes_since_optimize[collection] += 1
        if self._writes_since_optimize[collection] >= _OPTIMIZE_EVERY_WRITES:
            self._writes_since_optimize[collection] = 0
            self._spawn(self._optimize(collection, entry))
        elif self.ann.min_rows and entry.table not in self._vector_indexes:
            self._spawn(self._maybe_index(collection, entry))

    def _spawn(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _optimize(self, collection: str, entry: _Entry) -> None:
        """Fold new rows into the indexes and compact small fragments, in the background."""
        try:
            async with self._write_locks[collection]:
                if self._entries.get(collection) != entry:
                    return
                await (await self._open(entry)).optimize()
            await self._maybe_index(collection, entry)
        except Exception:
            log.exception("optimizing collection failed", extra={"collection": collection})

    async def _maybe_index(self, collection: str, entry: _Entry) -> None:
        """Build the ANN index once the collection is past ``ann.min_rows`` chunks."""
        if entry.table in self._vector_indexes:
            return
        self._vector_indexes[entry.table] = self.ann.index  # claimed: one build at a time
        try:
            table = await self._open(entry)
            if await table.count_rows() < self.ann.min_rows:
                self._vector_indexes.pop(entry.table, None)
                return
            log.info(
                "building the vector index",
                extra={"collection": collection, "index": str(self.ann.index)},
            )
            await self._build_vector_index(table)
        except Exception:
            self._vector_indexes.pop(entry.table, None)
            log.exception("building the vector index failed", extra={"collection": collection})

    async def _rebuild_vector_index(self, collection: str, table: Any, current: AnnIndex) -> None:
        """Replace a vector index of another kind than configured (``BRUNO_ANN_INDEX``
        changed); searches use the old one until the new one is committed."""
        log.info(
            "rebuilding the vector index as configured",
            extra={"collection": collection, "index": str(self.ann.index), "was": str(current)},
        )
        try:
            await self._build_vector_index(table)
        except Exception:
            log.exception("rebuilding the vector index failed", extra={"collection": collection})

    async def _build_vector_index(self, table: Any) -> None:
        rows = await table.count_rows()
        dimension = (await table.schema()).field("vector").type.list_size
        await table.create_index("vector", config=self.ann.index_config(rows, dimension))
        self._vector_indexes[table.name] = self.ann.index

    def _forget_later(self, table_name: str) -> None:
        """Drop a table no longer in the catalog once no search is reading it."""

        async def drop() -> None:
            if self._readers[table_name] > 0:
                drained = self._drained.setdefault(table_name, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drained.wait(), _DRAIN_SECONDS)
            self._drained.pop(table_name, None)
            table = self._tables.pop(table_name, None)
            self._vector_indexes.pop(table_name, None)
            if table is not None:
                table.close()
            try:
                await self._db.drop_table(table_name)
            except Exception:
                log.exception("dropping a retired table failed", extra={"table": table_name})

        self._spawn(drop())


def _settle(
    future: asyncio.Future[tuple[IngestOutcome, int]],
    result: tuple[IngestOutcome, int] | BaseException,
) -> None:
    """Resolve a waiting ingest unless its caller already gave up (cancelled)."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


async def _row_batches(
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


async def _table_names(db: Any) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = await db.list_tables(page_token=token, limit=1000)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return names


def _next_table_name(current: str, taken: set[str]) -> str:
    """``docs`` -> ``docs.1`` -> ``docs.2``: a dot cannot appear in a collection name."""
    base, _, generation = current.partition(".")
    number = int(generation) + 1 if generation.isdigit() else 1
    while f"{base}.{number}" in taken:
        number += 1
    return f"{base}.{number}"


def _sub_vectors(dimension: int) -> int:
    """PQ sub-vectors of 8 dimensions each (the refine step restores exact order)."""
    for width in (8, 4, 2, 1):
        if dimension % width == 0:
            return dimension // width
    return 1


async def _ensure_text_index(table: Any) -> None:
    if not any(index.columns == ["text"] for index in await table.list_indices()):
        # Native full-text index; rows written after it are searched unindexed until the
        # next optimize folds them in, so text search is complete either way.
        await table.create_index("text", config=FTS())


async def _vector_index(table: Any) -> AnnIndex | None:
    """The kind of the table's vector index, if it has one: a table indexed under another
    setting keeps being searched the way its index needs until it is rebuilt."""
    for index in await table.list_indices():
        if index.columns == ["vector"]:
            return AnnIndex.HNSW_SQ if "Hnsw" in index.index_type else AnnIndex.IVF_PQ
    return None


async def _versions(table: Any, document_ids: list[str]) -> dict[str, tuple[str, int]]:
    """(content hash, chunk count) of each stored document among ``document_ids``."""
    rows = (
        await table.query()
        .where(col("document_id").isin(document_ids) & (col("chunk_index") == lit(0)))
        .select(["document_id", "content_hash", "chunk_count"])
        .to_arrow()
    ).to_pylist()
    return {row["document_id"]: (row["content_hash"], row["chunk_count"]) for row in rows}


def _check_model(entry: _Entry, model: str, dimension: int) -> None:
    if dimension != entry.dimension or (entry.model and model and model != entry.model):
        built = f"{entry.model or 'an unrecorded model'} ({entry.dimension} dimensions)"
        raise Conflict(
            f"collection {entry.collection!r} was built with {built} but the embedding service "
            f"now serves {model or 'another model'} ({dimension} dimensions); "
            f"run `bruno reindex {entry.collection}` to rebuild it with the current model"
        )


def _reindexed_rows(
    rows: list[dict[str, Any]], vectors: list[list[float]], schema: pa.Schema
) -> pa.Table:
    out = []
    for row, vector in zip(rows, vectors, strict=True):
        row = dict(row)
        if "filter_terms" not in row:
            row["filter_terms"] = filter_terms(json.loads(row["metadata"]))
        row["vector"] = vector
        out.append(row)
    return pa.Table.from_pylist(out, schema=schema)


def _embedding_input(heading_path: str, text: str) -> str:
    # The heading path tells the model what a chunk deep inside a section is about.
    return f"{heading_path}\n\n{text}" if heading_path else text


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
                "metadata": metadata_json,
                "filter_terms": terms,
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


async def _text_hits(table: Any, query: str, limit: int, where: str | None) -> list[SearchHit]:
    search = table.query().nearest_to_text(query, columns="text")
    if where:
        search = search.where(where)
    rows = (await search.select([*_RESULT_COLUMNS, "_score"]).limit(limit).to_arrow()).to_pylist()
    return [_hit(row, row["_score"]) for row in rows]


def fuse(
    by_vector: list[SearchHit],
    by_text: list[SearchHit],
    top_k: int,
    config: FusionConfig | None = None,
) -> list[SearchHit]:
    """Combine a vector and a text ranking of the same collection into one of ``top_k``.

    COSINE (the default): w x cosine similarity + (1 - w) x the text score scaled to [0, 1]
    (best = 1); a chunk the vector leg did not return gets that leg's lowest cosine, one the
    text leg did not return 0. RRF: score = w / (60 + vector rank) + (1 - w) / (60 + text
    rank). MINMAX: both legs scaled to [0, 1], summed with weights w and 1 - w; a chunk missing
    from a leg gets 0 there. ZSCORE: the same with scores standardised per leg, a missing chunk
    getting its leg's lowest value. ``w`` is ``config.vector_weight``.

    The two legs are separate reads, so a replace may commit between them; a document seen
    in two versions keeps only the vector leg's version, so no answer mixes versions."""
    config = config or FusionConfig()
    version = {hit.document_id: hit.content_hash for hit in by_vector}
    by_text = [hit for hit in by_text if version.get(hit.document_id) in (None, hit.content_hash)]
    weight = config.vector_weight
    legs = ((by_vector, weight), (by_text, 1.0 - weight))
    scores: defaultdict[str, float] = defaultdict(float)
    hits: dict[str, SearchHit] = {}
    for ranking in (by_vector, by_text):
        for hit in ranking:
            hits.setdefault(hit.chunk_id, hit)
    for ranking, leg_weight in legs:
        if not ranking:
            continue
        if config.method is Fusion.RRF:
            for rank, hit in enumerate(ranking, start=1):
                scores[hit.chunk_id] += leg_weight / (_RRF_K + rank)
            continue
        raw = ranking is by_vector and config.method is Fusion.COSINE
        values = [hit.score for hit in ranking]
        normalised = values if raw else _normalise(values, config.method)
        # A chunk beyond a leg's candidates scores at most the leg's last one (cosine, z-score)
        # or nothing there (min-max).
        floor = 0.0 if config.method is Fusion.MINMAX else min(normalised)
        if config.method is Fusion.COSINE and not raw:
            floor = 0.0
        present = {hit.chunk_id: value for hit, value in zip(ranking, normalised, strict=True)}
        for chunk_id in hits:
            scores[chunk_id] += leg_weight * present.get(chunk_id, floor)
    best = sorted(hits, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:top_k]
    return [dataclasses.replace(hits[chunk_id], score=scores[chunk_id]) for chunk_id in best]


def _normalise(values: list[float], method: Fusion) -> list[float]:
    if method in (Fusion.MINMAX, Fusion.COSINE):
        low, high = min(values), max(values)
        if high - low < 1e-12:
            return [1.0] * len(values)
        return [(value - low) / (high - low) for value in values]
    if len(values) < 2:
        return [0.0] * len(values)
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    return [(value - mean) / spread if spread > 1e-12 else 0.0 for value in values]


def reciprocal_rank_fusion(
    by_vector: list[SearchHit], by_text: list[SearchHit], top_k: int
) -> list[SearchHit]:
    """Equal-weight reciprocal rank fusion (scores halved: ``fuse`` weights sum to one)."""
    return fuse(by_vector, by_text, top_k, FusionConfig(Fusion.RRF, 0.5))
