"""The edge under test: the real app, in front of real gRPC servers on loopback whose
retrieval and generation servicers are small, deterministic and configurable to fail."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.timestamp_pb2 import Timestamp
from typing_extensions import override

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import BrunoError, GrpcServer, GrpcServerSettings, NotFound, abort_with
from bruno_edge import EdgeSettings, create_app

Context = grpc.aio.ServicerContext[Any, Any]
CHUNK_CHARS = 100


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
        return [self.text[i : i + CHUNK_CHARS] for i in range(0, len(self.text), CHUNK_CHARS)] or [
            ""
        ]


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
        # While set, searches wait for it (a slow search holding its admission slot).
        self.search_gate: asyncio.Event | None = None
        self.searching = asyncio.Event()

    async def _maybe_fail(self, context: Context) -> None:
        if isinstance(self.fail_with, BrunoError):
            await abort_with(context, self.fail_with)
        if self.fail_with is not None:
            await context.abort(self.fail_with, "injected failure at 10.0.0.7:50052")

    @override
    async def IngestDocument(
        self, request: retrieval_pb2.IngestDocumentRequest, context: Context
    ) -> retrieval_pb2.IngestDocumentResponse:
        await self._maybe_fail(context)
        self.ingested.append(request.document_id)
        collection = request.collection or "default"
        content_hash = hashlib.sha256(request.text.encode()).hexdigest()
        document_id = request.document_id or content_hash[:16]
        key = (collection, document_id)
        previous = self.documents.get(key)
        if previous is not None and previous.content_hash == content_hash:
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
            content_hash,
        )
        self.documents[key] = stored
        return retrieval_pb2.IngestDocumentResponse(
            document_id=document_id,
            collection=collection,
            chunks=len(stored.chunks),
            outcome=outcome,
            content_hash=content_hash,
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
        words = set(request.query.lower().split())
        hits = []
        for doc in self.documents.values():
            if doc.collection != (request.collection or "default"):
                continue
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
                            chunk_id=f"{doc.document_id}#{index}",
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
        await self._maybe_fail(context)
        docs = sorted(
            (d for d in self.documents.values() if d.collection == request.collection),
            key=lambda d: d.document_id,
        )
        after = [d for d in docs if d.document_id > request.cursor]
        page = after[: request.limit or 2]
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
        stored = self.documents.pop((request.collection, request.document_id), None)
        if stored is None:
            await abort_with(context, NotFound(f"document {request.document_id!r} not found"))
        return retrieval_pb2.DeleteDocumentResponse(chunks_deleted=len(stored.chunks))

    def _collection(self, name: str) -> retrieval_pb2.CollectionInfo:
        docs = [d for d in self.documents.values() if d.collection == name]
        return retrieval_pb2.CollectionInfo(
            name=name,
            documents=len(docs),
            chunks=sum(len(d.chunks) for d in docs),
            embedding_model=self.models.get(name, "fake-model"),
            dimension=8,
        )

    @override
    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: Context
    ) -> retrieval_pb2.ListCollectionsResponse:
        await self._maybe_fail(context)
        names = sorted({d.collection for d in self.documents.values()})
        return retrieval_pb2.ListCollectionsResponse(
            collections=[self._collection(name) for name in names]
        )

    @override
    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: Context
    ) -> retrieval_pb2.DeleteCollectionResponse:
        await self._maybe_fail(context)
        keys = [key for key in self.documents if key[0] == request.collection]
        if not keys:
            await abort_with(context, NotFound(f"collection {request.collection!r} not found"))
        for key in keys:
            del self.documents[key]
        return retrieval_pb2.DeleteCollectionResponse(documents_deleted=len(keys))

    @override
    async def ReindexCollection(
        self, request: retrieval_pb2.ReindexCollectionRequest, context: Context
    ) -> retrieval_pb2.ReindexCollectionResponse:
        await self._maybe_fail(context)
        if not any(key[0] == request.collection for key in self.documents):
            await abort_with(context, NotFound(f"collection {request.collection!r} not found"))
        previous = self.models.get(request.collection, "fake-model")
        self.models[request.collection] = "fake-model-2"
        return retrieval_pb2.ReindexCollectionResponse(
            collection=self._collection(request.collection), previous_model=previous
        )


class FakeGeneration(generation_pb2_grpc.GenerationServiceServicer):
    """Streams fixed tokens then a Done, stopping at ``options.max_tokens`` as a model does;
    can fail or hang after a given number of tokens. ``Converse`` streams ``plain_tokens``
    from any of ``models``."""

    def __init__(self) -> None:
        self.tokens = ["Restart ", "the ", "pod ", "[1]."]
        self.plain_tokens = ["Pod ", "restarts"]
        self.models = ["fake-llm:latest", "mistral:7b"]
        self.models_reachable = True
        self.conversed: list[generation_pb2.ConverseRequest] = []
        self.requests: list[generation_pb2.GenerateRequest] = []
        self.fail_after: int | None = None
        self.hang_after: int | None = None
        self.skip_done = False
        self.cancelled = asyncio.Event()
        self.generating = asyncio.Event()
        self.rewrites: list[generation_pb2.RewriteQuestionRequest] = []
        self.info = generation_pb2.InfoResponse(
            backend="auto", model="fake-llm", model_available=True, context_window=4096
        )

    @override
    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        self.requests.append(request)
        self.generating.set()
        limit = request.options.max_tokens if request.options.HasField("max_tokens") else None
        tokens = self.tokens[:limit]
        try:
            for sent, text in enumerate(tokens):
                if sent == self.fail_after:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "model server went away")
                if sent == self.hang_after:
                    await asyncio.Event().wait()
                yield generation_pb2.GenerateResponse(token=generation_pb2.Token(text=text))
            if self.skip_done:
                return
            yield generation_pb2.GenerateResponse(
                done=generation_pb2.Done(
                    model="fake-llm",
                    usage=generation_pb2.Usage(
                        prompt_tokens=len(request.question.split()) + len(request.passages),
                        completion_tokens=len(tokens),
                    ),
                    fallback=False,
                    passages_used=len(request.passages),
                    finish_reason="length" if len(tokens) < len(self.tokens) else "stop",
                )
            )
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    @override
    async def Converse(
        self, request: generation_pb2.ConverseRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        self.conversed.append(request)
        if request.model not in self.models:
            await abort_with(context, NotFound(f"no model {request.model!r}"))
        for text in self.plain_tokens:
            yield generation_pb2.GenerateResponse(token=generation_pb2.Token(text=text))
        yield generation_pb2.GenerateResponse(
            done=generation_pb2.Done(
                model=request.model,
                usage=generation_pb2.Usage(prompt_tokens=7, completion_tokens=2),
                finish_reason="stop",
            )
        )

    @override
    async def ListModels(
        self, request: generation_pb2.ListModelsRequest, context: Context
    ) -> generation_pb2.ListModelsResponse:
        if not self.models_reachable:
            return generation_pb2.ListModelsResponse(
                reachable=False, detail="Ollama is not reachable"
            )
        return generation_pb2.ListModelsResponse(models=self.models, reachable=True)

    @override
    async def RewriteQuestion(
        self, request: generation_pb2.RewriteQuestionRequest, context: Context
    ) -> generation_pb2.RewriteQuestionResponse:
        """Appends the previous user question in brackets, like the extractive rewrite."""
        self.rewrites.append(request)
        previous = [m.content for m in request.history if m.role == "user"]
        if not previous:
            return generation_pb2.RewriteQuestionResponse(question=request.question)
        rewritten = f"{request.question} ({previous[-1]})"
        return generation_pb2.RewriteQuestionResponse(question=rewritten, rewritten=True)

    @override
    async def Info(
        self, request: generation_pb2.InfoRequest, context: Context
    ) -> generation_pb2.InfoResponse:
        return self.info


class FakeConversations(conversations_pb2_grpc.ConversationServiceServicer):
    """Conversations in a dict, kept to ``max_turns``, each found only by its owner (when a
    request names one), as retrieval's store does."""

    def __init__(self, max_turns: int = 50) -> None:
        self.conversations: dict[str, list[conversations_pb2.Turn]] = {}
        self.owners: dict[str, str] = {}
        self.max_turns = max_turns

    async def _check(self, conversation_id: str, owner: str, context: Context) -> None:
        if conversation_id not in self.conversations or (
            owner and self.owners.get(conversation_id, "") != owner
        ):
            await abort_with(context, NotFound(f"conversation {conversation_id!r} not found"))

    @override
    async def AppendTurns(
        self, request: conversations_pb2.AppendTurnsRequest, context: Context
    ) -> conversations_pb2.AppendTurnsResponse:
        if request.conversation_id not in self.conversations and request.create:
            self.conversations[request.conversation_id] = []
            self.owners[request.conversation_id] = request.owner
        await self._check(request.conversation_id, request.owner, context)
        turns = self.conversations[request.conversation_id]
        for turn in request.turns:
            stamped = conversations_pb2.Turn()
            stamped.CopyFrom(turn)
            stamped.created_at.GetCurrentTime()
            turns.append(stamped)
        del turns[: -self.max_turns]
        return conversations_pb2.AppendTurnsResponse(turns=len(turns))

    @override
    async def GetConversation(
        self, request: conversations_pb2.GetConversationRequest, context: Context
    ) -> conversations_pb2.Conversation:
        await self._check(request.conversation_id, request.owner, context)
        turns = self.conversations[request.conversation_id]
        kept = turns[-request.max_turns :] if request.max_turns else turns
        return conversations_pb2.Conversation(
            conversation_id=request.conversation_id,
            turns=kept,
            owner=self.owners.get(request.conversation_id, ""),
        )

    @override
    async def DeleteConversation(
        self, request: conversations_pb2.DeleteConversationRequest, context: Context
    ) -> conversations_pb2.DeleteConversationResponse:
        await self._check(request.conversation_id, request.owner, context)
        del self.conversations[request.conversation_id]
        return conversations_pb2.DeleteConversationResponse()


