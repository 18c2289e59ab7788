"""The edge's settings: listen address, downstream addresses, API keys, request limits, rate
limits and admission bounds, connection timeouts and the shutdown grace."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from bruno_core.contract import MAX_QUERY_CHARS
from bruno_core.settings import (
    DEFAULT_EMBEDDING_ADDR,
    DEFAULT_GENERATION_ADDR,
    DEFAULT_RETRIEVAL_ADDR,
    MIB,
)
from bruno_extract import ExtractionSettings


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EdgeSettings(ExtractionSettings):
    """Environment ``BRUNO_*`` settings of the edge (the only public service)."""

    edge_host: str = "127.0.0.1"
    edge_port: int = Field(default=8080, ge=0, le=65535)
    retrieval_addr: str = DEFAULT_RETRIEVAL_ADDR
    # Retrieval's readers (BRUNO_RETRIEVAL_ROLE=reader), for searches and listings; unset, they
    # go to retrieval_addr too. Writes always go to retrieval_addr (the writer).
    retrieval_reader_addr: str | None = None
    generation_addr: str = DEFAULT_GENERATION_ADDR
    embedding_addr: str = DEFAULT_EMBEDDING_ADDR
    # NoDecode: the variable is a plain comma-separated list, not JSON. SecretStr keeps the keys
    # out of reprs, logs and tracebacks.
    api_keys: Annotated[frozenset[SecretStr], NoDecode] = frozenset()
    # Named keys with scopes and collections, stored as hashes (bruno_edge.keys).
    api_keys_file: Path | None = None
    # A chat message is searched as it is: no longer than retrieval takes a query.
    max_message_chars: int = Field(default=4000, ge=1, le=MAX_QUERY_CHARS)
    max_request_bytes: int = Field(default=4 * MIB, ge=1024)
    # Uploads carry PDFs and Word files, larger than the text they hold: their own bound (each
    # file's, and its reading's, are ExtractionSettings').
    max_upload_bytes: int = Field(default=64 * MIB, ge=1024)
    chat_timeout_seconds: float = Field(default=120.0, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long `POST /api/v1/documents` (and `/upload`, for all its files) waits for its ingest
    # before answering 202 with the job(s) it became (below the 30 s many proxies give a request).
    ingest_wait_seconds: float = Field(default=25.0, gt=0, le=3600)
    # Chat: passages scoring below this are not given to the model; with none left the answer
    # is "I don't know" without asking one. Retrieval's hybrid scores lie in [0, 1].
    min_relevance_score: float = Field(default=0.15, ge=-1.0)
    # Earlier turns of a stored conversation given to rewriting and generation.
    chat_history_turns: int = Field(default=8, ge=0, le=32)
    # A missing model makes /ready fail (503) instead of reporting "degraded".
    require_model: bool = False
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    # /v1 answers of model `bruno` end with the cited sources written out, for the many
    # OpenAI clients that drop the structured `citations` field.
    openai_inline_sources: bool = True

    # Per key (the keys file may override both for one key); "" turns the rate limit off.
    # In the syntax of the `limits` library: "10/second;300/minute".
    rate_limit: str = "50/second;1500/minute"
    concurrent_chats: int = Field(default=4, ge=1, le=10_000)
    # Per client address: failed authentications past this answer 429 without checking.
    auth_failure_limit: str = "10/minute"
    # What each kind of work may have in flight at once, and how long a request may wait for
    # a slot before it is refused with 503 (load shed early rather than queued).
    chat_max_in_flight: int = Field(default=16, ge=1, le=10_000)
    chat_max_wait_seconds: float = Field(default=5.0, ge=0, le=300)
    search_max_in_flight: int = Field(default=4, ge=1, le=10_000)
    search_max_wait_seconds: float = Field(default=0.1, ge=0, le=300)
    ingest_max_in_flight: int = Field(default=4, ge=1, le=10_000)
    ingest_max_wait_seconds: float = Field(default=30.0, ge=0, le=3600)
    other_max_in_flight: int = Field(default=32, ge=1, le=10_000)
    other_max_wait_seconds: float = Field(default=1.0, ge=0, le=300)
    # Slow clients: a request's headers, and then its body, must arrive within these.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    # SIGTERM: requests and streams in flight get this long; a stream still running near its
    # end is closed with an error event.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=3600)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        if value.strip():
            parse_many(value)  # ValueError names what it cannot read
        return value.strip()

    @property
    def open_mode(self) -> bool:
        """No API keys: every request is let in (only acceptable on a loopback address)."""
        return not self.api_keys and self.api_keys_file is None
