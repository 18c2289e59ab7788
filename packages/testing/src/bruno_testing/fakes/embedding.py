"""An ``EmbeddingService`` that is only there to be healthy: for callers (the edge) that check
the embedding service's health and never embed."""

from __future__ import annotations

from typing import Any

import grpc
from typing_extensions import override

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc

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
