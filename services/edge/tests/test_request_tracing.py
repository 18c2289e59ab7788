"""Every request the edge answers is a server span continuing the caller's trace (recorded when
traces are exported), and the gRPC calls it makes belong to that trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bruno_core import configure_tracing

if TYPE_CHECKING:
    from conftest import Edge

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("edge", processor=SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


def edge_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.kind is trace.SpanKind.SERVER
        and span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "bruno_edge"
    ]


async def test_a_request_is_a_span_of_the_callers_trace_named_by_its_route(
    edge: Edge, exported: InMemorySpanExporter
) -> None:
    await edge.ingest("t", id="some/doc")
    exported.clear()

    response = await edge.client.delete(
        "/api/v1/documents/some/doc", headers={"traceparent": TRACEPARENT}
    )

    assert response.status_code == 204
    [span] = edge_spans(exported)
    assert span.name == "DELETE /api/v1/documents/{document_id:path}"
    assert format(span.context.trace_id, "032x") == CALLER_TRACE
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 204
    assert span.attributes["http.route"] == "/api/v1/documents/{document_id:path}"
    assert span.attributes["url.path"] == "/api/v1/documents/some/doc"
    assert span.status.status_code is trace.StatusCode.UNSET


async def test_the_grpc_calls_of_a_request_belong_to_its_trace(
    edge: Edge, exported: InMemorySpanExporter
) -> None:
    response = await edge.client.get("/api/v1/collections", headers={"traceparent": TRACEPARENT})

    assert response.status_code == 200
    calls = [s for s in exported.get_finished_spans() if s.name.endswith("/ListCollections")]
    assert calls, "the fake retrieval answered no traced call"
    assert {format(call.context.trace_id, "032x") for call in calls} == {CALLER_TRACE}


async def test_a_server_error_marks_its_span_as_an_error(
    edge: Edge, exported: InMemorySpanExporter
) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.INTERNAL

    response = await edge.client.get("/api/v1/collections")

    assert response.status_code >= 500
    [span] = edge_spans(exported)
    assert span.status.status_code is trace.StatusCode.ERROR


async def test_probes_and_scrapes_make_no_span(edge: Edge, exported: InMemorySpanExporter) -> None:
    for path in ("/health", "/ready", "/metrics"):
        await edge.client.get(path, headers={"traceparent": TRACEPARENT})

    assert edge_spans(exported) == []


async def test_an_exception_escaping_the_app_is_recorded_on_its_span(
    edge: Edge, exported: InMemorySpanExporter
) -> None:
    async def broken() -> None:
        raise RuntimeError("the disk is gone")

    edge.app.add_api_route("/broken", broken)

    response = await edge.client.get("/broken")

    assert response.status_code == 500
    [span] = edge_spans(exported)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "RuntimeError: the disk is gone"
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "the disk is gone"
