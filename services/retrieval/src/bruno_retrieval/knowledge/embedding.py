"""What the knowledge base needs from the embedding service, and what it checks in the answers.

A chunk is embedded with the headings above it (:func:`embedding_input`), and every answer is
checked before anything is written (:func:`check_vectors`): a broken embedder must fail an
ingest, never store vectors a search cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Internal


class Embedder(Protocol):
    """What the store needs from the embedding service (``EmbeddingClient`` is one)."""

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType
    ) -> list[list[float]]: ...

    async def model(self) -> str:
        """The name of the model that made the vectors of the latest ``embed``."""
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
