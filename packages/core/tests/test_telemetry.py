from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import GrpcServer, configure_logging, configure_tracing, create_channel
from bruno_core.logs import TraceContextFilter
from bruno_core.telemetry import WhenExported

if TYPE_CHECKING:
    from conftest import Context, ScriptedEmbedding


async def test_trace_context_crosses_the_grpc_hop(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("test", processor=SimpleSpanProcessor(exporter))
    _, servicer, addr = served
    seen: list[str] = []

    async def record(_call: int, _context: Context) -> None:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    servicer.behaviour = record
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("edge-request") as root:
        async with create_channel(addr) as channel:
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
        root_trace = format(root.get_span_context().trace_id, "032x")
    assert seen == [root_trace]
    assert "traceparent" in servicer.metadata[0]
    server_spans = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert any(format(s.context.trace_id, "032x") == root_trace for s in server_spans)


def test_json_logs_carry_the_service_and_the_active_trace_id() -> None:
    configure_logging("embedding", level="INFO", fmt="json")
    root = logging.getLogger()
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("bruno.test").info("embedded", extra={"texts": 3})
        expected = format(span.get_span_context().trace_id, "032x")
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["service"] == "embedding"
    assert record["message"] == "embedded"
    assert record["level"] == "INFO"
    assert record["texts"] == 3
    assert record["trace_id"] == expected


def test_text_log_lines_name_their_service() -> None:
    configure_logging("retrieval", level="INFO", fmt="text")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("bruno.test").warning("collection reindexed")
    line = stream.getvalue().strip().splitlines()[-1]
    # After the timestamp's date and time: the service, the level, the logger, the message.
    assert line.split()[2:] == ["retrieval", "WARNING", "bruno.test:", "collection", "reindexed"]


def test_records_outside_a_span_have_empty_trace_ids() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    TraceContextFilter().filter(record)
    assert record.__dict__["trace_id"] == ""
    assert record.__dict__["span_id"] == ""


def test_spans_nobody_exports_are_not_recorded_but_keep_their_ids_and_their_parent() -> None:
    provider = TracerProvider(sampler=WhenExported())
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("request") as root,
        tracer.start_as_current_span("hop") as child,
    ):
        assert not root.is_recording()
        assert not child.is_recording()
    assert root.get_span_context().is_valid
    assert child.get_span_context().trace_id == root.get_span_context().trace_id


def test_spans_are_recorded_and_exported_once_something_exports_them() -> None:
    sampler = WhenExported()
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sampler.exporting = True
    with provider.get_tracer("test").start_as_current_span("request") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]
