from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import Conflict, NotFound

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
                "chunk_id": "velero:0",
                "chunk_index": 0,
                "title": "Velero",
                "source": "v.md",
                "heading_path": "Velero",
                "page": None,
                "link": None,
                "text": "backup with velero",
                "score": 1.0,
                "metadata": {},
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


async def test_a_query_with_a_control_character_is_a_422_problem(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "velero\x00"})

    assert response.status_code == 422
    assert edge.retrieval.searches == []


async def test_search_rejects_an_unknown_mode(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "q", "mode": "fuzzy"})

    assert response.status_code == 422
    assert edge.retrieval.searches == []


async def test_search_filters_reach_retrieval_and_narrow_the_results(edge: Edge) -> None:
    await edge.ingest("velero backup nightly", id="a", metadata={"team": "ops"})
    await edge.ingest("velero backup weekly", id="b", metadata={"team": "dev"})

    response = await edge.client.post(
        "/api/v1/search", json={"query": "velero backup", "filters": {"team": "ops"}}
    )

    assert response.status_code == 200
    assert [r["document_id"] for r in response.json()["results"]] == ["a"]
    assert response.json()["results"][0]["metadata"] == {"team": "ops"}
    assert dict(edge.retrieval.searches[-1].filters) == {"team": "ops"}


async def test_a_filter_may_match_a_source_as_long_as_any_stored_one(edge: Edge) -> None:
    source = "s" * 2000  # the longest source a document may have

    response = await edge.client.post(
        "/api/v1/search", json={"query": "velero", "filters": {"source": source}}
    )

    assert response.status_code == 200
    assert dict(edge.retrieval.searches[-1].filters) == {"source": source}


@pytest.mark.parametrize(
    "filters",
    [
        {f"k{n}": "v" for n in range(17)},
        {"": "v"},
        {"k" * 65: "v"},
        {"k": "v" * 2001},
        {"k": "v\x00"},
        {"k": 5},
        ["team", "ops"],
    ],
)
async def test_bad_filters_are_a_422_problem_and_never_reach_retrieval(
    edge: Edge, filters: object
) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "q", "filters": filters})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert edge.retrieval.searches == []


@pytest.mark.parametrize("top_k", [0, -1, 51, 10_000])
async def test_top_k_out_of_range_is_a_422_problem(edge: Edge, top_k: int) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "q", "top_k": top_k})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert edge.retrieval.searches == []


async def test_unknown_collection_is_a_404_problem(edge: Edge) -> None:
    edge.retrieval.fail_with = NotFound("collection 'nope' not found")

    response = await edge.client.post("/api/v1/search", json={"query": "q", "collection": "nope"})

    assert response.status_code == 404
    assert response.json()["detail"] == "collection 'nope' not found"


async def test_embedding_model_mismatch_is_a_409_problem_telling_to_reindex(edge: Edge) -> None:
    edge.retrieval.fail_with = Conflict(
        "collection 'default' was built with model-a; run `bruno reindex default`"
    )

    response = await edge.client.post("/api/v1/search", json={"query": "q"})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "bruno reindex default" in response.json()["detail"]
