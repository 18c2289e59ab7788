"""A minimal OTLP/gRPC trace collector on a loopback port, to see what the services export.

It is the receiving end of the real OpenTelemetry OTLP exporter the services use when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; it keeps every span it is sent.

    async with OtlpCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
        ...
        collector.spans  # [ReceivedSpan(service="bruno-edge", trace_id="…", name="…", kind=…)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start: int  # ns since the epoch, the exporting process's clock
    end: int


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: list[ReceivedSpan]) -> None:
        self._sink = sink

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                self._sink.extend(
                    ReceivedSpan(
                        service=service,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        start=span.start_time_unix_nano,
                        end=span.end_time_unix_nano,
                    )
                    for span in scope_spans.spans
                )
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpCollector:
    """Collects spans exported over OTLP/gRPC to :attr:`endpoint` until stopped."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def services_in_trace(self, trace_id: str) -> set[str]:
        return {span.service for span in self.spans if span.trace_id == trace_id}

    async def __aenter__(self) -> OtlpCollector:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self.spans), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            await self._server.stop(None)
