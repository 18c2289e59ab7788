"""Prometheus metrics of the edge: HTTP latency by route template and status, in-flight
requests, what chat costs (stage timings, tokens, fallbacks), and admission: work in flight and
waiting by kind, what was shed, and every refusal by reason.

``http_request_duration_seconds`` with a ``status`` label is what Flagger's built-in canary
checks read. Each app gets its own registry so two apps in one process (tests) do not clash.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests that match no route share one label value, so scanners cannot grow the series.
UNMATCHED_PATH = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class EdgeMetrics:
    """The edge's metric families, registered in their own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (streams: until the last byte), by route template.",
            ["method", "path", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being answered right now.",
            registry=self.registry,
        )
        self.chat_stage_seconds = Histogram(
            "bruno_chat_stage_seconds",
            "Time a chat spent in each stage: retrieval, time to first token, generation.",
            ["stage"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.chat_tokens = Counter(
            "bruno_chat_tokens",
            "Tokens the language model read (prompt) and wrote (completion) for chats.",
            ["kind"],
            registry=self.registry,
        )
        self.admission_in_flight = Gauge(
            "bruno_edge_admitted_in_flight",
            "Requests holding a slot of their kind of work (chat, search, ingest, other).",
            ["work"],
            registry=self.registry,
        )
        self.admission_waiting = Gauge(
            "bruno_edge_admission_waiting",
            "Requests waiting for a slot of their kind of work.",
            ["work"],
            registry=self.registry,
        )
        self.admission_shed = Counter(
            "bruno_edge_shed",
            "Requests refused with 503 because no slot of their kind freed in time.",
            ["work"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "bruno_edge_refusals",
            "Requests the edge refused itself, by reason (unauthenticated, auth_throttled, "
            "rate_limit, concurrent_chats, draining).",
            ["reason"],
            registry=self.registry,
        )
        self.chat_answers = Counter(
            "bruno_chat_answers",
            "Chats answered, by whether the extractive fallback answered instead of a model.",
            ["fallback"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Times every HTTP request (plain ASGI, so streamed responses are timed to their end)."""

    def __init__(self, app: ASGIApp, *, metrics: EdgeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            path = _path_label(scope, status)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            self.metrics.request_duration.labels(method, path, str(status)).observe(
                time.perf_counter() - start
            )


def _path_label(scope: Scope, status: int) -> str:
    # The router writes the matched route into the scope it shares with us; routes FastAPI
    # adds itself (/docs, /openapi.json) leave none, and only a route that exists can succeed.
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    return str(scope["path"]) if status < 300 else UNMATCHED_PATH
