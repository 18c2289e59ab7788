"""Prometheus metrics of the edge: HTTP latency by route template and status, in-flight
requests, what chat costs (stage timings, tokens, fallbacks), and admission: work in flight and
waiting by kind, what was shed, and every refusal by reason.

``http_request_duration_seconds`` with a ``status`` label is what Flagger's built-in canary
checks read. Each app gets its own registry so two apps in one process (tests) do not clash.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import Scope

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


class RequestTimer:
    """Records one HTTP request: in flight while it runs, then its duration under its route
    template, method and status (streams: until the last byte).

    The labelled children are kept once made: ``labels()`` builds a key, takes a lock and
    looks the child up on every call, and a handful of routes and statuses is all there is.
    """

    def __init__(self, metrics: EdgeMetrics) -> None:
        self.duration = metrics.request_duration
        self.in_flight = metrics.in_flight
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def started(self) -> None:
        self.in_flight.inc()

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        self.in_flight.dec()
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        key = (method, _path_label(scope, status), status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.duration.labels(key[0], key[1], str(status))
        child.observe(seconds)


def _path_label(scope: Scope, status: int) -> str:
    # The router writes the matched route into the scope it shares with us; routes FastAPI
    # adds itself (/docs, /openapi.json) leave none, and only a route that exists can succeed.
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    return str(scope["path"]) if status < 300 else UNMATCHED_PATH
