"""Settings of the retrieval service (environment variables ``BRUNO_*``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from bruno_core.settings import (
    DEFAULT_EMBEDDING_ADDR,
    DEFAULT_RETRIEVAL_ADDR,
    MIB,
    GrpcServerSettings,
)


class RetrievalSettings(GrpcServerSettings):
    """Where retrieval listens, where its vectors live and how it cuts documents."""

    retrieval_listen_addr: str = DEFAULT_RETRIEVAL_ADDR
    retrieval_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    embedding_addr: str = DEFAULT_EMBEDDING_ADDR
    embedding_timeout_seconds: float = Field(default=60.0, gt=0)
    # A local directory by default; object-store URIs (s3://bucket/prefix) are passed to
    # LanceDB unchanged so several readers can share one knowledge base.
    lancedb_uri: str = "data/lancedb"
    # Starting points, not measured optima: a later issue measures chunking on Cranfield.
    # 200 estimated tokens stays under the 256 word pieces all-MiniLM-L6-v2 reads.
    chunk_size_tokens: int = Field(default=200, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    max_document_bytes: int = Field(default=2 * MIB, ge=1)
    default_top_k: int = Field(default=5, ge=1)
    max_top_k: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.chunk_overlap_tokens * 2 > self.chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens must be at most half of chunk_size_tokens")
        if self.default_top_k > self.max_top_k:
            raise ValueError("default_top_k must not exceed max_top_k")
        return self
