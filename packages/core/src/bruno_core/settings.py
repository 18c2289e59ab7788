"""The settings base every service's ``config.py`` extends: environment variables ``BRUNO_*``."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# One place for the loopback ports the services use when nothing else is configured.
DEFAULT_EMBEDDING_ADDR = "127.0.0.1:50051"
DEFAULT_RETRIEVAL_ADDR = "127.0.0.1:50052"
DEFAULT_GENERATION_ADDR = "127.0.0.1:50053"

MIB = 1024 * 1024


class BrunoSettings(BaseSettings):
    """Settings shared by every service."""

    model_config = SettingsConfigDict(env_prefix="BRUNO_", extra="ignore", frozen=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"


class GrpcServerSettings(BrunoSettings):
    """Settings of a service that serves gRPC (each service adds its own ``*_listen_addr``)."""

    grpc_max_message_bytes: int = Field(default=16 * MIB, ge=1024)
    grpc_grace_seconds: float = Field(default=10.0, ge=0, description="drain time on SIGTERM")
    grpc_max_concurrent_rpcs: int = Field(default=256, ge=1)


class ContractLimitSettings(BrunoSettings):
    """The public contract's limits an operator may change, read alike by the edge, which
    checks requests against them, and retrieval, which holds every call to them (the fixed
    ones are in :mod:`bruno_core.contract`)."""

    max_document_bytes: int = Field(default=2 * MIB, ge=1)
    default_top_k: int = Field(default=5, ge=1)
    max_top_k: int = Field(default=50, ge=1, le=1000)

    @model_validator(mode="after")
    def _check_top_k(self) -> Self:
        if self.default_top_k > self.max_top_k:
            raise ValueError("BRUNO_DEFAULT_TOP_K must not exceed BRUNO_MAX_TOP_K")
        return self


def environment_variables(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads: ``BRUNO_<FIELD>``, or a field's alias
    (such as ``OLLAMA_HOST``). The README's table and the k8s ConfigMap are checked against it."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names
