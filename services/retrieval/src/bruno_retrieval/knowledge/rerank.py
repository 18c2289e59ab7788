"""An optional reranking stage: a cross-encoder served over HTTP re-scores the fused candidates.

    reranker = HttpReranker("http://tei:8080", timeout_seconds=2.0)
    hits = await reranker.rerank("how do I restore?", hits, timeout_seconds=1.5)

The wire shape is Hugging Face text-embeddings-inference's ``POST /rerank``: the request is
``{"query": ..., "texts": [...]}``, the answer a list of ``{"index": i, "score": s}``. Any error,
malformed answer or timeout returns the hits in their fused order: reranking can only make a
search better, never make it fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import httpx

from bruno_retrieval.knowledge.results import SearchHit

log = logging.getLogger(__name__)

# Texts beyond this are cut before sending: cross-encoders read ~512 tokens.
MAX_RERANK_TEXT_CHARS = 4_000


class HttpReranker:
    """Re-scores hits through a TEI-shaped ``/rerank`` endpoint, falling back on any failure."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/rerank"
        self.timeout_seconds = timeout_seconds
        self._client = httpx.AsyncClient(transport=transport)
        self.failures = 0

    async def rerank(
        self, query: str, hits: list[SearchHit], *, timeout_seconds: float | None = None
    ) -> list[SearchHit]:
        """``hits`` ordered by the cross-encoder (score = its score), or unchanged on failure."""
        if len(hits) < 2:
            return hits
        budget = min(self.timeout_seconds, timeout_seconds or self.timeout_seconds)
        if budget <= 0:
            return hits
        body = {
            "query": query,
            "texts": [_text(hit)[:MAX_RERANK_TEXT_CHARS] for hit in hits],
            "truncate": True,
        }
        try:
            async with asyncio.timeout(budget):
                response = await self._client.post(self.url, json=body, timeout=budget)
                response.raise_for_status()
                scores = _scores(response.json(), len(hits))
        except (TimeoutError, httpx.HTTPError, ValueError) as error:
            self.failures += 1
            log.warning("reranker failed; keeping the fused order", extra={"error": str(error)})
            return hits
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [dataclasses.replace(hits[i], score=scores[i]) for i in order]

    async def close(self) -> None:
        await self._client.aclose()


def _text(hit: SearchHit) -> str:
    return f"{hit.heading_path}\n\n{hit.text}" if hit.heading_path else hit.text


def _scores(answer: Any, count: int) -> dict[int, float]:
    """Index -> score from a ``/rerank`` answer; ValueError unless it scores every text once."""
    if not isinstance(answer, list):
        raise ValueError("the reranker's answer is not a list")
    scores: dict[int, float] = {}
    for item in answer:
        if not isinstance(item, dict):
            raise ValueError("a reranker result is not an object")
        index, score = item.get("index"), item.get("score")
        if not isinstance(index, int) or not isinstance(score, int | float) or index in scores:
            raise ValueError("a reranker result lacks a fresh integer index or a numeric score")
        if not 0 <= index < count:
            raise ValueError(f"the reranker returned index {index} for {count} texts")
        scores[index] = float(score)
    if len(scores) != count:
        raise ValueError(f"the reranker scored {len(scores)} of {count} texts")
    return scores
