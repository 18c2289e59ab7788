"""Embeddings from an Ollama server (``POST /api/embed``) through the official ``ollama`` client.

The vector dimension is learnt from the first answer (a probe at start-up, or the first
request when Ollama was down then). Ollama being unreachable is ``Unavailable``, so callers
retry or report it; an unknown model is ``Unavailable`` too, with the ``ollama pull`` to run.

    embedder = OllamaEmbedder(host="http://127.0.0.1:11434", model="nomic-embed-text")
    await embedder.start()
    vectors = await embedder.embed(["how do I restart flux?"], InputType.QUERY)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import numpy as np
from ollama import AsyncClient, ResponseError

from bruno_core.errors import DeadlineExceeded, Internal, InvalidInput, Unavailable
from bruno_embedding.embedders import EmbedderInfo, InputType, normalise_rows

log = logging.getLogger(__name__)

# Models trained with task prefixes embed worse without them (see each model's card).
# Keyed by the model name without its tag: (query prefix, document prefix).
TASK_PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed-text": ("search_query: ", "search_document: "),
    "mxbai-embed-large": ("Represent this sentence for searching relevant passages: ", ""),
}


class OllamaEmbedder:
    """An Ollama embedding model, called in batches of ``batch_size`` texts."""

    def __init__(
        self,
        *,
        host: str,
        model: str,
        batch_size: int = 32,
        timeout_seconds: float = 120.0,
        connect_timeout_seconds: float = 2.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.host = host
        self.model = model
        self.batch_size = batch_size
        self._client = AsyncClient(
            host=host, timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)
        )
        self._query_prefix, self._document_prefix = TASK_PREFIXES.get(
            model.split(":", 1)[0], ("", "")
        )
        self._dimension: int | None = None

    async def start(self) -> None:
        # Serve even when Ollama is not up yet: requests answer UNAVAILABLE until it is,
        # which callers retry, instead of the pod crash-looping on start-up ordering.
        try:
            await self._discover_dimension()
        except Unavailable as error:
            log.warning("ollama not reachable at start-up", extra={"detail": error.detail})
        else:
            log.info("model ready", extra={"model": self.model, "dimension": self._dimension})

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        prefix = self._query_prefix if input_type is InputType.QUERY else self._document_prefix
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [prefix + text for text in texts[start : start + self.batch_size]]
            vectors.extend(await self._embed_batch(batch))
        return vectors

    async def info(self) -> EmbedderInfo:
        dimension = self._dimension or await self._discover_dimension()
        # Ollama's /api/embed truncates to the model's context; it does not say how long that is.
        return EmbedderInfo(
            model=self.model, dimension=dimension, backend="ollama", max_input_tokens=0
        )

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]  # ollama leaves it untyped

    async def _discover_dimension(self) -> int:
        (vector,) = await self._embed_batch(["dimension probe"])
        return len(vector)

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        try:
            try:
                response = await self._client.embed(model=self.model, input=batch)
            except (ConnectionError, httpx.TransportError):
                # Where Ollama lives is for the log: the error's text travels to API clients.
                log.warning("ollama call failed", extra={"host": self.host}, exc_info=True)
                raise
        except ConnectionError as error:
            raise Unavailable("Ollama is not reachable") from error
        except httpx.ConnectTimeout as error:
            raise Unavailable("Ollama did not accept a connection") from error
        except httpx.TimeoutException as error:
            raise DeadlineExceeded("Ollama did not answer in time") from error
        except httpx.TransportError as error:
            raise Unavailable(f"Ollama failed ({type(error).__name__})") from error
        except ResponseError as error:
            raise self._response_error(error) from error
        return self._checked(response.embeddings, expected=len(batch))

    def _response_error(self, error: ResponseError) -> Unavailable | InvalidInput:
        if error.status_code == 404:
            return Unavailable(
                f"Ollama has no model {self.model!r}: run `ollama pull {self.model}` "
                f"({error.error})"
            )
        if 400 <= error.status_code < 500:
            return InvalidInput(f"Ollama refused the texts: {error.error}")
        return Unavailable(f"Ollama failed ({error.status_code}): {error.error}")

    def _checked(
        self, embeddings: Sequence[Sequence[float]], *, expected: int
    ) -> list[list[float]]:
        lengths = {len(vector) for vector in embeddings}
        if len(embeddings) != expected or len(lengths) != 1 or 0 in lengths:
            raise Internal(
                f"Ollama model {self.model!r} returned {len(embeddings)} embeddings "
                f"of lengths {sorted(lengths)} for {expected} texts"
            )
        (dimension,) = lengths
        if self._dimension is None:
            self._dimension = dimension
        elif dimension != self._dimension:
            # Stored vectors have the first dimension; mixing would corrupt every search.
            raise Internal(
                f"Ollama model {self.model!r} changed dimension from {self._dimension} to "
                f"{dimension}; restart the embedding service and re-ingest"
            )
        # /api/embed normalises today; the Embedder contract promises it whatever the model.
        rows: list[list[float]] = normalise_rows(np.asarray(embeddings, dtype=np.float32)).tolist()
        return rows
