"""The package's public face: what other services and tests may import from ``bruno_embedding``."""

from __future__ import annotations

import bruno_embedding


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(bruno_embedding.__all__) == [
        "Embedder",
        "EmbedderInfo",
        "EmbedderRegistry",
        "EmbeddingServicer",
        "EmbeddingSettings",
        "InputType",
        "OllamaEmbedder",
        "OnDemandEmbedder",
        "OnnxMiniLMEmbedder",
        "SERVICE",
        "build_embedders",
        "create_server",
    ]
    for name in bruno_embedding.__all__:
        assert getattr(bruno_embedding, name) is not None
