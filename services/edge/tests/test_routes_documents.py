from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core.errors import PROBLEM_CONTENT_TYPE, InvalidInput

if TYPE_CHECKING:
    from conftest import Edge


async def test_new_document_is_created_with_201(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/documents",
        json={
            "id": "runbooks/disk.md",
            "title": "Disk full",
            "source": "docs/runbooks/disk.md",
            "text": "x" * 250,
            "metadata": {"team": "ops"},
            "collection": "homelab",
        },
    )

    assert response.status_code == 201
    assert response.json() == {
        "document_id": "runbooks/disk.md",
        "chunks": 3,
        "collection": "homelab",
        "status": "created",
    }
    stored = edge.retrieval.documents[("homelab", "runbooks/disk.md")]
    assert (stored.title, stored.metadata) == ("Disk full", {"team": "ops"})


async def test_reingesting_same_text_is_200_unchanged(edge: Edge) -> None:
    await edge.ingest("same text", id="doc")

    response = await edge.client.post("/api/v1/documents", json={"id": "doc", "text": "same text"})

    assert response.status_code == 200
    assert response.json()["status"] == "unchanged"


async def test_changed_text_replaces_the_document_with_201(edge: Edge) -> None:
    await edge.ingest("old text", id="doc")

    response = await edge.client.post("/api/v1/documents", json={"id": "doc", "text": "new text"})

    assert (response.status_code, response.json()["status"]) == (201, "replaced")


async def test_document_without_id_gets_one_from_retrieval(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/documents", json={"text": "anonymous"})

    assert response.json()["document_id"]
    assert response.json()["collection"] == "default"


async def test_documents_list_pages_with_a_cursor(edge: Edge) -> None:
    for name in ("a", "b", "c"):
        await edge.ingest(f"text {name}", id=name, title=name.upper(), metadata={"k": name})

    first = (await edge.client.get("/api/v1/documents", params={"limit": 2})).json()
    second = (
        await edge.client.get(
            "/api/v1/documents", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()

    assert [d["document_id"] for d in first["documents"]] == ["a", "b"]
    assert first["next_cursor"] == "b"
    assert [d["document_id"] for d in second["documents"]] == ["c"]
    assert second["next_cursor"] is None
    doc = first["documents"][0]
    assert set(doc) == {
        "document_id",
        "title",
        "source",
        "chunks",
        "content_hash",
        "metadata",
        "ingested_at",
    }
    assert (doc["title"], doc["chunks"], doc["metadata"]) == ("A", 1, {"k": "a"})
    assert doc["ingested_at"].startswith("2025-06-15T")


async def test_list_rejects_a_bad_collection_name(edge: Edge) -> None:
    response = await edge.client.get("/api/v1/documents", params={"collection": "Bad Name"})

    assert response.status_code == 422


async def test_delete_removes_the_document_with_204(edge: Edge) -> None:
    await edge.ingest("bye", id="notes/old.md", collection="homelab")

    response = await edge.client.delete(
        "/api/v1/documents/notes/old.md", params={"collection": "homelab"}
    )

    assert response.status_code == 204
    assert response.content == b""
    assert ("homelab", "notes/old.md") not in edge.retrieval.documents


async def test_deleting_an_unknown_document_is_a_404_problem(edge: Edge) -> None:
    response = await edge.client.delete("/api/v1/documents/missing")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = response.json()
    assert (problem["title"], problem["status"]) == ("Not found", 404)
    assert "missing" in problem["detail"]


async def test_delete_rejects_an_id_with_unsafe_characters(edge: Edge) -> None:
    response = await edge.client.delete("/api/v1/documents/a%20b")

    assert response.status_code == 422


async def test_retrieval_unavailable_on_ingest_is_a_503_problem(edge: Edge) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    response = await edge.client.post("/api/v1/documents", json={"text": "t"})

    assert response.status_code == 503
    assert response.json()["title"] == "Service unavailable"


async def test_retrieval_invalid_argument_keeps_its_detail_as_422(edge: Edge) -> None:
    edge.retrieval.fail_with = InvalidInput("collection 'x' was built with another model")

    response = await edge.client.post("/api/v1/documents", json={"text": "t"})

    assert response.status_code == 422
    assert response.json()["detail"] == "collection 'x' was built with another model"


@pytest.mark.parametrize(
    "document_id",
    ["..", ".", "../collections/default", "docs/../secrets.md", "docs/./x", "a//b", "/a", "a/"],
)
async def test_an_id_that_could_address_something_else_is_a_422_problem(
    edge: Edge, document_id: str
) -> None:
    response = await edge.client.post(
        "/api/v1/documents", json={"id": document_id, "text": "planted"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert edge.retrieval.documents == {}


@pytest.mark.parametrize("path", ["%2E%2E", "%2E", "docs/%2E%2E", "docs/%2E/x", "docs/%2E%2E/x"])
async def test_deleting_by_an_id_that_could_address_something_else_is_a_422_problem(
    edge: Edge, path: str
) -> None:
    await edge.ingest("kept", id="docs/x")

    response = await edge.client.delete(f"/api/v1/documents/{path}")

    assert response.status_code == 422
    assert ("default", "docs/x") in edge.retrieval.documents


async def test_the_id_upload_is_reserved_for_the_upload_route_with_a_422_problem(
    edge: Edge,
) -> None:
    response = await edge.client.post("/api/v1/documents", json={"id": "upload", "text": "t"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    [error] = response.json()["errors"]
    assert error["field"] == "body.id"
    assert "reserved" in error["message"]
    assert edge.retrieval.documents == {}


async def test_ids_that_only_begin_or_end_like_the_upload_route_are_not_reserved(
    edge: Edge,
) -> None:
    for document_id in ("upload/notes.md", "uploads", "docs/upload"):
        await edge.ingest("kept", id=document_id)

    assert {key[1] for key in edge.retrieval.documents} == {
        "upload/notes.md",
        "uploads",
        "docs/upload",
    }


async def test_a_document_stored_as_upload_before_the_rule_can_still_be_deleted(
    edge: Edge,
) -> None:
    legacy = retrieval_pb2.IngestDocumentRequest(document_id="upload", text="from before")
    async with grpc.aio.insecure_channel(edge.downstreams.addr("retrieval")) as channel:
        await retrieval_pb2_grpc.RetrievalServiceStub(channel).IngestDocument(legacy)

    response = await edge.client.delete("/api/v1/documents/upload")

    assert response.status_code == 204
    assert edge.retrieval.documents == {}
