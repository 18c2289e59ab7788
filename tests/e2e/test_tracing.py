"""One chat request is one trace, from the edge through every gRPC hop, exported over OTLP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.otlp_collector import OtlpCollector
from bruno_testing.system import BrunoSystem

ALL_SERVICES = {"bruno-edge", "bruno-retrieval", "bruno-embedding", "bruno-generation"}


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with InBackground(OtlpCollector()) as running:
        yield running


def test_a_chat_request_is_one_trace_across_all_four_services(
    tmp_path: Path, standin: OllamaStandIn, collector: OtlpCollector
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with BrunoSystem(tmp_path, ollama_host=standin.url, env=env) as system:
        edge = httpx.Client(base_url=system.edge_url, timeout=60)
        doc = {"id": "t", "text": "The cluster's DNS is served by CoreDNS on port 53."}
        assert edge.post("/api/v1/documents", json=doc).status_code == 201
        assert edge.post("/api/v1/chat", json={"message": "Who serves DNS?"}).status_code == 200

        def chat_traces() -> set[str]:
            return {
                s.trace_id
                for s in collector.spans
                if s.service == "bruno-edge" and "/api/v1/chat" in s.name
            }

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            traces = chat_traces()
            if traces and collector.services_in_trace(next(iter(traces))) >= ALL_SERVICES:
                break
            time.sleep(0.2)
    traces = chat_traces()
    assert len(traces) == 1
    assert collector.services_in_trace(traces.pop()) == ALL_SERVICES
