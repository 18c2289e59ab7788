"""The one way a Bruno service opens a channel to another.

Every call carries a deadline (the service config's per-method ``timeout`` applies when the
caller sets none), ``UNAVAILABLE`` is retried with back-off by gRPC itself through the service
config (unless the server pushes back: a full queue asks not to be retried, see
:mod:`bruno_core.errors`), and the current trace context travels in the call metadata, with a
client span around the call when traces are exported.

    channel = create_channel(settings.embedding_addr, timeout_seconds=10)
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from opentelemetry.trace import Span, Status, StatusCode

from bruno_core.settings import MIB
from bruno_core.telemetry import (
    Metadata,
    outgoing_metadata,
    start_client_span,
    traces_exported,
)

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def service_config(timeout_seconds: float, max_attempts: int = 4) -> dict[str, Any]:
    """A gRPC service config: a default deadline and retries on UNAVAILABLE for every method.

    Round-robin balancing spreads calls over every address the target resolves to (a headless
    Kubernetes Service with a ``dns:///`` target); with one address it changes nothing.
    ``max_attempts=1`` means no retries: the config then has no retry policy at all, since gRPC
    rejects a policy of fewer than two attempts (and with it the whole channel).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    method: dict[str, Any] = {"name": [{}], "timeout": f"{timeout_seconds:.3f}s"}
    if max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.05s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method]}


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
    return TracedChannel(grpc.aio.insecure_channel(target, options=options))


class TracedChannel(grpc.aio.Channel):
    """A channel whose unary-request calls carry the current trace context in their metadata
    (and, when traces are exported, run inside a client span).

    A wrapper rather than a client interceptor: any interceptor sends every call of a
    ``grpc.aio`` channel down its slower intercepted path, which was a fifth of the edge's CPU
    per search (docs/benchmarks.md). Bruno's contracts have no client-streaming methods; those
    pass through untouched.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Traced(method, self._channel.unary_unary(method, *args, **kwargs))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Traced(method, self._channel.unary_stream(method, *args, **kwargs))

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(method, *args, **kwargs)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> TracedChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self._channel.close(None)


class _Traced:
    """A method of a :class:`TracedChannel`: the call, with the trace context added."""

    __slots__ = ("_call", "_method")

    def __init__(self, method: str, call: Any) -> None:
        self._method = method
        self._call = call

    def __call__(self, request: Any, *, metadata: Metadata | None = None, **options: Any) -> Any:
        if not traces_exported():
            return self._call(request, metadata=outgoing_metadata(metadata), **options)
        span = start_client_span(self._method)
        call = self._call(request, metadata=outgoing_metadata(metadata, span), **options)
        call.add_done_callback(lambda done: _end_span_with(span, done))
        return call


def _end_span_with(span: Span, call: grpc.aio.Call) -> None:
    """End ``span`` with the status ``call`` ended with (read on the loop: it is awaited)."""

    async def end() -> None:
        try:
            code = await call.code()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
        span.set_attribute("rpc.grpc.status_code", code.name)
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()

    _pending_ends.add(task := asyncio.ensure_future(end()))
    task.add_done_callback(_pending_ends.discard)


# Tasks ending client spans, held until they have run (the loop keeps only weak references).
_pending_ends: set[asyncio.Future[None]] = set()


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
