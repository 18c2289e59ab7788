"""The embedding service's gRPC face: each call translated for the configured :class:`Embedder`
and its answer translated back. Errors are raised, not caught: the server's error policy
(:mod:`bruno_core.grpc_server`) turns them into statuses."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import Counter

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_embedding.converters import embed_response, info_response, input_type_from_proto
from bruno_embedding.embedders import Embedder, check_texts

SERVICE = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]

EMBEDDED_TEXTS = Counter(
    "bruno_embedding_texts_total", "Texts turned into vectors, by backend.", ["backend"]
)

Context = grpc.aio.ServicerContext[Any, Any]


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """``bruno.embedding.v1.EmbeddingService`` over one :class:`Embedder`."""

    def __init__(self, embedder: Embedder, *, max_texts: int) -> None:
        self._embedder = embedder
        self._max_texts = max_texts

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        texts = check_texts(request.texts, max_texts=self._max_texts)
        input_type = input_type_from_proto(request.input_type)
        vectors = await self._embedder.embed(texts, input_type)
        info = await self._embedder.info()
        EMBEDDED_TEXTS.labels(info.backend).inc(len(vectors))
        return embed_response(vectors, info)

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        return info_response(await self._embedder.info(), max_texts=self._max_texts)
