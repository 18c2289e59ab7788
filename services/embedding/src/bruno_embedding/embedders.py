"""The one interface every embedding backend implements, what it reports about itself, and
which texts one request may hand it.

An :class:`Embedder` is one model. The servicer finds the one a request names in the service's
:class:`~bruno_embedding.registry.EmbedderRegistry`; which backend (the offline ONNX MiniLM
models or an Ollama model) is chosen once at start-up from the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bruno_core.errors import InvalidInput, LimitExceeded
from bruno_core.queueing import Priority


class InputType(StrEnum):
    """What a text is used for. Some models embed queries and documents differently
    (e.g. with a task prefix); models trained symmetrically ignore it."""

    DOCUMENT = "document"
    QUERY = "query"

    @property
    def priority(self) -> Priority:
        """A query is embedded while a person waits for the search or the chat that asked; a
        document is embedded for an ingest or a reindex, which nobody watches token by token."""
        return Priority.INTERACTIVE if self is InputType.QUERY else Priority.BACKGROUND


def check_texts(texts: Sequence[str], *, max_texts: int) -> list[str]:
    """``texts`` as a list if one request may embed them: 1 to ``max_texts`` texts, none blank."""
    if not texts:
        raise InvalidInput("texts must hold at least one text")
    if len(texts) > max_texts:
        raise LimitExceeded(f"{len(texts)} texts in one request; the limit is {max_texts}")
    blank = [i for i, text in enumerate(texts) if not text.strip()]
    if blank:
        raise InvalidInput(f"texts must not be empty or blank (positions {blank[:10]})")
    return list(texts)


def normalise_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scale each row to unit L2 length (an all-zero row stays zero)."""
    norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), np.float32(1e-12))
    unit: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
    return unit


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    """What a backend says about its model (``max_input_tokens`` 0 means not known)."""

    model: str
    dimension: int
    backend: str
    max_input_tokens: int


class Embedder(Protocol):
    """Turns texts into unit-length vectors, one per text, in input order.

    Implementations batch internally and raise :class:`bruno_core.errors.BrunoError`
    subclasses (``Unavailable`` when the model cannot be reached).
    """

    @property
    def model(self) -> str:
        """The model's name, as requests name it and as :meth:`info` reports it."""
        ...

    async def start(self) -> None:
        """Get ready to serve (load, warm up or probe the model) before health says SERVING."""
        ...

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        """One vector per text, in the order of ``texts``."""
        ...

    async def info(self) -> EmbedderInfo:
        """The model's name, vector dimension and input limit."""
        ...

    async def aclose(self) -> None:
        """Release threads and connections."""
        ...
