"""Agent Bruno embedding service: texts to vectors, offline (ONNX MiniLM) or through Ollama."""

from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder, EmbedderInfo, InputType
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder
from bruno_embedding.server import (
    EMBEDDING_SERVICE,
    EmbeddingServicer,
    build_embedder,
    create_server,
    serve,
)

__all__ = [
    "EMBEDDING_SERVICE",
    "Embedder",
    "EmbedderInfo",
    "EmbeddingServicer",
    "EmbeddingSettings",
    "InputType",
    "OllamaEmbedder",
    "OnnxMiniLMEmbedder",
    "build_embedder",
    "create_server",
    "serve",
]
