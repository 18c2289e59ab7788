"""The knowledge base: documents cut into chunks, embedded and kept in LanceDB, one table per
collection.

    store = await KnowledgeStore.open(settings, embedder)
    result = await store.ingest("default", text=markdown, document_id="runbook.md")
    found = await store.search("default", "how do I restore a backup?", top_k=5)

Writes are atomic per document: the chunks of a new version are all embedded before anything
is written, then one ``merge_insert`` commit swaps the document's old chunks for the new ones,
so a reader sees either the whole old version or the whole new one. Concurrent ingests into one
collection are committed together (:mod:`.writer`), so many small documents do not cost one
table version each. This process is the single writer of its tables; processes of the
``reader`` role (:mod:`bruno_retrieval.roles`) search and list them, following its commits, and
refuse every write. A write answers the table version it committed (:class:`.results.Committed`),
and a search or listing given it as ``at_least`` sees that write, on any process.

Every collection records the embedding model it was built with (:mod:`.catalog`), and asks
the embedding service for that model: collections of two models are searched side by side. A
new collection takes the service's default. A collection whose model the service no longer
serves is a :class:`Conflict` for vector and hybrid searches and ingests (saying to reindex)
until :meth:`KnowledgeStore.reindex` re-embeds it with the default into a shadow table and
switches over in one step; search never fails during a reindex. Requests are held to the
public contract (:mod:`bruno_core.contract`) and to the limits in the settings here, whoever
calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import lancedb
from lancedb.expr import col, lit

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict, InvalidInput, LimitExceeded, NotFound
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    DEFAULT_PAGE_SIZE,
    DOCUMENT_ID,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_VALUE_CHARS,
    MAX_PAGE_SIZE,
    MAX_QUERY_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    content_hash,
)
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.chunking import chunk_text, within_chunk_ceiling
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import reads
from bruno_retrieval.knowledge.ann import AnnConfig, VectorIndexes
from bruno_retrieval.knowledge.catalog import Catalog, CatalogEntry
from bruno_retrieval.knowledge.embedding import (
    Embedded,
    Embedder,
    ModelNotServed,
    check_vectors,
    embedding_input,
)
from bruno_retrieval.knowledge.filters import filter_expression
from bruno_retrieval.knowledge.fusion import FusionConfig, fuse
from bruno_retrieval.knowledge.memo import TableMemo
from bruno_retrieval.knowledge.pages import TextSegment, check_segments, pages_at
from bruno_retrieval.knowledge.reindex import CollectionReindexing, rebuild
from bruno_retrieval.knowledge.rerank import HttpReranker
from bruno_retrieval.knowledge.results import (
    CollectionInfo,
    Committed,
    DeleteResult,
    DocumentPage,
    IngestOutcome,
    IngestResult,
    ReindexResult,
    SearchMode,
    SearchResult,
)
from bruno_retrieval.knowledge.schema import PagedTables, chunk_rows
from bruno_retrieval.knowledge.writer import DocumentVersion, QuietOptimize, Writer
from bruno_retrieval.roles import Role

_T = TypeVar("_T")
_DERIVED_ID_HEX_CHARS = 16
# Each leg of a hybrid search fetches more than top_k so fusion has candidates to agree on.
_HYBRID_CANDIDATES_FACTOR = 4
_MIN_HYBRID_CANDIDATES = 20
# Of a search's deadline, what is left for its answer after a rerank.
_RERANK_DEADLINE_MARGIN_SECONDS = 0.05


class KnowledgeStore:
    """Ingests, searches, lists and deletes documents in LanceDB collections."""

    def __init__(
        self,
        settings: RetrievalSettings,
        embedder: Embedder,
        catalog: Catalog,
        indexes: VectorIndexes,
        tasks: BackgroundTasks,
        reranker: HttpReranker | None,
    ) -> None:
        self._settings = settings
        self._embedder = embedder
        self._catalog = catalog
        self._indexes = indexes
        self._tasks = tasks
        self._reranker = reranker
        self._role = Role(settings.retrieval_role)
        self._fusion = FusionConfig.from_settings(settings)
        self._writer = Writer(catalog, indexes, tasks, QuietOptimize.from_settings(settings))
        self._reindexing: Counter[str] = Counter()
        self._reindex_listeners: list[Callable[[], None]] = []
        # One rebuild per collection at a time: a second waits for the first, then runs.
        self._rebuilds: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Listings scanned their table on every call; they change only with a commit.
        self._listings = TableMemo()
        self._paged_tables = PagedTables()

    @classmethod
    async def open(
        cls,
        settings: RetrievalSettings,
        embedder: Embedder,
        *,
        reranker: HttpReranker | None = None,
    ) -> KnowledgeStore:
        """Connect to the LanceDB database at ``settings.lancedb_uri`` (a directory or an
        ``s3://`` URI, configured by the object store's own environment variables). A reader
        opens its tables to follow the writer's commits within
        ``settings.retrieval_read_consistency_seconds``."""
        role = Role(settings.retrieval_role)
        lag = settings.retrieval_read_consistency_seconds
        db = await lancedb.connect_async(
            settings.lancedb_uri,
            read_consistency_interval=None if role.writes else timedelta(seconds=lag),
        )
        tasks = BackgroundTasks()
        indexes = VectorIndexes(AnnConfig.from_settings(settings), tasks)
        catalog = await Catalog.open(db, indexes, tasks, role=role, lag_seconds=lag)
        return cls(settings, embedder, catalog, indexes, tasks, reranker)

    def close(self) -> None:
        self._tasks.cancel()
        self._catalog.close()

    async def wait_for_background(self) -> None:
        """Wait for the index builds and optimizations started so far (tests, benchmarks)."""
        await self._tasks.wait()

    # --- documents --------------------------------------------------------------------------

    async def ingest(
        self,
        collection: str,
        *,
        text: str,
        document_id: str = "",
        title: str = "",
        source: str = "",
        metadata: Mapping[str, str] | None = None,
        segments: Sequence[TextSegment] = (),
    ) -> IngestResult:
        """Store ``text`` as document ``document_id`` (derived from the text when empty).

        The same id with the same text is a no-op that calls no model (unless ``segments``
        bring pages the stored chunks lack); changed text replaces every old chunk in one
        commit. If embedding fails nothing is written. ``segments`` (:mod:`.pages`) give each
        chunk the page it starts on. The collection's model embeds it (a new collection's is the
        service's default). While the collection is reindexed it is embedded with the old model,
        which the reindex's catch-up re-embeds; if the service no longer serves the old model it
        is not written: :class:`.reindex.CollectionReindexing` (see :mod:`.reindex`).
        """
        self._role.check_writes("IngestDocument")
        metadata = metadata or {}
        self._check_document(text, title, source, metadata)
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        if not text.strip():
            raise InvalidInput("text must not be empty")
        segments = check_segments(segments, len(text))
        paged = bool(segments)
        digest = content_hash(text)
        document_id = DOCUMENT_ID.check(document_id or digest[:_DERIVED_ID_HEX_CHARS])

        entry = self._catalog.entry(collection)
        if entry is not None:
            table = await self._catalog.table(entry)
            stored = await reads.versions(table, [document_id])
            found = stored.get(document_id)
            if found is not None and found.covers(digest, paged=paged):
                outcome = IngestOutcome.UNCHANGED
                at = Committed(entry.table, await table.version())
                return IngestResult(collection, document_id, outcome, found.chunks, digest, at)

        size, overlap = self._settings.chunk_size_tokens, self._settings.chunk_overlap_tokens
        chunks = chunk_text(text, size_tokens=size, overlap_tokens=overlap)
        texts = [embedding_input(chunk.heading_path, chunk.text) for chunk in chunks]
        pages = pages_at([chunk.start for chunk in chunks], segments)
        while True:
            # The collection's own model; a new collection (or an adopted table of an
            # unrecorded model) the service's default, recorded at the commit.
            model = entry.model if entry is not None else ""
            # Embedding happens before the commit waits: it is the slow part and writes nothing.
            embedded = await self._embedded(collection, texts, model)
            dimension = check_vectors(embedded.vectors, len(chunks))
            rows = chunk_rows(
                document_id=document_id,
                title=title,
                source=source,
                metadata=metadata,
                digest=digest,
                chunks=chunks,
                pages=pages,
                vectors=embedded.vectors,
            )
            version = DocumentVersion(document_id, digest, embedded.model, dimension, rows, paged)
            try:
                outcome, count, committed = await self._writer.commit(collection, version)
            except Conflict:
                now = self._catalog.entry(collection)
                if now is not None and now.model and now.model != model and now != entry:
                    # A reindex switched the collection to another model while this document
                    # was embedded: embed it again with that one.
                    entry = now
                    continue
                if self.reindexing(collection):
                    # Vectors of another model than the one asked for (a service that ignores
                    # the name), during a reindex: the reindex's own model.
                    raise CollectionReindexing(collection) from None
                raise
            return IngestResult(collection, document_id, outcome, count, digest, committed)

    async def _embedded(self, collection: str, texts: list[str], model: str) -> Embedded:
        """``texts`` embedded as documents with ``model``, the collection's; a model the
        service no longer serves is the Conflict that says to reindex, or, while the reindex
        runs, :class:`.reindex.CollectionReindexing` (the document waits for the switch)."""
        try:
            return await self._embedder.embed(texts, embedding_pb2.INPUT_TYPE_DOCUMENT, model)
        except ModelNotServed as error:
            if self.reindexing(collection):
                raise CollectionReindexing(collection) from None
            raise error.for_collection(collection) from None

    async def list_documents(
        self,
        collection: str,
        *,
        limit: int | None = None,
        cursor: str = "",
        at_least: Committed | None = None,
    ) -> DocumentPage:
        """A page of documents ordered by id, starting after ``cursor``, seeing ``at_least``
        that write."""
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        limit = DEFAULT_PAGE_SIZE if limit is None else limit
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        if len(cursor) > DOCUMENT_ID.max_chars:
            raise InvalidInput("cursor is not one this service gave out")
        async with self._catalog.reading(collection, at_least) as found:
            if found is None:
                return DocumentPage([], "")
            entry, table = found
            documents = await self._listings.get(
                table,
                ("page", entry.table, cursor, limit),
                lambda: reads.documents_after(table, cursor, limit + 1),
            )
        next_cursor = documents[limit - 1].document_id if len(documents) > limit else ""
        return DocumentPage(documents[:limit], next_cursor)

    async def delete_document(self, collection: str, document_id: str) -> DeleteResult:
        """Remove every chunk of a document; says how many. NotFound when unknown."""
        self._role.check_writes("DeleteDocument")
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        DOCUMENT_ID.check(document_id)
        async with self._writer.lock(collection):
            entry = self._catalog.entry(collection)
            deleted = None
            if entry is not None:
                table = await self._catalog.table(entry)
                deleted = await table.delete(col("document_id") == lit(document_id))
            if entry is None or deleted is None or deleted.num_deleted_rows == 0:
                raise NotFound(f"document {document_id!r} not found in collection {collection!r}")
            if (shadow := self._writer.shadow(collection)) is not None:
                shadow.changed_in_old([document_id])  # the rebuild drops its copy, too
            self._writer.after_write(collection, entry, table)
        return DeleteResult(deleted.num_deleted_rows, Committed(entry.table, deleted.version))

    # --- search -----------------------------------------------------------------------------

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int | None = None,
        mode: SearchMode = SearchMode.HYBRID,
        filters: Mapping[str, str] | None = None,
        seconds_left: float | None = None,
        at_least: Committed | None = None,
    ) -> SearchResult:
        """The ``top_k`` chunks of ``collection`` that best match ``query`` (default
        ``BRUNO_DEFAULT_TOP_K``), reranked when a reranker is configured and the caller's
        ``seconds_left`` allow.

        VECTOR ranks by cosine similarity (score = 1 - cosine distance), TEXT by BM25 over the
        chunk text, HYBRID fuses both (:func:`.fusion.fuse`); hybrid is the default because it
        finds exact terms (error codes, names) that vectors blur. ``filters`` are exact
        matches on source, title, document_id or any metadata key, applied before ranking. A
        collection that does not exist yet is empty if it is ``default`` and NotFound
        otherwise. ``at_least``: the search sees that write (:meth:`.Catalog.reading`).
        """
        started = asyncio.get_running_loop().time()
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        if len(query) > MAX_QUERY_CHARS:
            raise LimitExceeded(f"query is limited to {MAX_QUERY_CHARS} characters")
        if not query.strip():
            raise InvalidInput("query must not be empty")
        top_k = self._settings.default_top_k if top_k is None else top_k
        if not 1 <= top_k <= self._settings.max_top_k:
            raise InvalidInput(f"top_k must be between 1 and {self._settings.max_top_k}")
        where = filter_expression(filters or {})
        if self._reranker is None:
            return self._within_ceiling(
                await self._ranked(collection, query, top_k, mode, where, at_least)
            )
        candidates = max(top_k, self._settings.reranker_candidates)
        result = self._within_ceiling(
            await self._ranked(collection, query, candidates, mode, where, at_least)
        )
        budget = None
        if seconds_left is not None:
            spent = asyncio.get_running_loop().time() - started
            budget = seconds_left - spent - _RERANK_DEADLINE_MARGIN_SECONDS
        hits = await self._reranker.rerank(query, result.hits, timeout_seconds=budget)
        return SearchResult(hits[:top_k], result.mode)

    def _within_ceiling(self, result: SearchResult) -> SearchResult:
        """``result`` with every chunk cut to today's chunk ceiling: a chunk stored before the
        ceiling (or under a larger ``BRUNO_CHUNK_SIZE_TOKENS``) must not make an answer, the
        reranker's input or a prompt huge."""
        size = self._settings.chunk_size_tokens
        hits = [
            dataclasses.replace(hit, text=within_chunk_ceiling(hit.text, size))
            for hit in result.hits
        ]
        return SearchResult(hits, result.mode)

    async def _ranked(
        self,
        collection: str,
        query: str,
        top_k: int,
        mode: SearchMode,
        where: str | None,
        at_least: Committed | None,
    ) -> SearchResult:
        async with self._catalog.reading(collection, at_least) as found:
            if found is None:
                return SearchResult([], mode)
            entry, table = found
            if where and "filter_terms" not in (await table.schema()).names:
                raise Conflict(
                    f"collection {collection!r} predates metadata filters; "
                    f"run `bruno reindex {collection}` to rebuild it"
                )
            keywords = await self._catalog.keywords.query(table, query)
            columns = await self._paged_tables.result_columns(table)
            if mode is SearchMode.TEXT:
                hits = await reads.text_hits(table, keywords, top_k, where, columns)
                return SearchResult(hits, mode)
            candidates = max(top_k * _HYBRID_CANDIDATES_FACTOR, _MIN_HYBRID_CANDIDATES)
            # The keyword leg needs no query vector: it runs while the query is embedded,
            # starting once the Embed call is on its way (see _after_one_turn).
            text_leg = (
                asyncio.ensure_future(
                    _after_one_turn(
                        lambda: reads.text_hits(table, keywords, candidates, where, columns)
                    )
                )
                if mode is SearchMode.HYBRID
                else None
            )
            try:
                try:
                    vector = await self._query_vector(entry, query)
                except Conflict as error:
                    switched = self._catalog.entry(collection) != entry
                    reindexing = collection in self._reindexing or (
                        not self._role.writes and await self._catalog.being_rebuilt(entry)
                    )
                    if not reindexing and not switched:
                        if isinstance(error, ModelNotServed):
                            raise error.for_collection(collection) from None
                        raise
                    # The embedding service no longer serves the collection's model and the
                    # shadow table is not ready (or became current while this query was
                    # embedded): keyword search answers until the switch (mode says so).
                    hits = await (
                        text_leg or reads.text_hits(table, keywords, top_k, where, columns)
                    )
                    return SearchResult(hits[:top_k], SearchMode.TEXT)
                if text_leg is None:
                    hits = await reads.vector_hits(
                        table, vector, top_k, where, self._indexes, columns
                    )
                    return SearchResult(hits, mode)
                by_vector = await reads.vector_hits(
                    table, vector, candidates, where, self._indexes, columns, top_k
                )
                by_text = await text_leg
            finally:
                if text_leg is not None and not text_leg.done():
                    text_leg.cancel()
                elif text_leg is not None and not text_leg.cancelled():
                    text_leg.exception()  # seen: an error of the vector leg is the one raised
        return SearchResult(fuse(by_vector, by_text, top_k, self._fusion.for_query(query)), mode)

    async def _query_vector(self, entry: CatalogEntry, query: str) -> list[float]:
        embedded = await self._embedder.embed([query], embedding_pb2.INPUT_TYPE_QUERY, entry.model)
        dimension = check_vectors(embedded.vectors, 1)
        entry.check_model(embedded.model, dimension)
        return embedded.vectors[0]

    # --- collections ------------------------------------------------------------------------

    async def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        await self._catalog.follow()
        infos = []
        for name in self._catalog.collections():
            with contextlib.suppress(NotFound):
                infos.append(await self.collection_info(name))
        return infos

    async def collection_info(self, collection: str) -> CollectionInfo:
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        async with self._catalog.reading(collection) as found:
            if found is None:
                raise NotFound(f"collection {collection!r} not found")
            entry, table = found
            documents, chunks = await self._counted(entry.table, table)
        return CollectionInfo(collection, documents, chunks, entry.model, entry.dimension)

    async def _counted(self, name: str, table: Any) -> tuple[int, int]:
        """(documents, chunks) of a table, counted once per table version."""

        async def count() -> tuple[int, int]:
            return await reads.document_count(table), await table.count_rows()

        return await self._listings.get(table, ("counts", name), count)

    async def delete_collection(self, collection: str) -> int:
        """Drop a collection; returns how many documents it held. NotFound when unknown."""
        self._role.check_writes("DeleteCollection")
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        async with self._writer.lock(collection):
            entry = self._catalog.entry(collection)
            if entry is None:
                raise NotFound(f"collection {collection!r} not found")
            documents = await reads.document_count(await self._catalog.table(entry))
            await self._catalog.remove(collection)
            # A reindex under way gives up at its switch; the writes to a collection made anew
            # meanwhile are none of its business.
            self._writer.end_shadow(collection)
        return documents

    def reindexing(self, collection: str) -> bool:
        """Whether a reindex of ``collection`` runs (or waits for the one running)."""
        return collection in self._reindexing

    def when_reindex_ends(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a reindex of any collection ends, however it ends (the
        job runner, to run the ingest jobs it held back)."""
        self._reindex_listeners.append(listener)

    async def reindex(self, collection: str) -> ReindexResult:
        """Re-embed every chunk of ``collection`` with the embedding service's default model
        into a shadow table, then switch the catalog to it in one step. Searches keep reading
        the old table with the old model until the switch and never fail: while the service
        no longer serves the old model, vector and hybrid searches answer by keywords (reported
        as TEXT). Deletes and ingests go on meanwhile with the old model; if it is no longer
        served an ingest is refused until the switch (:class:`.reindex.CollectionReindexing`;
        the job runner queues it behind the reindex)."""
        self._role.check_writes("ReindexCollection")
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        # Runs to the end even if its caller gives up (a deadline, a disconnect): reindexing a
        # large collection outlasts most client timeouts, and a switch-over cut in half would
        # leave the catalog and this process disagreeing about the collection's table.
        return await asyncio.shield(self.start_reindex(collection))

    def start_reindex(
        self,
        collection: str,
        *,
        stop: asyncio.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> asyncio.Task[ReindexResult]:
        """:meth:`reindex` as a task of its own, for a job: ``stop`` ends it between batches
        (:class:`.reindex.ReindexCancelled`, the collection left as it was) and ``progress``
        hears the chunks re-embedded so far. Do not cancel the task: a switch-over cut in half
        would leave the catalog and this process disagreeing."""
        collection = COLLECTION_NAME.check(collection or DEFAULT_COLLECTION)
        return self._tasks.spawn(self._reindex(collection, stop, progress))

    async def _reindex(
        self,
        collection: str,
        stop: asyncio.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ReindexResult:
        self._reindexing[collection] += 1
        try:
            async with self._rebuilds[collection]:
                previous = await rebuild(
                    collection,
                    self._catalog,
                    self._embedder,
                    self._indexes,
                    self._writer,
                    stop=stop,
                    progress=progress,
                )
        finally:
            self._reindexing[collection] -= 1
            if not self._reindexing[collection]:
                del self._reindexing[collection]
            for listener in self._reindex_listeners:
                listener()
        info = await self.collection_info(collection)
        entry = self._catalog.entry(collection)
        committed = None
        if entry is not None:
            committed = Committed(entry.table, await (await self._catalog.table(entry)).version())
        return ReindexResult(info, previous.model, committed)

    def _check_document(
        self, text: str, title: str, source: str, metadata: Mapping[str, str]
    ) -> None:
        size = len(text.encode("utf-8"))
        if size > self._settings.max_document_bytes:
            raise LimitExceeded(
                f"text is {size} bytes; the limit is {self._settings.max_document_bytes}"
            )
        if len(title) > MAX_TITLE_CHARS or len(source) > MAX_SOURCE_CHARS:
            raise LimitExceeded(
                f"title is limited to {MAX_TITLE_CHARS} characters, source to {MAX_SOURCE_CHARS}"
            )
        if len(metadata) > MAX_METADATA_ENTRIES:
            raise LimitExceeded(f"metadata is limited to {MAX_METADATA_ENTRIES} entries")
        for key, value in metadata.items():
            if len(key) > MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
                raise LimitExceeded(
                    f"metadata keys are limited to {MAX_METADATA_KEY_CHARS} characters, "
                    f"values to {MAX_METADATA_VALUE_CHARS}"
                )


async def _after_one_turn(work: Callable[[], Awaitable[_T]]) -> _T:
    """``work()``, after one turn of the event loop (made then, so a leg cancelled before it
    starts leaves no coroutine behind).

    A ``grpc.aio`` call is sent by a task the call schedules when it is made. The keyword
    leg's task is scheduled before that, so it would build and submit its query first and the
    question's Embed call would leave only after it. One turn lets the Embed call leave first,
    so the model starts on the question while the keyword leg is built.
    """
    await asyncio.sleep(0)
    return await work()
