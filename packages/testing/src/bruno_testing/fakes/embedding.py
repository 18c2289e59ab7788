"""Stand-ins for the ``EmbeddingService``: one that is only there to be healthy, for callers
(the edge) that check the embedding service's health and never embed, and one of several
models with hashed vectors, for callers that embed (retrieval)."""

from __future__ import annotations

import array
import re
from typing import Any

import grpc
from typing_extensions import override

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import Conflict, GrpcServer, GrpcServerSettings, InvalidInput, LimitExceeded
from bruno_testing.ollama_standin import hashed_embedding

Context = grpc.aio.ServicerContext[Any, Any]


class HealthOnlyEmbedding(embedding_pb2_grpc.EmbeddingServiceServicer):
    """An embedding service the caller never calls: it only checks its health."""

    @override
    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        raise NotImplementedError

    @override
    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        raise NotImplementedError


class FakeEmbedding(embedding_pb2_grpc.EmbeddingServiceServicer):
    """An embedding service of several models, for callers that embed (retrieval): each model
    hashes words to slots of its own (:func:`~bruno_testing.ollama_standin.hashed_embedding`
    salted with its name), so two models' vectors differ as two real models' do. The first of
    ``models`` (name: dimension) is the default; a request naming none gets it, one naming a
    model not served is refused FAILED_PRECONDITION naming the served ones, as the real
    service's. ``requests`` records every Embed: (model asked for, input type, texts)."""

    def __init__(self, models: dict[str, int], *, max_batch_size: int = 32) -> None:
        if not models:
            raise ValueError("an embedding service serves at least one model")
        self.models = dict(models)
        self.max_batch_size = max_batch_size
        self.requests: list[tuple[str, int, list[str]]] = []

    @property
    def default(self) -> str:
        return next(iter(self.models))

    def vector(self, model: str, text: str) -> list[float]:
        """What ``model`` embeds ``text`` as (float32 values, as they travel)."""
        salt = re.sub(r"\W", "_", model)  # one word with each of the text's: its own slots
        salted = " ".join(f"{salt}_{word}" for word in re.findall(r"\w+", text.lower()))
        return array.array("f", hashed_embedding(salted, self.models[model])).tolist()

    @override
    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        self.requests.append((request.model, request.input_type, list(request.texts)))
        model = request.model or self.default
        if model not in self.models:
            raise Conflict(
                f"model {model!r} is not served here; the models served are "
                f"{', '.join(self.models)}"
            )
        if not request.texts:
            raise InvalidInput("texts must hold at least one text")
        if len(request.texts) > self.max_batch_size:
            raise LimitExceeded(f"at most {self.max_batch_size} texts per request")
        if any(not text.strip() for text in request.texts):
            raise InvalidInput("texts must not be empty or blank")
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=self.vector(model, t)) for t in request.texts],
            model=model,
            dimension=self.models[model],
        )

    @override
    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        default = self.default
        return embedding_pb2.InfoResponse(
            model=default,
            dimension=self.models[default],
            backend="onnx",
            max_batch_size=self.max_batch_size,
            max_input_tokens=256,
            models=[
                embedding_pb2.ModelInfo(name=name, dimension=dimension, max_input_tokens=256)
                for name, dimension in self.models.items()
            ],
        )


def embedding_server(servicer: embedding_pb2_grpc.EmbeddingServiceServicer) -> GrpcServer:
    """``servicer`` as the ``EmbeddingService`` of a server on a free loopback port, not yet
    started (``port = await server.start()``)."""
    server = GrpcServer(
        "embedding", GrpcServerSettings(grpc_grace_seconds=0), listen_addr="127.0.0.1:0"
    )
    server.add_servicer(
        embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        servicer,
    )
    return server
