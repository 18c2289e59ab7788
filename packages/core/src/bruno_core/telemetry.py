"""OpenTelemetry set-up: one tracer provider per process, OTLP export when configured.

Trace context crosses every gRPC hop through the interceptors returned here: the server
interceptor continues the caller's trace from the call metadata, the client interceptors put
the current context into it.

Spans are recorded only when something exports them. With no exporter every span is a
non-recording one: it still has its trace and span ids, so logs carry them and the context
still travels to the next hop, but no attributes, events or timings are collected for nobody.
With an exporter, the standard ``OTEL_TRACES_SAMPLER`` (and ``OTEL_TRACES_SAMPLER_ARG``)
decide, by default every trace; ``parentbased_traceidratio`` with a ratio samples a share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

_configured = False


class WhenExported(Sampler):
    """Drops every span (ids kept, nothing recorded) until :attr:`exporting` is set, then
    samples as ``OTEL_TRACES_SAMPLER`` says."""

    def __init__(self) -> None:
        self.exporting = False
        # A provider built without a sampler reads the standard variables.
        self.configured = TracerProvider().sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if not self.exporting:
            parent = trace.get_current_span(parent_context).get_span_context()
            return SamplingResult(Decision.DROP, trace_state=parent.trace_state)
        return self.configured.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        inner = self.configured.get_description() if self.exporting else "nothing exports"
        return f"WhenExported{{{inner}}}"


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
            if isinstance(current.sampler, WhenExported):
                current.sampler.exporting = True
        return current
    sampler = WhenExported()
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"bruno-{service}"}), sampler=sampler
    )
    if processor is not None:
        provider.add_span_processor(processor)
        sampler.exporting = True
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        sampler.exporting = True
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Interceptors that continue the caller's trace on a gRPC server."""
    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """Interceptors that carry the current trace context on every outgoing gRPC call."""
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
