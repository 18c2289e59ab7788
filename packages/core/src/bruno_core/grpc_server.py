"""The one way a Bruno gRPC service is served.

``grpc.aio`` with deliberate message-size and concurrency limits, the standard health service
(overall and per-service status), reflection, trace propagation, Prometheus metrics and a
graceful stop: on SIGTERM or SIGINT health flips to NOT_SERVING, new calls are refused and
in-flight calls get ``grpc_grace_seconds`` to finish.

    server = GrpcServer("embedding", settings, listen_addr=settings.embedding_listen_addr)
    embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(servicer, server.grpc)
    await server.run(services=[embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]])
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from bruno_core.settings import GrpcServerSettings
from bruno_core.telemetry import server_interceptors

log = logging.getLogger(__name__)

GRPC_HANDLED = Counter(
    "bruno_grpc_server_handled_total",
    "gRPC calls completed by the server, by method and status code.",
    ["service", "method", "code"],
)
GRPC_DURATION = Histogram(
    "bruno_grpc_server_handling_seconds",
    "Time the server took to answer a gRPC call (streams: until the last message).",
    ["service", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class _MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary and server-streaming call (a stream until its last
    message; health's ``Watch``, which no probe uses, until its watcher leaves). Bruno's
    contracts have no client-streaming methods; those pass uncounted, as do handlers that are
    not coroutines or async generators."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        service, _, name = method.lstrip("/").rpartition("/")
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            unary = handler.unary_unary

            async def timed(request: Any, context: Any) -> Any:
                with _observed(service, name, context):
                    return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                timed,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        stream = handler.unary_stream
        if stream is not None and inspect.isasyncgenfunction(stream):

            async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
                with _observed(service, name, context):
                    # Closed here, not by the garbage collector, when the client leaves.
                    async with contextlib.aclosing(stream(request, context)) as answer:
                        async for message in answer:
                            yield message

            return grpc.unary_stream_rpc_method_handler(
                streamed,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if stream is not None and inspect.iscoroutinefunction(stream):

            async def written(request: Any, context: Any) -> None:
                with _observed(service, name, context):
                    await stream(request, context)  # writes with context.write

            return grpc.unary_stream_rpc_method_handler(
                written,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


@contextlib.contextmanager
def _observed(service: str, method: str, context: Any) -> Iterator[None]:
    """Time the call in the block and count it under its status code."""
    start = time.perf_counter()
    code = "OK"
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        # gRPC cancels the handler when the client leaves or the deadline passes.
        remaining = context.time_remaining()
        code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        raise
    except BaseException:
        state = context.code()
        code = state.name if isinstance(state, grpc.StatusCode) else "UNKNOWN"
        raise
    finally:
        GRPC_DURATION.labels(service, method).observe(time.perf_counter() - start)
        GRPC_HANDLED.labels(service, method, code).inc()


def server_options(settings: GrpcServerSettings) -> list[tuple[str, Any]]:
    """Channel arguments every Bruno server uses, set in one place."""
    return [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
    ]


class GrpcServer:
    """A ``grpc.aio`` server with health, reflection, telemetry and graceful shutdown."""

    def __init__(
        self,
        name: str,
        settings: GrpcServerSettings,
        *,
        listen_addr: str,
        metrics_port: int | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.listen_addr = listen_addr
        self.metrics_port = metrics_port
        self.grpc = grpc.aio.server(
            interceptors=[*server_interceptors(), _MetricsInterceptor()],
            options=server_options(settings),
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self.port = 0
        self._stopping = asyncio.Event()
        self._service_names: list[str] = []

    async def start(self, services: Iterable[ServiceDescriptor]) -> int:
        """Bind, start serving and mark every service SERVING. Returns the bound port."""
        self._service_names = [s.full_name for s in services]
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.grpc
        )
        self.port = self.grpc.add_insecure_port(self.listen_addr)
        if self.port == 0:
            raise OSError(f"{self.name}: cannot bind {self.listen_addr}")
        if self.metrics_port is not None:
            start_http_server(self.metrics_port)
        await self.grpc.start()
        for service_name in ("", *self._service_names):
            await self.health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={"service_names": self._service_names, "port": self.port},
        )
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Flip the health of every service this server hosts (e.g. when a dependency is lost)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service_name in ("", *self._service_names):
            await self.health.set(service_name, status)

    async def stop(self) -> None:
        """Refuse new calls, report NOT_SERVING and let in-flight calls finish within the grace."""
        await self.health.enter_graceful_shutdown()
        await self.grpc.stop(self.settings.grpc_grace_seconds)
        log.info("stopped")

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(
        self,
        services: Iterable[ServiceDescriptor],
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully and run ``on_stop``."""
        await self.start(services)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            try:
                await self.stop()
            finally:  # resources are released even when the drain fails
                if on_stop is not None:
                    await on_stop()
