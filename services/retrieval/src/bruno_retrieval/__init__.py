"""Agent Bruno's retrieval service: chunking, embedding through the embedding service, storing
and searching documents in LanceDB."""

from bruno_retrieval.chunking import Chunk, chunk_text, estimate_tokens
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import ConversationStore
from bruno_retrieval.embedding_client import EmbeddingClient
from bruno_retrieval.knowledge import Embedded, Embedder, KnowledgeStore
from bruno_retrieval.server import create_server
from bruno_retrieval.servicer import (
    CONVERSATION_SERVICE,
    SERVICE,
    ConversationServicer,
    RetrievalServicer,
)

__all__ = [
    "CONVERSATION_SERVICE",
    "SERVICE",
    "Chunk",
    "ConversationServicer",
    "ConversationStore",
    "Embedded",
    "Embedder",
    "EmbeddingClient",
    "KnowledgeStore",
    "RetrievalServicer",
    "RetrievalSettings",
    "chunk_text",
    "create_server",
    "estimate_tokens",
]
