"""OpenTelemetry set-up: one tracer provider per process, OTLP export when configured.

Trace context crosses every gRPC hop in the call metadata: :func:`outgoing_metadata` puts the
current context into a call's metadata (the channels of :mod:`bruno_core.grpc_client`), and
:func:`start_server_span` continues the caller's trace from it (the call policy of
:mod:`bruno_core.grpc_server`). Both are plain function calls on the hot path: OpenTelemetry's
gRPC interceptors made every call take ``grpc.aio``'s intercepted path and built a span's
attributes even when nothing recorded them (docs/benchmarks.md).

Spans are recorded only when something exports them. With no exporter every span is a
non-recording one: it still has its trace and span ids, so logs carry them and the context
still travels to the next hop, but no attributes, events or timings are collected for nobody.
With an exporter, the standard ``OTEL_TRACES_SAMPLER`` (and ``OTEL_TRACES_SAMPLER_ARG``)
decide, by default every trace; ``parentbased_traceidratio`` with a ratio samples a share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import Attributes

#: gRPC metadata as the runtime hands it over and takes it: (key, value) pairs.
Metadata = Sequence[tuple[str, str | bytes]]

_configured = False
#: The sampler of the provider :func:`configure_tracing` installed, if any.
_sampler: WhenExported | None = None
# A proxy until configure_tracing installs the provider, then that provider's tracer.
_tracer = trace.get_tracer("bruno_core")


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
    global _configured, _sampler  # the global tracer provider can be set once per process
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        if processor is not None:
            current.add_span_processor(processor)
            if isinstance(current.sampler, WhenExported):
                current.sampler.exporting = True
        return current
    sampler = _sampler = WhenExported()
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


def traces_exported() -> bool:
    """Whether spans are recorded (something exports them) in this process."""
    return _sampler is not None and _sampler.exporting


def outgoing_metadata(metadata: Metadata | None, span: Span | None = None) -> Metadata | None:
    """``metadata`` plus the trace context of ``span`` (else of the current span) to send with
    a call; unchanged when there is no trace to continue.

        call = stub.Search(request, metadata=outgoing_metadata(None))
    """
    carrier: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(carrier, context=context)
    if not carrier:
        return metadata
    return [*(metadata or ()), *carrier.items()]


def start_server_span(full_method: str, metadata: Metadata | None) -> Span:
    """The span of a call a server answers, continuing the caller's trace from ``metadata``
    (``full_method`` is ``/package.Service/Method``). Recorded only when exported; always
    carrying ids, so the server's logs name the caller's trace."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    parent = propagate.extract(carrier)
    span = _tracer.start_span(full_method, context=parent, kind=SpanKind.SERVER)
    if not span.get_span_context().is_valid:  # no provider installed: still relay the caller's
        return trace.get_current_span(parent)
    if span.is_recording():
        service, _, method = full_method.lstrip("/").rpartition("/")
        span.set_attributes({"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})
    return span


def start_client_span(full_method: str) -> Span:
    """The span of a call made to another service, a child of the current span."""
    span = _tracer.start_span(full_method, kind=SpanKind.CLIENT)
    if span.is_recording():
        service, _, method = full_method.lstrip("/").rpartition("/")
        span.set_attributes({"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})
    return span
