"""The retrieval service's client of the embedding service.

    client = EmbeddingClient.from_settings(settings)
    vectors = await client.embed(["how do I install?"], embedding_pb2.INPUT_TYPE_QUERY)
    await client.close()

Requests are cut to the server's ``max_batch_size`` (read once from ``Info``), so callers can
pass any number of texts. Document texts from concurrent callers are coalesced: the pieces of
several small documents being ingested at once travel in one full batch, which the model runs
far more efficiently than many batches of one or two (at most two requests are in flight, so
the embedding service always has the next batch ready). Queries skip the queue. A failed
batch fails every caller with a text in it; failed calls raise the matching
:class:`bruno_core.BrunoError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import TypeAlias

import grpc
import numpy as np
import numpy.typing as npt

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import Internal, create_channel, from_rpc_error
from bruno_retrieval.config import RetrievalSettings

InputType: TypeAlias = embedding_pb2.InputType.ValueType

# Used only if a server reports no batch limit; matches the embedding service's default.
_FALLBACK_BATCH_SIZE = 32
# Coalesced document batches in flight at once.
_MAX_IN_FLIGHT = 2


@dataclasses.dataclass(eq=False)
class _Job:
    """One caller's texts waiting to be embedded."""

    vectors: list[list[float] | None]
    future: asyncio.Future[list[list[float]]]
    missing: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Item:
    text: str
    job: _Job
    index: int


class EmbeddingClient:
    """Embeds texts through the embedding service over one long-lived channel."""

    def __init__(self, channel: grpc.aio.Channel, *, query_cache_size: int = 0) -> None:
        self._channel = channel
        self._stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        self._info: embedding_pb2.InfoResponse | None = None
        self._info_lock = asyncio.Lock()
        self._model = ""
        self._queue: deque[_Item] = deque()
        self._dispatchers: set[asyncio.Task[None]] = set()
        # Least recently used last out; float32 rows, a quarter of the size of float lists.
        self._query_cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._query_cache_size = query_cache_size
        self._cache_epoch = 0  # counts the cache's emptyings (model changes)

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> EmbeddingClient:
        return cls(
            create_channel(
                settings.embedding_addr,
                timeout_seconds=settings.embedding_timeout_seconds,
                max_message_bytes=settings.grpc_max_message_bytes,
            ),
            query_cache_size=settings.query_cache_size,
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
        if input_type == embedding_pb2.INPUT_TYPE_QUERY and self._query_cache_size:
            return await self._embed_queries(texts)
        if input_type != embedding_pb2.INPUT_TYPE_DOCUMENT:
            return await self._embed_unqueued(texts, input_type)
        batch_size = (await self.info()).max_batch_size or _FALLBACK_BATCH_SIZE
        job = _Job([None] * len(texts), asyncio.get_running_loop().create_future(), len(texts))
        self._queue.extend(_Item(text, job, index) for index, text in enumerate(texts))
        while len(self._dispatchers) < _MAX_IN_FLIGHT:
            task = asyncio.get_running_loop().create_task(self._dispatch(batch_size))
            self._dispatchers.add(task)
            task.add_done_callback(self._dispatchers.discard)
        return await job.future

    async def _embed_unqueued(
        self, texts: Sequence[str], input_type: InputType
    ) -> list[list[float]]:
        """``texts`` in batches of the server's size, straight away (not coalesced)."""
        batch_size = (await self.info()).max_batch_size or _FALLBACK_BATCH_SIZE
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch_size):
            vectors += await self._embed_batch(list(texts[start : start + batch_size]), input_type)
        return vectors

    async def _embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Query vectors, from the cache where it has them; the rest are embedded and kept.

        The cache belongs to the model that made its vectors: an answer naming another model
        empties it (:meth:`_embed_batch`), so a vector never outlives the model it came from
        past that model's first new answer."""
        cache, epoch = self._query_cache, self._cache_epoch
        # Taken before any await: a concurrent call may evict or clear entries meanwhile.
        known = {text: cache[text] for text in texts if text in cache}
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            fresh = await self._embed_unqueued(missing, embedding_pb2.INPUT_TYPE_QUERY)
            if known and self._cache_epoch != epoch:
                # The model changed meanwhile: the cached vectors are the old model's, and
                # the answer must not mix the two. The cache is empty now: embed them all.
                return await self._embed_queries(texts)
            known.update(
                (text, np.asarray(vector, dtype=np.float32))
                for text, vector in zip(missing, fresh, strict=True)
            )
        for text, vector in known.items():
            cache[text] = vector
            cache.move_to_end(text)
        while len(cache) > self._query_cache_size:
            cache.popitem(last=False)
        return [known[text].tolist() for text in texts]

    async def _dispatch(self, batch_size: int) -> None:
        """Send queued document texts in full batches until the queue is empty."""
        while self._queue:
            batch: list[_Item] = []
            while self._queue and len(batch) < batch_size:
                item = self._queue.popleft()
                if not item.job.future.done():  # skip callers that gave up or already failed
                    batch.append(item)
            if not batch:
                continue
            try:
                vectors = await self._embed_batch(
                    [item.text for item in batch], embedding_pb2.INPUT_TYPE_DOCUMENT
                )
            except Exception as error:
                for job in {item.job for item in batch}:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            for item, vector in zip(batch, vectors, strict=True):
                job = item.job
                job.vectors[item.index] = vector
                job.missing -= 1
                if job.missing == 0 and not job.future.done():
                    job.future.set_result([v for v in job.vectors if v is not None])

    async def _embed_batch(self, batch: list[str], input_type: InputType) -> list[list[float]]:
        request = embedding_pb2.EmbedRequest(texts=batch, input_type=input_type)
        try:
            response = await self._stub.Embed(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="embedding") from error
        if len(response.vectors) != len(batch):
            raise Internal(
                f"embedding service returned {len(response.vectors)} vectors for {len(batch)} texts"
            )
        if response.model and response.model != self._model:
            if self._model:
                self._query_cache.clear()  # vectors of the previous model
                self._cache_epoch += 1
            self._model = response.model
        return [list(vector.values) for vector in response.vectors]

    async def model(self) -> str:
        """The model named by the latest Embed answer (``Info`` before the first): a restarted
        embedding service with another model is noticed at its first answer."""
        return self._model or (await self.info()).model

    async def close(self) -> None:
        for task in self._dispatchers:
            task.cancel()
        await self._channel.close()
