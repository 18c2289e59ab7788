"""Settings of the generation service: ``BRUNO_*`` environment variables and ``OLLAMA_HOST``."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from bruno_core.settings import DEFAULT_GENERATION_ADDR, GrpcServerSettings


class GenerationSettings(GrpcServerSettings):
    """Where the generation service listens, which model answers and the limits on a request."""

    # Keyword construction by field name (``ollama_host=...``) as well as by alias, for tests.
    model_config = SettingsConfigDict(validate_by_name=True, validate_by_alias=True)

    generation_listen_addr: str = DEFAULT_GENERATION_ADDR
    generation_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    generation_backend: Literal["auto", "ollama", "extractive"] = Field(
        default="auto",
        description="auto: Ollama, or the extractive fallback when Ollama or the model is missing",
    )
    ollama_model: str = Field(default="llama3.2", min_length=1, max_length=200)
    # Ollama keeps its own variable, so no BRUNO_ prefix.
    ollama_host: str = Field(default="http://127.0.0.1:11434", validation_alias="OLLAMA_HOST")
    ollama_timeout_seconds: float = Field(
        default=120.0, gt=0, description="longest wait for Ollama's next token"
    )
    ollama_connect_timeout_seconds: float = Field(
        default=2.0, gt=0, description="after this, Ollama counts as unreachable"
    )
    ollama_keep_alive: str = Field(
        default="5m",
        pattern=r"^-?\d+(\.\d+)?(ms|s|m|h)?$",
        description="how long Ollama keeps the model loaded after an answer (-1: forever)",
    )
    # Answers beyond Ollama's own parallelism would wait in Ollama's first-come line, where
    # priority means nothing: hold them here instead (set it to Ollama's OLLAMA_NUM_PARALLEL).
    ollama_parallel: int = Field(
        default=1, ge=1, le=64, description="answers asked of Ollama at once"
    )
    generation_max_waiting_interactive: int = Field(
        default=32, ge=1, le=4096, description="interactive requests waiting for Ollama"
    )
    generation_max_waiting_background: int = Field(
        default=16, ge=1, le=4096, description="background requests waiting for Ollama"
    )
    ollama_temperature: float = Field(default=0.2, ge=0, le=2)
    ollama_num_ctx: int = Field(
        default=4096, ge=512, le=1_048_576, description="the context window answers fit into"
    )
    generation_answer_reserve_tokens: int = Field(
        default=512, ge=16, description="tokens of the context window kept free for the answer"
    )
    generation_max_question_chars: int = Field(default=16_000, ge=1)
    generation_max_passages: int = Field(default=64, ge=0)
    # Longer passages are trimmed to this (with a marker), not refused.
    generation_max_passage_chars: int = Field(default=16_000, ge=100)
    generation_max_history_messages: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _check_budget(self) -> Self:
        if self.generation_answer_reserve_tokens * 2 > self.ollama_num_ctx:
            raise ValueError(
                "BRUNO_GENERATION_ANSWER_RESERVE_TOKENS must be at most half of "
                "BRUNO_OLLAMA_NUM_CTX"
            )
        return self
