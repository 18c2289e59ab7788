"""The package's public face: what other services and tests may import from ``bruno_retrieval``."""

from __future__ import annotations

import bruno_retrieval


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(bruno_retrieval.__all__) == [
        "CONVERSATION_SERVICE",
        "Chunk",
        "ConversationServicer",
        "ConversationStore",
        "Embedded",
        "Embedder",
        "EmbeddingClient",
        "KnowledgeStore",
        "RetrievalServicer",
        "RetrievalSettings",
        "SERVICE",
        "chunk_text",
        "create_server",
        "estimate_tokens",
    ]
    for name in bruno_retrieval.__all__:
        assert getattr(bruno_retrieval, name) is not None
