"""The settings base every service's ``config.py`` extends: environment variables ``BRUNO_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
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
