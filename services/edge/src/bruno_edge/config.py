"""The edge's settings: listen address, downstream addresses, API keys and request limits."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from bruno_core.settings import (
    DEFAULT_EMBEDDING_ADDR,
    DEFAULT_GENERATION_ADDR,
    DEFAULT_RETRIEVAL_ADDR,
    MIB,
    BrunoSettings,
)
from bruno_edge.extract import ExtractionLimits


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EdgeSettings(BrunoSettings):
    """Environment ``BRUNO_*`` settings of the edge (the only public service)."""

    edge_host: str = "127.0.0.1"
    edge_port: int = Field(default=8080, ge=0, le=65535)
    retrieval_addr: str = DEFAULT_RETRIEVAL_ADDR
    generation_addr: str = DEFAULT_GENERATION_ADDR
    embedding_addr: str = DEFAULT_EMBEDDING_ADDR
    # NoDecode: the variable is a plain comma-separated list, not JSON. SecretStr keeps the keys
    # out of reprs, logs and tracebacks.
    api_keys: Annotated[frozenset[SecretStr], NoDecode] = frozenset()
    max_message_chars: int = Field(default=4000, ge=1, le=1_000_000)
    max_document_bytes: int = Field(default=2 * MIB, ge=1)
    max_request_bytes: int = Field(default=4 * MIB, ge=1024)
    # Uploads carry PDFs and Word files, larger than the text they hold: their own bounds.
    max_upload_bytes: int = Field(default=64 * MIB, ge=1024)
    max_file_bytes: int = Field(default=32 * MIB, ge=1)
    max_document_pages: int = Field(default=2000, ge=1)
    extract_timeout_seconds: float = Field(default=60.0, gt=0)
    default_top_k: int = Field(default=5, ge=1)
    max_top_k: int = Field(default=50, ge=1, le=1000)
    chat_timeout_seconds: float = Field(default=120.0, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # Chat: passages scoring below this are not given to the model; with none left the answer
    # is "I don't know" without asking one. Retrieval's hybrid scores lie in [0, 1].
    min_relevance_score: float = Field(default=0.15, ge=-1.0)
    # Earlier turns of a stored conversation given to rewriting and generation.
    chat_history_turns: int = Field(default=8, ge=0, le=32)
    # A missing model makes /ready fail (503) instead of reporting "degraded".
    require_model: bool = False
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(key.strip() for key in value.split(",") if key.strip())
        return value

    @model_validator(mode="after")
    def _check_top_k(self) -> EdgeSettings:
        if self.default_top_k > self.max_top_k:
            raise ValueError("BRUNO_DEFAULT_TOP_K must not exceed BRUNO_MAX_TOP_K")
        return self

    @property
    def extraction_limits(self) -> ExtractionLimits:
        """The bounds on reading one uploaded file."""
        return ExtractionLimits(
            max_file_bytes=self.max_file_bytes,
            max_text_bytes=self.max_document_bytes,
            max_pages=self.max_document_pages,
            max_seconds=self.extract_timeout_seconds,
        )

    @property
    def open_mode(self) -> bool:
        """No API keys: every request is let in (only acceptable on a loopback address)."""
        return not self.api_keys
