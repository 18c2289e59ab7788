"""The retrieval service's client of the embedding service.

    client = EmbeddingClient.from_settings(settings)
    embedded = await client.embed(["how do I install?"], embedding_pb2.INPUT_TYPE_QUERY, "m")
    embedded.vectors, embedded.model   # one vector per text; the model that made them
    await client.close()

Each call names the model to embed with (a collection's own; ``""``: the service's default),
and the answer names the model that made its vectors, so calls of two models never mix up
whose vectors are whose. Requests are cut to the server's ``max_batch_size`` (read once from
``Info``), so callers can pass any number of texts. Document texts of one model from concurrent
callers are coalesced: the pieces of several small documents being ingested at once travel in
one full batch, which the model runs far more efficiently than many batches of one or two (at
most two requests are in flight, so the embedding service always has the next batch ready).
Queries skip the queue and are cached per model. A failed batch fails every caller with a text
in it; failed calls raise the matching :class:`bruno_core.BrunoError`, and a model the service
does not serve :class:`~bruno_retrieval.knowledge.embedding.ModelNotServed`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from typing import TypeAlias

import grpc
import numpy as np
import numpy.typing as npt

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import Conflict, Internal, Unavailable, create_channel, from_rpc_error
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge.embedding import Embedded, ModelNotServed

InputType: TypeAlias = embedding_pb2.InputType.ValueType

# Used only if a server reports no batch limit; matches the embedding service's default.
_FALLBACK_BATCH_SIZE = 32
# Coalesced document batches in flight at once.
_MAX_IN_FLIGHT = 2
_DEFAULT_CHANGED = (
    "the embedding service changed its default model while embedding these texts; try again"
)


@dataclasses.dataclass(eq=False)
class _Job:
    """One caller's texts waiting to be embedded."""

    vectors: list[list[float] | None]
    future: asyncio.Future[Embedded]
    missing: int
    model: str = ""  # the model that answered its first batch: the others must be the same


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
        # The default model as the latest answer to a request naming none said ("": none yet).
        self._default = ""
        # Document texts waiting, by the model asked for: a batch holds texts of one model.
        self._queues: dict[str, deque[_Item]] = {}
        self._dispatchers: set[asyncio.Task[None]] = set()
        # (model, question) -> vector; least recently used first out; float32 rows, a quarter
        # of the size of float lists.
        self._query_cache: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()
        self._query_cache_size = query_cache_size
        self._cache_epochs: Counter[str] = Counter()  # counts each model's cache emptyings

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
        """The models behind the service, asked once and then remembered (asked again when a
        model asked for is refused)."""
        async with self._info_lock:
            if self._info is None:
                self._info = await self._ask_info()
            return self._info

    async def _ask_info(self) -> embedding_pb2.InfoResponse:
        try:
            info: embedding_pb2.InfoResponse = await self._stub.Info(embedding_pb2.InfoRequest())
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="embedding") from error
        return info

    async def embed(self, texts: Sequence[str], input_type: InputType, model: str = "") -> Embedded:
        """One vector per text, in order, made by ``model`` (``""``: the service's default),
        and the model that made them."""
        if not texts:
            return Embedded([], model)
        if input_type == embedding_pb2.INPUT_TYPE_QUERY and self._query_cache_size:
            return await self._embed_queries(texts, model)
        if input_type != embedding_pb2.INPUT_TYPE_DOCUMENT:
            return await self._embed_unqueued(texts, input_type, model)
        batch_size = (await self.info()).max_batch_size or _FALLBACK_BATCH_SIZE
        job = _Job([None] * len(texts), asyncio.get_running_loop().create_future(), len(texts))
        queue = self._queues.setdefault(model, deque())
        queue.extend(_Item(text, job, index) for index, text in enumerate(texts))
        while len(self._dispatchers) < _MAX_IN_FLIGHT:
            task = asyncio.get_running_loop().create_task(self._dispatch(batch_size))
            self._dispatchers.add(task)
            task.add_done_callback(self._dispatchers.discard)
        return await job.future

    async def _embed_unqueued(
        self, texts: Sequence[str], input_type: InputType, model: str
    ) -> Embedded:
        """``texts`` in batches of the server's size, straight away (not coalesced)."""
        batch_size = (await self.info()).max_batch_size or _FALLBACK_BATCH_SIZE
        vectors: list[list[float]] = []
        answered = ""
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            part = await self._embed_batch(batch, input_type, model)
            if answered and part.model != answered:
                raise Unavailable(_DEFAULT_CHANGED)
            answered = part.model
            vectors += part.vectors
        return Embedded(vectors, answered)

    async def _embed_queries(self, texts: Sequence[str], model: str) -> Embedded:
        """Query vectors of ``model``, from the cache where it has them; the rest are embedded
        and kept under the model that made them.

        A model's cached vectors go when an answer shows that the service no longer embeds
        with it under that name (:meth:`_embed_batch`), so a vector never outlives its model
        past that model's first refusal or changed answer."""
        key = model or self._default or (await self.info()).model
        cache, epoch = self._query_cache, self._cache_epochs[key]
        # Taken before any await: a concurrent call may evict or clear entries meanwhile.
        known = {text: cache[key, text] for text in texts if (key, text) in cache}
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        answered = key
        if missing:
            fresh = await self._embed_unqueued(missing, embedding_pb2.INPUT_TYPE_QUERY, model)
            if known and (self._cache_epochs[key] != epoch or fresh.model != key):
                # The cached vectors are of a model the service no longer answers with, and
                # the answer must not mix the two. Their entries are gone: embed them all.
                return await self._embed_queries(texts, model)
            answered = fresh.model
            known.update(
                (text, np.asarray(vector, dtype=np.float32))
                for text, vector in zip(missing, fresh.vectors, strict=True)
            )
        for text, vector in known.items():
            cache[answered, text] = vector
            cache.move_to_end((answered, text))
        while len(cache) > self._query_cache_size:
            cache.popitem(last=False)
        return Embedded([known[text].tolist() for text in texts], answered)

    def _forget(self, model: str) -> None:
        """Drop the cached query vectors of ``model``."""
        stale = [key for key in self._query_cache if key[0] == model]
        for key in stale:
            del self._query_cache[key]
        self._cache_epochs[model] += 1

    async def _dispatch(self, batch_size: int) -> None:
        """Send queued document texts in full batches of one model until no text waits."""
        while self._queues:
            model, queue = next(iter(self._queues.items()))
            del self._queues[model]
            batch: list[_Item] = []
            while queue and len(batch) < batch_size:
                item = queue.popleft()
                if not item.job.future.done():  # skip callers that gave up or already failed
                    batch.append(item)
            if queue:  # the model's next batch waits behind the other models' first ones
                self._queues[model] = queue
            if not batch:
                continue
            try:
                embedded = await self._embed_batch(
                    [item.text for item in batch], embedding_pb2.INPUT_TYPE_DOCUMENT, model
                )
            except Exception as error:
                for job in {item.job for item in batch}:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            for item, vector in zip(batch, embedded.vectors, strict=True):
                job = item.job
                if job.future.done():
                    continue
                if job.model and job.model != embedded.model:
                    job.future.set_exception(Unavailable(_DEFAULT_CHANGED))
                    continue
                job.model = embedded.model
                job.vectors[item.index] = vector
                job.missing -= 1
                if job.missing == 0:
                    job.future.set_result(
                        Embedded([v for v in job.vectors if v is not None], job.model)
                    )

    async def _embed_batch(self, batch: list[str], input_type: InputType, model: str) -> Embedded:
        request = embedding_pb2.EmbedRequest(texts=batch, input_type=input_type, model=model)
        try:
            response = await self._stub.Embed(request)
        except grpc.aio.AioRpcError as error:
            failure = from_rpc_error(error, service="embedding")
            if model and isinstance(failure, Conflict):
                self._forget(model)
                async with self._info_lock:
                    self._info = await self._ask_info()  # what it serves now
                served = [served.name for served in self._info.models] or [self._info.model]
                if model not in served:
                    raise ModelNotServed(model, served) from error
            raise failure from error
        if len(response.vectors) != len(batch):
            raise Internal(
                f"embedding service returned {len(response.vectors)} vectors for {len(batch)} texts"
            )
        answered = response.model or model or self._default or (await self.info()).model
        if model and answered != model:
            self._forget(model)  # it does not embed with that model under that name any more
        elif not model and answered != self._default:
            if self._default:
                self._forget(self._default)  # the default changed: a restart with another
            self._default = answered
        return Embedded([list(vector.values) for vector in response.vectors], answered)

    async def close(self) -> None:
        for task in self._dispatchers:
            task.cancel()
        await self._channel.close()
