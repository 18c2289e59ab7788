"""The retrieval service's client of the embedding service.

    client = EmbeddingClient.from_settings(settings)
    vectors = await client.embed(["how do I install?"], embedding_pb2.INPUT_TYPE_QUERY)
    await client.close()

Requests are cut to the server's ``max_batch_size`` (read once from ``Info``), so callers can
pass any number of texts. Failed calls raise the matching :class:`bruno_core.BrunoError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

import grpc

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import Internal, create_channel, from_rpc_error
from bruno_retrieval.config import RetrievalSettings

InputType: TypeAlias = embedding_pb2.InputType.ValueType

# Used only if a server reports no batch limit; matches the embedding service's default.
_FALLBACK_BATCH_SIZE = 32


class EmbeddingClient:
    """Embeds texts through the embedding service over one long-lived channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        self._info: embedding_pb2.InfoResponse | None = None
        self._info_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> EmbeddingClient:
        return cls(
            create_channel(
                settings.embedding_addr,
                timeout_seconds=settings.embedding_timeout_seconds,
                max_message_bytes=settings.grpc_max_message_bytes,
            )
        )

    async def info(self) -> embedding_pb2.InfoResponse:
        """The model behind the service, asked once and then remembered."""
        async with self._info_lock:
            if self._info is None:
                try:
                    self._info = await self._stub.Info(embedding_pb2.InfoRequest())
                except grpc.aio.AioRpcError as error:
                    raise from_rpc_error(error, service="embedding") from error
            return self._info

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        batch_size = (await self.info()).max_batch_size or _FALLBACK_BATCH_SIZE
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            request = embedding_pb2.EmbedRequest(texts=batch, input_type=input_type)
            try:
                response = await self._stub.Embed(request)
            except grpc.aio.AioRpcError as error:
                raise from_rpc_error(error, service="embedding") from error
            if len(response.vectors) != len(batch):
                raise Internal(
                    f"embedding service returned {len(response.vectors)} vectors "
                    f"for {len(batch)} texts"
                )
            vectors.extend(list(vector.values) for vector in response.vectors)
        return vectors

    async def close(self) -> None:
        await self._channel.close()
