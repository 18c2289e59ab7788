"""OpenTelemetry set-up: one tracer provider per process, OTLP export when configured.

Trace context crosses every gRPC hop through the interceptors returned here: the server
interceptor continues the caller's trace from the call metadata, the client interceptors put
the current context into it.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def configure_tracing(service: str, *, processor: SpanProcessor | None = None) -> TracerProvider:
    """Install a tracer provider for ``service``.

    Spans go to ``processor`` when given (tests), else over OTLP/gRPC when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else nowhere (context still propagates).
    """
    global _configured  # the global tracer provider can be set once per process
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        if processor is not None:
            current.add_span_processor(processor)
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": f"bruno-{service}"}))
    if processor is not None:
        provider.add_span_processor(processor)
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Interceptors that continue the caller's trace on a gRPC server."""
    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """Interceptors that carry the current trace context on every outgoing gRPC call."""
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
