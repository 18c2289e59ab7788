"""Shared code of the Agent Bruno services: settings, gRPC set-up, errors, telemetry, logs."""

from bruno_core.errors import (
    BrunoError,
    Conflict,
    DeadlineExceeded,
    Internal,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthenticated,
    Unavailable,
    abort_with,
    from_rpc_error,
)
from bruno_core.grpc_client import check_health, create_channel
from bruno_core.grpc_server import GrpcServer
from bruno_core.logs import configure_logging
from bruno_core.settings import BrunoSettings, GrpcServerSettings
from bruno_core.telemetry import configure_tracing

__all__ = [
    "BrunoError",
    "BrunoSettings",
    "Conflict",
    "DeadlineExceeded",
    "GrpcServer",
    "GrpcServerSettings",
    "Internal",
    "InvalidInput",
    "LimitExceeded",
    "NotFound",
    "Unauthenticated",
    "Unavailable",
    "abort_with",
    "check_health",
    "configure_logging",
    "configure_tracing",
    "create_channel",
    "from_rpc_error",
]
