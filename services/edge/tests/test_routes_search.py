from __future__ import annotations

from typing import TYPE_CHECKING

from bruno.retrieval.v1 import retrieval_pb2

if TYPE_CHECKING:
    from conftest import Edge


async def test_search_returns_results_and_the_mode_used(edge: Edge) -> None:
    await edge.ingest("backup with velero", id="velero", title="Velero", source="v.md")

    response = await edge.client.post(
        "/api/v1/search", json={"query": "velero backup", "mode": "vector", "top_k": 3}
    )

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "document_id": "velero",
                "chunk_id": "velero#0",
                "title": "Velero",
                "source": "v.md",
                "text": "backup with velero",
                "score": 1.0,
            }
        ],
        "mode": "vector",
    }
    search = edge.retrieval.searches[-1]
    assert (search.mode, search.top_k) == (retrieval_pb2.SEARCH_MODE_VECTOR, 3)


async def test_search_without_mode_lets_retrieval_choose(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "anything"})

    assert edge.retrieval.searches[-1].mode == retrieval_pb2.SEARCH_MODE_UNSPECIFIED
    assert response.json() == {"results": [], "mode": "hybrid"}


async def test_search_rejects_an_unknown_mode(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "q", "mode": "fuzzy"})

    assert response.status_code == 422
    assert edge.retrieval.searches == []
