"""A wire-compatible stand-in of a cross-encoder reranker (Hugging Face text-embeddings-inference's
``POST /rerank``), served in-process on a loopback port.

No cross-encoder model can be installed here, so tests put retrieval's HTTP reranker in front of
this: the same path and JSON shapes (``{"query", "texts"}`` in, ``[{"index", "score"}]`` out,
best first), scoring by how many query words a text contains, with knobs for slow answers,
error statuses and malformed bodies, and a record of what it received.

    async with RerankerStandIn() as reranker:
        settings = RetrievalSettings(reranker_url=reranker.url)
        ...
        assert reranker.requests[-1]["query"] == "restore a volume"
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bruno_testing.loopback_app import LoopbackApp

_WORD = re.compile(r"\w+")


def overlap_score(query: str, text: str) -> float:
    """The share of the query's distinct words found in ``text`` (0..1)."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(text.lower()))) / len(words)


class RerankerStandIn(LoopbackApp):
    """Serves ``POST /rerank`` like TEI; ``delay`` seconds before answering, ``status`` to fail
    with (TEI's error body ``{"error", "error_type"}``), ``malformed`` to answer nonsense."""

    name = "reranker stand-in"

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.status = 200
        self.malformed = False
        self.requests: list[dict[str, Any]] = []
        super().__init__(Starlette(routes=[Route("/rerank", self._rerank, methods=["POST"])]))

    async def _rerank(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return JSONResponse(
                {"error": "model overloaded", "error_type": "Overloaded"}, status_code=self.status
            )
        if self.malformed:
            return JSONResponse({"unexpected": True})
        query, texts = body.get("query"), body.get("texts")
        if not isinstance(query, str) or not isinstance(texts, list):
            return JSONResponse(
                {"error": "query and texts are required", "error_type": "Validation"},
                status_code=422,
            )
        ranked = sorted(
            ({"index": i, "score": overlap_score(query, str(t))} for i, t in enumerate(texts)),
            key=lambda item: (-float(item["score"]), int(item["index"])),
        )
        return JSONResponse(ranked)