@dataclass
class Downstreams:
    retrieval: FakeRetrieval
    generation: FakeGeneration
    servers: dict[str, GrpcServer]
    conversations: FakeConversations

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"


@dataclass
class Edge:
    app: FastAPI
    client: httpx.AsyncClient
    settings: EdgeSettings
    downstreams: Downstreams
    auth: dict[str, str] = field(default_factory=dict)

    @property
    def retrieval(self) -> FakeRetrieval:
        return self.downstreams.retrieval

    @property
    def generation(self) -> FakeGeneration:
        return self.downstreams.generation

    @property
    def conversations(self) -> FakeConversations:
        return self.downstreams.conversations

    async def ingest(self, text: str, **fields: Any) -> httpx.Response:
        response = await self.client.post(
            "/api/v1/documents", json={"text": text, **fields}, headers=self.auth
        )
        assert response.status_code in (200, 201), response.text
        return response

    @staticmethod
    def events(response: httpx.Response) -> list[tuple[str, Any]]:
        """The (event, decoded data) pairs of an SSE response, pings left out."""
        return parse_sse(response.text)


class HealthOnlyEmbedding(embedding_pb2_grpc.EmbeddingServiceServicer):
    """An embedding service the edge never calls: it only checks its health."""

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        raise NotImplementedError

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        raise NotImplementedError


