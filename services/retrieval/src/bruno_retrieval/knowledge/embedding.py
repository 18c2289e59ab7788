"""What the knowledge base needs from the embedding service, and what it checks in the answers.

A collection asks for the model its vectors were made with; ``""`` asks for the service's
default (a new collection, a reindex). Every answer names the model that made its vectors
(:class:`Embedded`), so two collections of two models can be searched side by side. A chunk is
embedded with the headings above it (:func:`embedding_input`), and every answer is checked
before anything is written (:func:`check_vectors`): a broken embedder must fail an ingest,
never store vectors a search cannot use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Protocol

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict, Internal


@dataclasses.dataclass(frozen=True, slots=True)
class Embedded:
    """One vector per text, in order, and the model that made them."""

    vectors: list[list[float]]
    model: str


class ModelNotServed(Conflict):
    """The embedding service does not serve the model asked for (any more): it serves
    ``served``, its default first."""

    def __init__(self, model: str, served: Sequence[str]) -> None:
        self.model = model
        self.served = tuple(served)
        super().__init__(
            f"the embedding service does not serve {model!r} "
            f"(it serves {', '.join(self.served) or 'no model'})"
        )

    def for_collection(self, collection: str) -> Conflict:
        """What a search or an ingest of ``collection``, built with this model, answers."""
        return Conflict(
            f"collection {collection!r} was built with {self.model}, which the embedding "
            f"service does not serve (it serves {', '.join(self.served) or 'no model'}); "
            f"run `bruno reindex {collection}` to rebuild it with the current model"
        )


class Embedder(Protocol):
    """What the store needs from the embedding service (``EmbeddingClient`` is one)."""

    async def embed(
        self,
        texts: Sequence[str],
        input_type: embedding_pb2.InputType.ValueType,
        model: str = "",
    ) -> Embedded:
        """Vectors of ``model`` (``""``: the service's default) and the model that made them;
        :class:`ModelNotServed` if the service does not serve ``model``."""
        ...


def embedding_input(heading_path: str, text: str) -> str:
    # The heading path tells the model what a chunk deep inside a section is about.
    return f"{heading_path}\n\n{text}" if heading_path else text


def check_vectors(vectors: list[list[float]], expected: int) -> int:
    """The common dimension of ``vectors``; Internal if the embedder broke its contract."""
    if len(vectors) != expected:
        raise Internal(f"embedder returned {len(vectors)} vectors for {expected} texts")
    dimensions = {len(vector) for vector in vectors}
    if len(dimensions) != 1 or 0 in dimensions:
        raise Internal(f"embedder returned vectors of dimensions {sorted(dimensions)}")
    if not all(math.isfinite(value) for vector in vectors for value in vector):
        raise Internal("embedder returned a vector with NaN or infinite values")
    return dimensions.pop()
