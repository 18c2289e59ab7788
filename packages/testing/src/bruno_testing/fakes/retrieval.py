"""An in-memory ``RetrievalService`` for tests of its callers: a chunk scores by how many query
words it contains, and it can be told to fail or to hold searches.

Everything a caller can see follows the real service (checked by
``packages/testing/tests/test_fakes_match_services.py``): chunk ids ``<document id>:<n>``, the
content hash of :func:`bruno_core.contract.content_hash`, ``default`` for an unnamed
collection, the identifier rule, the page size, and NOT_FOUND where the real one says it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from typing_extensions import override

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import BrunoError, InvalidInput, NotFound, abort_with
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    DEFAULT_PAGE_SIZE,
    DOCUMENT_ID,
    content_hash,
)

Context = grpc.aio.ServicerContext[Any, Any]
CHUNK_CHARS = 100
DERIVED_ID_HEX_CHARS = 16  # a document sent without an id is named by its hash's start
MODEL = "fake-model"
DIMENSION = 8


@dataclass
class StoredDocument:
    collection: str
    document_id: str
    title: str
    source: str
    text: str
    metadata: dict[str, str]
    content_hash: str

    @property
    def chunks(self) -> list[str]:
        """The text in pieces of ``CHUNK_CHARS`` characters."""
        return [self.text[i : i + CHUNK_CHARS] for i in range(0, len(self.text), CHUNK_CHARS)]


class FakeRetrieval(retrieval_pb2_grpc.RetrievalServiceServicer):
    """An in-memory knowledge base: a chunk scores by how many query words it contains."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], StoredDocument] = {}
        self.searches: list[retrieval_pb2.SearchRequest] = []
        self.models: dict[str, str] = {}  # collection -> embedding model after a reindex
        self.ingested: list[str] = []  # document ids, in the order IngestDocument saw them
        # A status code fails like the gRPC runtime would (its detail names an address); a
        # domain error fails like a Bruno service does, through abort_with.
        self.fail_with: grpc.StatusCode | BrunoError | None = None
        # Documents refused (InvalidInput) by id, as retrieval refuses one it cannot store.
        self.refuse_ids: set[str] = set()
        # While set, searches wait for it (a slow search holding its admission slot).
        self.search_gate: asyncio.Event | None = None
        self.searching = asyncio.Event()
        # Collections live from their first ingest to their deletion, emptied or not.
        self._collections: set[str] = set()
        self._versions: dict[str, int] = {}  # collection -> its table's version (one a write)
        self.listings: list[retrieval_pb2.ListDocumentsRequest] = []

    def _committed(self, collection: str, *, write: bool = True) -> retrieval_pb2.Committed:
        """The version a write to ``collection`` made (or, not ``write``, the current one)."""
        self._versions[collection] = self._versions.get(collection, 0) + int(write)
        return retrieval_pb2.Committed(table=collection, version=self._versions[collection])

    async def _maybe_fail(self, context: Context) -> None:
        if isinstance(self.fail_with, BrunoError):
            await abort_with(context, self.fail_with)
        if self.fail_with is not None:
            await context.abort(self.fail_with, "injected failure at 10.0.0.7:50052")

    def _in(self, collection: str) -> list[StoredDocument]:
        return [d for d in self.documents.values() if d.collection == collection]

    def _names(self) -> set[str]:
        return self._collections | {d.collection for d in self.documents.values()}

    def _existing(self, name: str, *, default_exists: bool = True) -> str:
        """The collection ``name`` (``default`` when empty); NotFound when it does not exist.
        Reads find ``default`` before anything is stored in it (``default_exists``)."""
        collection = COLLECTION_NAME.check(name or DEFAULT_COLLECTION)
        if collection in self._names() or (default_exists and collection == DEFAULT_COLLECTION):
            return collection
        raise NotFound(f"collection {collection!r} not found")

    @override
    async def IngestDocument(
        self, request: retrieval_pb2.IngestDocumentRequest, context: Context
    ) -> retrieval_pb2.IngestDocumentResponse:
        await self._maybe_fail(context)
        self.ingested.append(request.document_id)
        if request.document_id in self.refuse_ids:
            raise InvalidInput("refused on purpose")
        collection = COLLECTION_NAME.check(request.collection or DEFAULT_COLLECTION)
        if not request.text.strip():
            raise InvalidInput("text must not be empty")
        digest = content_hash(request.text)
        document_id = DOCUMENT_ID.check(request.document_id or digest[:DERIVED_ID_HEX_CHARS])
        key = (collection, document_id)
        previous = self.documents.get(key)
        unchanged = previous is not None and previous.content_hash == digest
        if unchanged:
            outcome = retrieval_pb2.INGEST_OUTCOME_UNCHANGED
        elif previous is not None:
            outcome = retrieval_pb2.INGEST_OUTCOME_REPLACED
        else:
            outcome = retrieval_pb2.INGEST_OUTCOME_CREATED
        stored = StoredDocument(
            collection,
            document_id,
            request.title,
            request.source,
            request.text,
            dict(request.metadata),
            digest,
        )
        self.documents[key] = stored
        self._collections.add(collection)
        return retrieval_pb2.IngestDocumentResponse(
            document_id=document_id,
            collection=collection,
            chunks=len(stored.chunks),
            outcome=outcome,
            content_hash=digest,
            committed=self._committed(collection, write=not unchanged),
        )

    @override
    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: Context
    ) -> retrieval_pb2.SearchResponse:
        self.searches.append(request)
        self.searching.set()
        if self.search_gate is not None:
            await self.search_gate.wait()
        await self._maybe_fail(context)
        collection = self._existing(request.collection)
        if not request.query.strip():
            raise InvalidInput("query must not be empty")
        documents = self._in(collection)
        words = set(request.query.lower().split())
        hits = []
        for doc in documents:
            fields = {"source": doc.source, "title": doc.title, "document_id": doc.document_id}
            if any(
                fields.get(key, doc.metadata.get(key)) != value
                for key, value in request.filters.items()
            ):
                continue
            for index, chunk in enumerate(doc.chunks):
                score = len(words & set(chunk.lower().split()))
                if score:
                    hits.append(
                        retrieval_pb2.SearchHit(
                            document_id=doc.document_id,
                            chunk_id=f"{doc.document_id}:{index}",
                            title=doc.title,
                            source=doc.source,
                            text=chunk,
                            score=score / len(words),
                            chunk_index=index,
                            heading_path=doc.title,
                            metadata=doc.metadata,
                        )
                    )
        hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
        mode = request.mode or retrieval_pb2.SEARCH_MODE_HYBRID
        return retrieval_pb2.SearchResponse(hits=hits[: request.top_k or 5], mode=mode)

    @override
    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: Context
    ) -> retrieval_pb2.ListDocumentsResponse:
        self.listings.append(request)
        await self._maybe_fail(context)
        collection = self._existing(request.collection)
        docs = sorted(self._in(collection), key=lambda d: d.document_id)
        after = [d for d in docs if d.document_id > request.cursor]
        page = after[: request.limit or DEFAULT_PAGE_SIZE]
        ingested_at = Timestamp(seconds=1_750_000_000)
        return retrieval_pb2.ListDocumentsResponse(
            documents=[
                retrieval_pb2.DocumentSummary(
                    document_id=d.document_id,
                    title=d.title,
                    source=d.source,
                    chunks=len(d.chunks),
                    content_hash=d.content_hash,
                    metadata=d.metadata,
                    ingested_at=ingested_at,
                )
                for d in page
            ],
            next_cursor=page[-1].document_id if len(after) > len(page) else "",
        )

    @override
    async def DeleteDocument(
        self, request: retrieval_pb2.DeleteDocumentRequest, context: Context
    ) -> retrieval_pb2.DeleteDocumentResponse:
        await self._maybe_fail(context)
        collection = COLLECTION_NAME.check(request.collection or DEFAULT_COLLECTION)
        document_id = DOCUMENT_ID.check(request.document_id)
        stored = self.documents.pop((collection, document_id), None)
        if stored is None:
            raise NotFound(f"document {document_id!r} not found in collection {collection!r}")
        return retrieval_pb2.DeleteDocumentResponse(
            chunks_deleted=len(stored.chunks), committed=self._committed(collection)
        )

    def _collection(self, name: str) -> retrieval_pb2.CollectionInfo:
        docs = self._in(name)
        return retrieval_pb2.CollectionInfo(
            name=name,
            documents=len(docs),
            chunks=sum(len(d.chunks) for d in docs),
            embedding_model=self.models.get(name, MODEL),
            dimension=DIMENSION,
        )

    @override
    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: Context
    ) -> retrieval_pb2.ListCollectionsResponse:
        await self._maybe_fail(context)
        names = sorted(self._names())
        return retrieval_pb2.ListCollectionsResponse(
            collections=[self._collection(name) for name in names]
        )

    @override
    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: Context
    ) -> retrieval_pb2.DeleteCollectionResponse:
        await self._maybe_fail(context)
        collection = self._existing(request.collection, default_exists=False)
        keys = [key for key in self.documents if key[0] == collection]
        for key in keys:
            del self.documents[key]
        self._collections.discard(collection)
        return retrieval_pb2.DeleteCollectionResponse(documents_deleted=len(keys))

    @override
    async def ReindexCollection(
        self, request: retrieval_pb2.ReindexCollectionRequest, context: Context
    ) -> retrieval_pb2.ReindexCollectionResponse:
        await self._maybe_fail(context)
        collection = self._existing(request.collection, default_exists=False)
        previous = self.models.get(collection, MODEL)
        self.models[collection] = f"{MODEL}-2"
        return retrieval_pb2.ReindexCollectionResponse(
            collection=self._collection(collection),
            previous_model=previous,
            committed=self._committed(collection),
        )
