"""The models one embedding service serves, by name: the default (what a request naming no model
gets) started with the service, the others loaded on the first request that names them.

A collection's vectors are only comparable with vectors of the model that made them, so the
retrieval service asks for that model by name; a name the service does not serve is refused
(:class:`~bruno_core.errors.Conflict`), never answered by another model.

    registry = EmbedderRegistry(default, others=[OnDemandEmbedder(info, load)])
    await registry.start()              # loads the default; the other waits for a request
    embedder = registry.get("")         # the default
    vectors = await registry.get(info.model).embed(texts, InputType.QUERY)  # loads it first
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from bruno_core.errors import Conflict, Unavailable
from bruno_embedding.embedders import Embedder, EmbedderInfo, InputType

log = logging.getLogger(__name__)


class OnDemandEmbedder:
    """An :class:`Embedder` built and started on the first request that needs it, then kept.

    ``load`` builds the embedder (blocking: reading, maybe first building, a model file) and
    runs on a thread, so the event loop keeps serving the loaded models meanwhile. Concurrent
    first requests wait for the same load; a caller giving up does not stop it. A failed load
    fails the requests waiting for it with ``Unavailable`` (the cause goes to the log, which
    may name paths a client must not see) and the next request tries again.
    """

    def __init__(self, info: EmbedderInfo, load: Callable[[], Embedder]) -> None:
        self.model = info.model
        self._info = info
        self._load = load
        self._embedder: Embedder | None = None
        self._loading: asyncio.Task[Embedder] | None = None

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    async def start(self) -> None:
        """Nothing: the model is loaded by the first request naming it."""

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        embedder = self._embedder or await self._loaded()
        return await embedder.embed(texts, input_type)

    async def info(self) -> EmbedderInfo:
        """What the model reports, known without loading it."""
        return self._info

    async def aclose(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        if self._embedder is not None:
            await self._embedder.aclose()

    async def _loaded(self) -> Embedder:
        if self._loading is None:
            self._loading = asyncio.create_task(self._load_and_start())
            self._loading.add_done_callback(self._forget_failure)
        try:
            # Shielded: one caller's deadline must not cancel the load the others wait for.
            return await asyncio.shield(self._loading)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            refusal = Unavailable(
                f"the embedding model {self.model!r} could not be loaded "
                f"({type(error).__name__}; the embedding service's log says why); "
                "a later request tries again"
            )
            # Asking again at once would load again at once: one refusal, not a retry storm.
            refusal.retryable = False
            raise refusal from error

    async def _load_and_start(self) -> Embedder:
        log.info("loading model", extra={"model": self.model})
        embedder = await asyncio.to_thread(self._load)
        try:
            await embedder.start()
        except BaseException:
            await embedder.aclose()
            raise
        self._embedder = embedder
        return embedder

    def _forget_failure(self, loading: asyncio.Task[Embedder]) -> None:
        """After a failed load, let the next request try again."""
        if not loading.cancelled():
            failure = loading.exception()
            if failure is None:
                return
            log.error("loading model failed", extra={"model": self.model}, exc_info=failure)
        if self._loading is loading:
            self._loading = None


class EmbedderRegistry:
    """Every model the service embeds with, by name, the default first."""

    def __init__(self, default: Embedder, *, others: Sequence[Embedder] = ()) -> None:
        self.default = default
        self._embedders = {e.model: e for e in [default, *others]}
        if len(self._embedders) != 1 + len(others):
            raise ValueError("two embedders serve the same model name")

    @property
    def names(self) -> list[str]:
        """The models served, the default first."""
        return list(self._embedders)

    def get(self, model: str) -> Embedder:
        """The embedder of ``model``; the default for ``""``. Conflict if none is served."""
        if not model:
            return self.default
        try:
            return self._embedders[model]
        except KeyError:
            served = ", ".join(self._embedders)
            raise Conflict(
                f"this embedding service does not serve the model {model!r}; it serves: {served}"
            ) from None

    async def infos(self) -> list[EmbedderInfo]:
        """What each model reports, the default first."""
        return [await embedder.info() for embedder in self._embedders.values()]

    async def start(self) -> None:
        """Start every embedder (an :class:`OnDemandEmbedder` waits for its first request)."""
        for embedder in self._embedders.values():
            await embedder.start()

    async def aclose(self) -> None:
        # The default last: its ONNX siblings run on its worker.
        for embedder in reversed(self._embedders.values()):
            await embedder.aclose()
