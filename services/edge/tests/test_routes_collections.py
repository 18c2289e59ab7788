from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory


async def test_collections_are_listed_with_size_and_embedding_model(edge: Edge) -> None:
    await edge.ingest("one", id="a", collection="homelab")
    await edge.ingest("two", id="b", collection="homelab")
    await edge.ingest("three", id="c")

    response = await edge.client.get("/api/v1/collections")

    assert response.status_code == 200
    assert response.json() == {
        "collections": [
            {
                "name": "default",
                "documents": 1,
                "chunks": 1,
                "embedding_model": "fake-model",
                "dimension": 8,
            },
            {
                "name": "homelab",
                "documents": 2,
                "chunks": 2,
                "embedding_model": "fake-model",
                "dimension": 8,
            },
        ]
    }


async def test_deleting_a_collection_removes_its_documents(edge: Edge) -> None:
    await edge.ingest("one", id="a", collection="homelab")
    await edge.ingest("two", id="b")

    response = await edge.client.delete("/api/v1/collections/homelab")

    assert response.status_code == 200
    assert response.json() == {"name": "homelab", "documents_deleted": 1}
    assert list(edge.retrieval.documents) == [("default", "b")]


async def test_deleting_an_unknown_collection_is_a_404_problem(edge: Edge) -> None:
    response = await edge.client.delete("/api/v1/collections/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_bad_collection_name_is_a_422_problem(edge: Edge) -> None:
    response = await edge.client.delete("/api/v1/collections/Bad%20Name")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_reindex_answers_202_with_the_job_and_where_to_follow_it(edge: Edge) -> None:
    await edge.ingest("one", id="a", collection="homelab")

    response = await edge.client.post("/api/v1/collections/homelab/reindex")

    assert response.status_code == 202
    job = response.json()
    assert (job["kind"], job["collection"], job["state"]) == ("reindex", "homelab", "succeeded")
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{job['id']}"
    followed = await edge.client.get(response.headers["location"])
    assert followed.json() == job
    assert edge.retrieval.models["homelab"] == "fake-model-2"


async def test_collections_need_an_api_key(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret")

    response = await edge.client.get("/api/v1/collections")

    assert response.status_code == 401


async def test_retrieval_down_is_a_503_problem(edge: Edge) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    response = await edge.client.get("/api/v1/collections")

    assert response.status_code == 503
    assert "10.0.0.7" not in response.text
