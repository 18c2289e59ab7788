"""The package's public face: what other services and tests may import from ``bruno_generation``."""

from __future__ import annotations

import bruno_generation


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(bruno_generation.__all__) == [
        "AnswerStream",
        "Answerer",
        "BackendInfo",
        "ExtractiveGenerator",
        "Finished",
        "GenerationServicer",
        "GenerationSettings",
        "ModelNotFound",
        "OllamaGenerator",
        "OllamaUnreachable",
        "SERVICE",
        "build_ollama",
        "create_server",
    ]
    for name in bruno_generation.__all__:
        assert getattr(bruno_generation, name) is not None
