"""Settings of the embedding service: ``BRUNO_*`` environment variables and ``OLLAMA_HOST``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bruno_core.settings import DEFAULT_EMBEDDING_ADDR, GrpcServerSettings
from bruno_embedding.onnx_embedder import DEFAULT_MODEL, OnnxModel


class EmbeddingSettings(GrpcServerSettings):
    """What the embedding service listens on and which model turns texts into vectors."""

    embedding_listen_addr: str = DEFAULT_EMBEDDING_ADDR
    embedding_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    embedding_backend: Literal["onnx", "ollama"] = "onnx"
    # The default only: every built-in model is served to a request naming it, so a collection
    # keeps the model that made its vectors (docs/operations.md).
    embedding_onnx_model: OnnxModel = Field(
        default=DEFAULT_MODEL,
        description="the onnx backend's default model: new collections and reindexes use it",
    )
    # Only the dynamic-int8 model uses it; None: $XDG_CACHE_HOME/bruno/embedding. The image
    # sets a read-only directory where the file was built with the image.
    embedding_cache_dir: Path | None = Field(
        default=None, description="where the service keeps the model files it builds"
    )
    embedding_ollama_model: str = Field(default="nomic-embed-text", min_length=1)
    embedding_batch_size: int = Field(
        default=32, ge=1, le=1024, description="texts per model call (inference batch)"
    )
    # Small: a query waits for the document call already running, and on the CPU a chunk of a
    # few hundred tokens gains nothing from company in its call (docs/benchmarks.md).
    embedding_document_call_chars: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="characters of document text per model call; a longer text goes alone",
    )
    embedding_max_texts: int = Field(
        default=256, ge=1, le=4096, description="texts accepted in one Embed request"
    )
    embedding_max_waiting_queries: int = Field(
        default=64, ge=1, le=4096, description="query requests waiting for the model"
    )
    embedding_max_waiting_documents: int = Field(
        default=16, ge=1, le=4096, description="document requests waiting for the model"
    )
    # Bounds the memory of one ONNX call (texts x the longest one's tokens, up to 256 each):
    # ~80 MiB above idle at 1,024 (docs/benchmarks.md). At least 256, one whole text.
    embedding_max_batch_tokens: int = Field(
        default=1024, ge=256, le=65536, description="padded tokens per ONNX model call"
    )
    # 1 costs a query ~15% less CPU at one client and spends less per document chunk, but with
    # a core free an ingest runs up to ~25% slower than with the default's two threads on two
    # cores (0.78-1.15x on a busy machine). One ORT session has one pool, so queries and ingests
    # cannot differ (docs/benchmarks.md, "Tenth pass").
    embedding_threads: int = Field(
        default=0, ge=0, le=256, description="onnxruntime intra-op threads; 0 lets ORT decide"
    )
    # Off by default: after each call ORT's idle workers busy-wait for more work, burning the
    # cores the retrieval service's LanceDB search needs next (measured: docs/benchmarks.md).
    embedding_thread_spinning: bool = Field(
        default=False, description="let onnxruntime's idle intra-op threads busy-wait"
    )
    # Ollama keeps its own variable, so no BRUNO_ prefix (and in code: OLLAMA_HOST=...).
    ollama_host: str = Field(default="http://127.0.0.1:11434", validation_alias="OLLAMA_HOST")
