"""Agent Bruno embedding service: texts to vectors, offline (ONNX MiniLM) or through Ollama."""

from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder, EmbedderInfo, InputType
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder
from bruno_embedding.server import build_embedder, create_server
from bruno_embedding.servicer import SERVICE, EmbeddingServicer

__all__ = [
    "SERVICE",
    "Embedder",
    "EmbedderInfo",
    "EmbeddingServicer",
    "EmbeddingSettings",
    "InputType",
    "OllamaEmbedder",
    "OnnxMiniLMEmbedder",
    "build_embedder",
    "create_server",
]
