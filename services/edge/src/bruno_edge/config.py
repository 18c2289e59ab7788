"""The edge's settings: listen address, downstream addresses, API keys and request limits."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from bruno_core.contract import MAX_QUERY_CHARS
from bruno_core.settings import (
    DEFAULT_EMBEDDING_ADDR,
    DEFAULT_GENERATION_ADDR,
    DEFAULT_RETRIEVAL_ADDR,
    MIB,
    ContractLimitSettings,
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EdgeSettings(ContractLimitSettings):
    """Environment ``BRUNO_*`` settings of the edge (the only public service)."""

    edge_host: str = "127.0.0.1"
    edge_port: int = Field(default=8080, ge=0, le=65535)
    retrieval_addr: str = DEFAULT_RETRIEVAL_ADDR
    generation_addr: str = DEFAULT_GENERATION_ADDR
    embedding_addr: str = DEFAULT_EMBEDDING_ADDR
    # NoDecode: the variable is a plain comma-separated list, not JSON. SecretStr keeps the keys
    # out of reprs, logs and tracebacks.
    api_keys: Annotated[frozenset[SecretStr], NoDecode] = frozenset()
    # A chat message is searched as it is: no longer than retrieval takes a query.
    max_message_chars: int = Field(default=4000, ge=1, le=MAX_QUERY_CHARS)
    max_request_bytes: int = Field(default=4 * MIB, ge=1024)
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
    # /v1 answers of model `bruno` end with the cited sources written out, for the many
    # OpenAI clients that drop the structured `citations` field.
    openai_inline_sources: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(key.strip() for key in value.split(",") if key.strip())
        return value

    @property
    def open_mode(self) -> bool:
        """No API keys: every request is let in (only acceptable on a loopback address)."""
        return not self.api_keys
