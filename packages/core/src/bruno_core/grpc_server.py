"""The one way a Bruno gRPC service is served.

``grpc.aio`` with deliberate message-size and concurrency limits, the standard health service
(overall and per-service status), reflection, trace propagation, Prometheus metrics, one error
policy and a graceful stop: on SIGTERM or SIGINT health flips to NOT_SERVING, new calls are
refused, in-flight calls get ``grpc_grace_seconds`` to finish, then what the server was given
to close is closed.

    server = GrpcServer("embedding", settings, listen_addr=settings.embedding_listen_addr)
    server.add_servicer(SERVICE, add_EmbeddingServiceServicer_to_server, servicer)
    server.on_stop(embedder.aclose)
    await server.run()

Servicers raise errors instead of catching them: a :class:`~bruno_core.errors.BrunoError`
becomes the status it maps to, anything else one logged ``INTERNAL`` whose detail names no
internals (the call policy below), and a status a servicer sets itself with
``context.abort`` passes unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import Counter, Histogram, start_http_server

from bruno_core.errors import BrunoError, Internal, abort_with
from bruno_core.settings import GrpcServerSettings
from bruno_core.telemetry import start_server_span

log = logging.getLogger(__name__)

_Servicer = TypeVar("_Servicer")

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


class _CallPolicy(grpc.aio.ServerInterceptor):
    """Everything a server does around each call, in one pass: continue the caller's trace
    (:func:`~bruno_core.telemetry.start_server_span`), time and count the call under the status
    it ended with, and turn a raised error into its status.

    The error policy: a :class:`BrunoError` becomes the status it maps to (:func:`abort_with`),
    anything else an ``INTERNAL`` whose detail names no internals, its traceback logged. A
    status the handler set itself (``context.abort``) passes unchanged, as does cancellation.

    Unary, server-streaming and client-streaming calls are wrapped (a stream until its last
    message; health's ``Watch``, which no probe uses, until its watcher leaves); bidirectional
    streams (Bruno's contracts have none) pass untouched, as do handlers that are not
    coroutines or async generators. Each method's wrapped handler is built once, on its first
    call: the server asks the interceptor for a handler on every call.
    """

    def __init__(self, server_name: str) -> None:
        self._unexpected = f"the {server_name} service failed; the cause is in its logs"
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any] | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = await continuation(handler_call_details)
        wrapped = self._wrap(method, handler) if handler is not None else None
        if wrapped is not None:  # an unknown method is not remembered: names are the caller's
            self._handlers[method] = wrapped
        return wrapped

    def _wrap(
        self, full_method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        service, _, name = full_method.lstrip("/").rpartition("/")
        duration = GRPC_DURATION.labels(service, name)
        handled: dict[str, Counter] = {}

        def begin(context: Any) -> _Call:
            span = start_server_span(full_method, context.invocation_metadata())
            return _Call(span, context_api.attach(trace.set_span_in_context(span)))

        def end(call: _Call, code: str) -> None:
            duration.observe(time.perf_counter() - call.started)
            if code not in handled:
                handled[code] = GRPC_HANDLED.labels(service, name, code)
            handled[code].inc()
            if call.span.is_recording():
                call.span.set_attribute("rpc.grpc.status_code", code)
                if code != "OK":
                    call.span.set_status(Status(StatusCode.ERROR, code))
            call.span.end()
            context_api.detach(call.token)

        to_status = self._to_status

        def answering(
            work: Callable[[Any, Any], Awaitable[Any]],
        ) -> Callable[[Any, Any], Awaitable[Any]]:
            async def answered(request: Any, context: Any) -> Any:
                call = begin(context)
                code = "OK"
                try:
                    return await work(request, context)
                except Exception as error:
                    try:
                        await to_status(error, context, service, name)  # raises the status
                    finally:
                        code = _status_name(context)
                except BaseException:  # cancelled: the client left or the deadline passed
                    code = _cancelled(context)
                    raise
                finally:
                    end(call, code)

            return answered

        unary = handler.unary_unary
        if unary is not None and inspect.iscoroutinefunction(unary):
            return grpc.unary_unary_rpc_method_handler(
                answering(unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        gather = handler.stream_unary  # the client streams its requests, one answer
        if gather is not None and inspect.iscoroutinefunction(gather):
            return grpc.stream_unary_rpc_method_handler(
                answering(gather),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        stream = handler.unary_stream
        if stream is not None and inspect.isasyncgenfunction(stream):

            async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
                call = begin(context)
                code = "OK"
                try:
                    # The answer is closed here, not by the garbage collector, when the
                    # client leaves.
                    async with contextlib.aclosing(stream(request, context)) as answer:
                        async for message in answer:
                            yield message
                except Exception as error:
                    try:
                        await to_status(error, context, service, name)  # raises the status
                    finally:
                        code = _status_name(context)
                except BaseException:
                    code = _cancelled(context)
                    raise
                finally:
                    end(call, code)

            return grpc.unary_stream_rpc_method_handler(
                streamed,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if stream is not None and inspect.iscoroutinefunction(stream):  # writes with context.write
            return grpc.unary_stream_rpc_method_handler(
                answering(stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _to_status(
        self, error: Exception, context: Any, service: str, method: str
    ) -> NoReturn:
        """End the call with the status ``error`` stands for: raises ``AbortError``."""
        if isinstance(error, grpc.aio.AbortError):
            raise error
        if isinstance(error, BrunoError):
            if error.http_status >= 500:
                log.warning("call failed", extra={"method": method, "error": error.detail})
            await abort_with(context, error)
        log.exception("unexpected error", extra={"method": f"{service}/{method}"})
        await abort_with(context, Internal(self._unexpected))


@dataclass(slots=True)
class _Call:
    """A call in progress: its span, the context token that made it current, its start."""

    span: Span
    token: contextvars.Token[Context]
    started: float = field(default_factory=time.perf_counter)


def _status_name(context: Any) -> str:
    state = context.code()
    return state.name if isinstance(state, grpc.StatusCode) else "UNKNOWN"


def _cancelled(context: Any) -> str:
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"


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
    """A ``grpc.aio`` server with health, reflection, telemetry, the error policy and
    graceful shutdown; it knows the services it hosts and what to close when it stops."""

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
            interceptors=[_CallPolicy(name)],
            options=server_options(settings),
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self.port = 0
        self._stopping = asyncio.Event()
        self._service_names: list[str] = []
        self._closers = contextlib.AsyncExitStack()

    def add_servicer(
        self,
        service: ServiceDescriptor,
        register: Callable[[_Servicer, grpc.aio.Server], None],
        servicer: _Servicer,
    ) -> None:
        """Host ``servicer`` for ``service`` (``register`` is the generated
        ``add_<Service>Servicer_to_server``); its health follows the server's."""
        register(servicer, self.grpc)
        self._service_names.append(service.full_name)

    def on_stop(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close`` once the server has stopped and drained (the last added first)."""
        self._closers.push_async_callback(close)

    async def start(self) -> int:
        """Bind, start serving and mark every service SERVING. Returns the bound port."""
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
        """Refuse new calls, report NOT_SERVING, let in-flight calls finish within the grace,
        then close what :meth:`on_stop` was given (even when the drain fails)."""
        try:
            await self.health.enter_graceful_shutdown()
            await self.grpc.stop(self.settings.grpc_grace_seconds)
            log.info("stopped")
        finally:
            await self._closers.aclose()  # every one runs, even after one fails

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            await self.stop()
