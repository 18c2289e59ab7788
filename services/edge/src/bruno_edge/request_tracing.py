"""The span of each HTTP request the edge answers, opened by the edge's one middleware pass
(:mod:`bruno_edge.middleware`).

OpenTelemetry's ASGI instrumentation did this as a layer of its own, and paid on every request,
recorded or not: it matched the request against every route of the app again to name the span,
built a dozen attributes from the headers and the URL, and recorded four histograms no meter
provider collects. Here a request pays for the trace context and nothing else unless the span
is recorded (something exports traces, :mod:`bruno_core.telemetry`); then it gets its name
(``POST /api/v1/search``: method and route template, which the router has already written into
the scope by the time the span ends) and the HTTP attributes of OpenTelemetry's semantic
conventions. As before, the caller's ``traceparent`` is continued, probes and scrapes
(``/health``, ``/ready``, ``/metrics``) make no span, and a response with a 5xx status marks
its span as an error. An exception escaping the app is recorded on the span (an ``exception``
event, by ``trace.use_span``) and its error status says what it was (``RuntimeError: …``);
the 5xx status marking it an error afterwards keeps that description.

    span = start_request_span(scope)
    with trace.use_span(span, end_on_exit=False):
        ...
    end_request_span(span, scope, status)
"""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import Scope

#: Probes and scrapes would drown the traces that matter.
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})

_tracer = trace.get_tracer("bruno_edge")


def start_request_span(scope: Scope) -> Span | None:
    """The server span of the HTTP request ``scope``, continuing the caller's trace from its
    headers; None for the paths that are never traced."""
    if scope["path"] in UNTRACED_PATHS:
        return None
    fields = propagate.get_global_textmap().fields
    carrier = {
        name: value.decode("latin-1")
        for raw, value in scope["headers"]
        if (name := raw.decode("latin-1")) in fields
    }
    parent = propagate.extract(carrier) if carrier else None
    span = _tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
    if not span.get_span_context().is_valid:  # no provider installed: still relay the caller's
        return trace.get_current_span(parent)
    return span


def end_request_span(span: Span, scope: Scope, status: int) -> None:
    """Name and describe ``span`` (when it is recorded) by what the request turned out to be,
    then end it."""
    if span.is_recording():
        method = scope["method"]
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        client = scope.get("client")
        span.set_attributes(
            {
                "http.request.method": method,
                "url.scheme": scope.get("scheme", "http"),
                "url.path": scope["path"],
                "network.protocol.version": scope.get("http_version", "1.1"),
                "http.response.status_code": status,
                **({"client.address": client[0]} if client else {}),
            }
        )
        if status >= 500 and not _is_error(span):
            span.set_status(Status(StatusCode.ERROR))
    span.end()


def _is_error(span: Span) -> bool:
    """Whether ``span`` is already an error: ``trace.use_span`` marks it so, with the exception
    as the description, when one escapes the app, and a bare error status would replace that."""
    return isinstance(span, ReadableSpan) and span.status.status_code is StatusCode.ERROR