class EdgeFactory(Protocol):
    async def __call__(self, **overrides: Any) -> Edge: ...


@pytest.fixture
async def downstreams() -> AsyncIterator[Downstreams]:
    settings = GrpcServerSettings(grpc_grace_seconds=0)
    retrieval, generation = FakeRetrieval(), FakeGeneration()
    servers = {
        name: GrpcServer(name, settings, listen_addr="127.0.0.1:0")
        for name in ("retrieval", "generation", "embedding")
    }
    servers["retrieval"].add_servicer(
        retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"],
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
        retrieval,
    )
    conversations = FakeConversations()
    servers["retrieval"].add_servicer(
        conversations_pb2.DESCRIPTOR.services_by_name["ConversationService"],
        conversations_pb2_grpc.add_ConversationServiceServicer_to_server,
        conversations,
    )
    servers["generation"].add_servicer(
        generation_pb2.DESCRIPTOR.services_by_name["GenerationService"],
        generation_pb2_grpc.add_GenerationServiceServicer_to_server,
        generation,
    )
    # Only its health matters to the edge.
    servers["embedding"].add_servicer(
        embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        HealthOnlyEmbedding(),
    )
    for server in servers.values():
        await server.start()
    yield Downstreams(retrieval, generation, servers, conversations)
    for server in servers.values():
        await server.stop()


@pytest.fixture
async def edge_factory(downstreams: Downstreams) -> AsyncIterator[EdgeFactory]:
    """Builds an edge app (lifespan running) and a client for it; settings override defaults."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Edge:
            values: dict[str, Any] = {
                "retrieval_addr": downstreams.addr("retrieval"),
                "generation_addr": downstreams.addr("generation"),
                "embedding_addr": downstreams.addr("embedding"),
                "api_keys": "",
                "edge_host": "127.0.0.1",
                **overrides,
            }
            settings = EdgeSettings(**values)
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app, raise_app_exceptions=False),
                    base_url="http://edge.test",
                )
            )
            return Edge(app, client, settings, downstreams)

        yield make


@pytest.fixture
async def edge(edge_factory: EdgeFactory) -> Edge:
    """An edge in open mode on loopback (no API keys)."""
    return await edge_factory()


def parse_sse(body: str) -> list[tuple[str, Any]]:
    """The (event, decoded data) pairs of an SSE body, pings left out."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
