"""The embedding service's gRPC face: checks each request, hands the texts to the configured
:class:`~bruno_embedding.embedders.Embedder` and wires it into a :class:`GrpcServer`.

In-process (tests, harnesses):

    server = await create_server(EmbeddingSettings(embedding_listen_addr="127.0.0.1:0"))
    port = await server.start([EMBEDDING_SERVICE])
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from prometheus_client import Counter

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.errors import BrunoError, Internal, InvalidInput, LimitExceeded, abort_with
from bruno_core.grpc_server import GrpcServer
from bruno_core.queueing import Bounds
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder, InputType
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder

log = logging.getLogger(__name__)

EMBEDDING_SERVICE = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]

EMBEDDED_TEXTS = Counter(
    "bruno_embedding_texts_total", "Texts turned into vectors, by backend.", ["backend"]
)

_INPUT_TYPES = {
    embedding_pb2.INPUT_TYPE_UNSPECIFIED: InputType.DOCUMENT,
    embedding_pb2.INPUT_TYPE_DOCUMENT: InputType.DOCUMENT,
    embedding_pb2.INPUT_TYPE_QUERY: InputType.QUERY,
}

Context = grpc.aio.ServicerContext[Any, Any]


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """``bruno.embedding.v1.EmbeddingService`` over one :class:`Embedder`."""

    def __init__(self, embedder: Embedder, *, max_texts: int) -> None:
        self._embedder = embedder
        self._max_texts = max_texts

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        try:
            input_type = self._validate(request)
            vectors = await self._embedder.embed(list(request.texts), input_type)
            info = await self._embedder.info()
        except BrunoError as error:
            await abort_with(context, error)
        except Exception:
            log.exception("embedding failed")
            await abort_with(context, Internal("embedding failed"))
        EMBEDDED_TEXTS.labels(info.backend).inc(len(vectors))
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=vector) for vector in vectors],
            model=info.model,
            dimension=info.dimension,
        )

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        try:
            info = await self._embedder.info()
        except BrunoError as error:
            await abort_with(context, error)
        return embedding_pb2.InfoResponse(
            model=info.model,
            dimension=info.dimension,
            backend=info.backend,
            max_batch_size=self._max_texts,
            max_input_tokens=info.max_input_tokens,
        )

    def _validate(self, request: embedding_pb2.EmbedRequest) -> InputType:
        if not request.texts:
            raise InvalidInput("texts must hold at least one text")
        if len(request.texts) > self._max_texts:
            raise LimitExceeded(
                f"{len(request.texts)} texts in one request; the limit is {self._max_texts}"
            )
        blank = [i for i, text in enumerate(request.texts) if not text.strip()]
        if blank:
            raise InvalidInput(f"texts must not be empty or blank (positions {blank[:10]})")
        try:
            return _INPUT_TYPES[request.input_type]
        except KeyError:
            raise InvalidInput(f"unknown input_type {request.input_type}") from None


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The backend the settings name, constructed but not started."""
    if settings.embedding_backend == "ollama":
        return OllamaEmbedder(
            host=settings.ollama_host,
            model=settings.embedding_ollama_model,
            batch_size=settings.embedding_batch_size,
        )
    return OnnxMiniLMEmbedder(
        batch_size=settings.embedding_batch_size,
        background_call_chars=settings.embedding_document_call_chars,
        threads=settings.embedding_threads,
        thread_spinning=settings.embedding_thread_spinning,
        max_waiting=Bounds(
            interactive=settings.embedding_max_waiting_queries,
            background=settings.embedding_max_waiting_documents,
        ),
    )


async def create_server(
    settings: EmbeddingSettings, embedder: Embedder | None = None
) -> GrpcServer:
    """An unstarted server with the embedding servicer added.

    Without ``embedder`` the one the settings name is built and started here (the model is
    loaded before the caller's ``start`` reports SERVING); the caller owns closing one it passes.
    """
    if embedder is None:
        embedder = build_embedder(settings)
        await embedder.start()
    server = GrpcServer(
        "embedding",
        settings,
        listen_addr=settings.embedding_listen_addr,
        metrics_port=settings.embedding_metrics_port,
    )
    servicer = EmbeddingServicer(embedder, max_texts=settings.embedding_max_texts)
    embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(servicer, server.grpc)
    return server


async def serve(settings: EmbeddingSettings) -> None:
    """Load the model, then serve until SIGTERM or SIGINT."""
    embedder = build_embedder(settings)
    await embedder.start()
    server = await create_server(settings, embedder)
    await server.run([EMBEDDING_SERVICE], on_stop=embedder.aclose)


def main() -> None:
    """Console entry point ``bruno-embedding``."""
    run_service("embedding", EmbeddingSettings(), serve)
