"""Retrieval's search hits in the edge's public shape, written once for the search route and
the MCP search tool.

    results = [search_result(hit) for hit in found.hits]
"""

from __future__ import annotations

from bruno.retrieval.v1 import retrieval_pb2
from bruno_edge.pages import page_link
from bruno_edge.schemas import SearchResult


def search_result(hit: retrieval_pb2.SearchHit) -> SearchResult:
    """One hit as ``SearchResult``: its page (``None`` for none) with a ``#page=N`` link, the
    score rounded to six places."""
    return SearchResult(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        chunk_index=hit.chunk_index,
        title=hit.title,
        source=hit.source,
        heading_path=hit.heading_path,
        page=hit.page or None,
        link=page_link(hit.source, hit.page),
        text=hit.text,
        score=round(hit.score, 6),
        metadata=dict(hit.metadata),
    )
