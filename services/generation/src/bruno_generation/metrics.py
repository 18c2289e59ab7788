"""The generation service's own Prometheus series (the gRPC calls themselves are counted by
:mod:`bruno_core.grpc_server`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TOKENS = Counter(
    "bruno_generation_tokens_total",
    "Answer tokens streamed to callers, by backend (ollama or extractive).",
    ["backend"],
)
FALLBACKS = Counter(
    "bruno_generation_fallbacks_total",
    "Answers given by the extractive fallback because Ollama could not answer, by reason.",
    ["reason"],
)
PASSAGES_TRIMMED = Counter(
    "bruno_generation_passages_trimmed_total",
    "Passages cut to BRUNO_GENERATION_MAX_PASSAGE_CHARS before the model read them.",
)
PASSAGES_DROPPED = Counter(
    "bruno_generation_passages_dropped_total",
    "Passages left out of a prompt so that it fits the model's context window.",
)
FIRST_TOKEN = Histogram(
    "bruno_generation_first_token_seconds",
    "Time from request to the first answer token, by backend.",
    ["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
