"""The one way a Bruno service opens a channel to another.

Every call carries a deadline (the service config's per-method ``timeout`` applies when the
caller sets none), ``UNAVAILABLE`` is retried with back-off by gRPC itself through the service
config, and the current trace context travels in the call metadata.

    channel = create_channel(settings.embedding_addr, timeout_seconds=10)
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from bruno_core.settings import MIB
from bruno_core.telemetry import client_interceptors

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def service_config(timeout_seconds: float, max_attempts: int = 4) -> dict[str, Any]:
    """A gRPC service config: a default deadline and retries on UNAVAILABLE for every method.

    Round-robin balancing spreads calls over every address the target resolves to (a headless
    Kubernetes Service with a ``dns:///`` target); with one address it changes nothing.
    """
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "timeout": f"{timeout_seconds:.3f}s",
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }


def create_channel(
    target: str,
    *,
    timeout_seconds: float = 30.0,
    max_message_bytes: int = 16 * MIB,
    max_attempts: int = 4,
) -> grpc.aio.Channel:
    """An insecure ``grpc.aio`` channel to ``target`` (``host:port``) set up the Bruno way."""
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", json.dumps(service_config(timeout_seconds, max_attempts))),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Fail fast and let the retry policy and the caller's deadline decide, instead of
        # waiting out a long reconnect back-off after a peer restarts.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    return grpc.aio.insecure_channel(target, options=options, interceptors=client_interceptors())


async def check_health(
    channel: grpc.aio.Channel, service: str = "", *, timeout_seconds: float = 2.0
) -> str:
    """The standard health status of ``service`` on ``channel``: ``SERVING``, ``NOT_SERVING``,
    ``UNKNOWN`` … or ``UNREACHABLE`` when the call itself fails."""
    check = channel.unary_unary(
        _HEALTH_CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    try:
        response = await check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_seconds
        )
    except grpc.aio.AioRpcError as error:
        return "NOT_FOUND" if error.code() == grpc.StatusCode.NOT_FOUND else "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
