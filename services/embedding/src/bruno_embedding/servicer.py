"""The embedding service's gRPC face: each call translated for the :class:`Embedder` of the
model it names (the registry's default when it names none) and its answer translated back.
Errors are raised, not caught: the server's error policy (:mod:`bruno_core.grpc_server`) turns
them into statuses."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import Counter

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_embedding.converters import embed_response, info_response, input_type_from_proto
from bruno_embedding.embedders import check_texts
from bruno_embedding.registry import EmbedderRegistry

SERVICE = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]

EMBEDDED_TEXTS = Counter(
    "bruno_embedding_texts_total",
    "Texts turned into vectors, by backend and model.",
    ["backend", "model"],
)

Context = grpc.aio.ServicerContext[Any, Any]


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """``bruno.embedding.v1.EmbeddingService`` over the models of an :class:`EmbedderRegistry`."""

    def __init__(self, embedders: EmbedderRegistry, *, max_texts: int) -> None:
        self._embedders = embedders
        self._max_texts = max_texts

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        texts = check_texts(request.texts, max_texts=self._max_texts)
        input_type = input_type_from_proto(request.input_type)
        embedder = self._embedders.get(request.model)
        vectors = await embedder.embed(texts, input_type)
        info = await embedder.info()
        EMBEDDED_TEXTS.labels(info.backend, info.model).inc(len(vectors))
        return embed_response(vectors, info)

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        return info_response(await self._embedders.infos(), max_texts=self._max_texts)
