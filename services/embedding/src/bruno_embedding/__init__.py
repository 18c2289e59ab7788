"""Agent Bruno embedding service: texts to vectors, offline (ONNX MiniLM) or through Ollama."""

from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder, EmbedderInfo, InputType
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder
from bruno_embedding.registry import EmbedderRegistry, OnDemandEmbedder
from bruno_embedding.server import build_embedders, create_server
from bruno_embedding.servicer import SERVICE, EmbeddingServicer

__all__ = [
    "SERVICE",
    "Embedder",
    "EmbedderInfo",
    "EmbedderRegistry",
    "EmbeddingServicer",
    "EmbeddingSettings",
    "InputType",
    "OllamaEmbedder",
    "OnDemandEmbedder",
    "OnnxMiniLMEmbedder",
    "build_embedders",
    "create_server",
]
