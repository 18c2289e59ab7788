"""Scoped keys on every route: a key does only what its scopes allow (403 otherwise) and sees
only its collections; another collection is a 404 worded as for one that does not exist, and
never shows up in a search, a listing, a citation or an error message. REST, /v1 and MCP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bruno_edge.keys import hash_line

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

KEYS = {
    "reader-a": ('["read"]', '["a"]'),
    "writer-a": ('["write"]', '["a"]'),
    "admin-a": ('["admin", "read"]', '["a"]'),
    "root": ('["read", "write", "admin"]', '["*"]'),
}


def keys_file(tmp_path: Path) -> Path:
    tables = [
        f'[keys.{name}]\nhash = "{hash_line(f"{name}-secret")}"\n'
        f"scopes = {scopes}\ncollections = {collections}\n"
        for name, (scopes, collections) in KEYS.items()
    ]
    path = tmp_path / "keys.toml"
    path.write_text("\n".join(tables))
    return path


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-secret"}


BASE = "http://127.0.0.1"


@asynccontextmanager
async def mcp_client(edge: Edge, name: str) -> AsyncIterator[Client]:
    transport = httpx2.ASGITransport(edge.app, raise_app_exceptions=False)
    async with (
        httpx2.AsyncClient(transport=transport, base_url=BASE, headers=auth(name)) as http,
        Client(streamable_http_client(f"{BASE}/mcp", http_client=http)) as client,
    ):
        yield client


def structured(result: Any) -> dict[str, Any]:
    assert result.is_error is False, result.content
    content: dict[str, Any] = result.structured_content
    return content


@pytest.fixture
async def edge(edge_factory: EdgeFactory, tmp_path: Path) -> Edge:
    edge = await edge_factory(api_keys_file=keys_file(tmp_path), edge_host="0.0.0.0")
    edge.auth = auth("root")
    await edge.ingest("pods restart alpha runbook", id="alpha", title="Alpha", collection="a")
    await edge.ingest("pods restart bravo secret", id="bravo", title="Bravo", collection="b")
    return edge


def problem_without_name(response: httpx.Response, name: str) -> tuple[int, Any]:
    """A 404's status and body with the asked-for name taken out, for comparing answers."""
    return response.status_code, json.loads(response.text.replace(name, "NAME"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/documents", {"text": "new text", "collection": "a"}),
        ("DELETE", "/api/v1/documents/alpha?collection=a", None),
        ("DELETE", "/api/v1/collections/a", None),
        ("POST", "/api/v1/collections/a/reindex", None),
    ],
)
async def test_a_read_key_cannot_write_or_administer(
    edge: Edge, method: str, path: str, body: Any
) -> None:
    response = await edge.client.request(method, path, json=body, headers=auth("reader-a"))

    assert response.status_code == 403
    assert response.json()["detail"] in (
        "this API key lacks the 'write' scope",
        "this API key lacks the 'admin' scope",
    )
    assert ("a", "alpha") in edge.retrieval.documents
    assert len(edge.retrieval.documents) == 2


async def test_a_read_key_cannot_upload(edge: Edge) -> None:
    files = {"files": ("n.md", b"# N\n\ntext", "text/markdown")}

    response = await edge.client.post(
        "/api/v1/documents/upload", files=files, data={"collection": "a"}, headers=auth("reader-a")
    )

    assert response.status_code == 403
    assert len(edge.retrieval.documents) == 2


@pytest.mark.parametrize(
    ("params", "data"),
    [({"collection": "b"}, None), (None, {"collection": "b"})],
    ids=["query", "form"],
)
async def test_a_write_key_cannot_upload_into_another_collection(
    edge: Edge, params: dict[str, str] | None, data: dict[str, str] | None
) -> None:
    files = {"file": ("n.md", b"# N\n\ntext", "text/markdown")}

    response = await edge.client.post(
        "/api/v1/documents/upload", params=params, data=data, files=files, headers=auth("writer-a")
    )

    assert response.status_code == 404
    assert response.json()["detail"] == "collection 'b' not found"
    assert edge.retrieval.ingested == ["alpha", "bravo"]


async def test_a_write_key_uploads_into_its_collection_named_in_the_query(edge: Edge) -> None:
    files = {"file": ("n.md", b"# N\n\ntext", "text/markdown")}

    response = await edge.client.post(
        "/api/v1/documents/upload",
        params={"collection": "a"},
        files=files,
        headers=auth("writer-a"),
    )

    assert response.status_code == 200, response.text
    assert response.json()["collection"] == "a"
    assert ("a", "n.md") in edge.retrieval.documents


async def test_a_write_key_ingests_but_cannot_search(edge: Edge) -> None:
    ingested = await edge.client.post(
        "/api/v1/documents", json={"text": "more", "collection": "a"}, headers=auth("writer-a")
    )
    searched = await edge.client.post(
        "/api/v1/search", json={"query": "pods", "collection": "a"}, headers=auth("writer-a")
    )

    assert ingested.status_code == 201
    assert searched.status_code == 403


async def test_a_key_cannot_write_into_another_collection(edge: Edge) -> None:
    ingested = await edge.client.post(
        "/api/v1/documents", json={"text": "x", "collection": "b"}, headers=auth("writer-a")
    )
    deleted = await edge.client.delete(
        "/api/v1/documents/bravo?collection=b", headers=auth("writer-a")
    )

    assert (ingested.status_code, deleted.status_code) == (404, 404)
    assert deleted.json()["detail"] == "document 'bravo' not found in collection 'b'"
    assert edge.retrieval.ingested == ["alpha", "bravo"]
    assert ("b", "bravo") in edge.retrieval.documents


async def test_a_search_in_another_collection_is_the_404_of_one_that_does_not_exist(
    edge: Edge,
) -> None:
    other = await edge.client.post(
        "/api/v1/search", json={"query": "pods", "collection": "b"}, headers=auth("reader-a")
    )
    missing = await edge.client.post(
        "/api/v1/search", json={"query": "pods", "collection": "zz"}, headers=auth("reader-a")
    )

    assert other.status_code == 404
    assert problem_without_name(other, "'b'") == problem_without_name(missing, "'zz'")
    assert "bravo" not in other.text
    assert [s.collection for s in edge.retrieval.searches] == []


async def test_a_search_in_its_own_collection_finds_only_its_documents(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/search",
        json={"query": "pods restart", "collection": "a"},
        headers=auth("reader-a"),
    )

    assert [hit["document_id"] for hit in response.json()["results"]] == ["alpha"]


async def test_listings_show_only_the_keys_collections(edge: Edge) -> None:
    collections = await edge.client.get("/api/v1/collections", headers=auth("reader-a"))
    documents = await edge.client.get("/api/v1/documents?collection=b", headers=auth("reader-a"))
    everything = await edge.client.get("/api/v1/collections", headers=auth("root"))

    assert [c["name"] for c in collections.json()["collections"]] == ["a"]
    assert documents.status_code == 404
    assert "bravo" not in documents.text
    assert [c["name"] for c in everything.json()["collections"]] == ["a", "b"]


async def test_an_admin_of_one_collection_cannot_drop_another(edge: Edge) -> None:
    other = await edge.client.delete("/api/v1/collections/b", headers=auth("admin-a"))
    own = await edge.client.post("/api/v1/collections/a/reindex", headers=auth("admin-a"))

    assert other.status_code == 404
    assert other.json()["detail"] == "collection 'b' not found"
    assert ("b", "bravo") in edge.retrieval.documents
    assert own.status_code == 202


async def test_a_chat_cites_only_the_keys_collection(edge: Edge) -> None:
    other = await edge.client.post(
        "/api/v1/chat",
        json={"message": "pods restart", "collection": "b"},
        headers=auth("reader-a"),
    )
    own = await edge.client.post(
        "/api/v1/chat",
        json={"message": "pods restart", "collection": "a"},
        headers=auth("reader-a"),
    )

    assert other.status_code == 404
    assert "bravo" not in other.text
    assert [c["document_id"] for c in own.json()["citations"]] == ["alpha"]
    assert edge.generation.requests[-1].passages[0].document_id == "alpha"
    assert len(edge.generation.requests) == 1


async def test_an_openai_chat_in_another_collection_is_an_openai_404(edge: Edge) -> None:
    body = {
        "model": "bruno",
        "messages": [{"role": "user", "content": "pods restart"}],
        "bruno": {"collection": "b"},
    }

    other = await edge.client.post("/v1/chat/completions", json=body, headers=auth("reader-a"))
    default = await edge.client.post(
        "/v1/chat/completions", json={**body, "bruno": None}, headers=auth("reader-a")
    )
    no_read = await edge.client.post("/v1/chat/completions", json=body, headers=auth("writer-a"))

    assert other.status_code == 404
    assert other.json()["error"]["message"] == "collection 'b' not found"
    assert "bravo" not in other.text
    assert default.status_code == 404  # the key does not see "default" either
    assert no_read.status_code == 403
    assert no_read.json()["error"]["type"] == "permission_error"
    assert edge.generation.requests == []


async def test_mcp_tools_see_only_the_keys_collections(edge: Edge) -> None:
    async with mcp_client(edge, "reader-a") as client:
        listed = structured(await client.call_tool("list_collections", {}))
        other = await client.call_tool("search", {"query": "pods", "collection": "b"})
        asked = await client.call_tool("ask", {"question": "pods restart", "collection": "b"})
        own = structured(await client.call_tool("search", {"query": "pods", "collection": "a"}))
        with pytest.raises(MCPError) as resource:
            await client.read_resource("bruno://collections/b/documents")

    assert [c["name"] for c in listed["collections"]] == ["a"]
    for refused in (other, asked):
        assert refused.is_error is True
        text = refused.content[0].text  # type: ignore[union-attr]
        assert text.endswith(": collection 'b' not found")
    assert "bravo" not in str(resource.value)
    assert [p["document_id"] for p in own["passages"]] == ["alpha"]
    assert all(s.collection == "a" for s in edge.retrieval.searches)


async def test_mcp_refuses_a_key_without_read_with_a_json_rpc_403(edge: Edge) -> None:
    transport = httpx.ASGITransport(edge.app)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await http.post("/mcp", json=ping, headers=auth("writer-a"))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == -32003
    assert response.json()["error"]["data"] == {"status": 403}


async def test_refusals_are_logged_with_the_keys_name_never_the_key(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await edge.client.post("/api/v1/documents", json={"text": "x"}, headers=auth("reader-a"))
    await edge.client.post(
        "/api/v1/search", json={"query": "x", "collection": "b"}, headers=auth("reader-a")
    )
    await edge.client.post(
        "/api/v1/search", json={"query": "x"}, headers={"Authorization": "Bearer guessed-key"}
    )

    refusals = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert [(getattr(r, "key_name", ""), getattr(r, "reason", "")) for r in refusals] == [
        ("reader-a", "lacks the write scope"),
        ("reader-a", "asked for a collection outside its list"),
        (None, "missing or wrong key"),
    ]
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "reader-a-secret" not in logged
    assert "guessed-key" not in logged


async def test_a_conversation_belongs_to_the_key_that_started_it(edge: Edge) -> None:
    started = await edge.client.post(
        "/api/v1/chat",
        json={"message": "pods restart", "collection": "a"},
        headers=auth("reader-a"),
    )
    conversation = started.json()["conversation_id"]
    path = f"/api/v1/conversations/{conversation}"
    follow_up = {"message": "and then?", "collection": "a", "conversation_id": conversation}

    read = await edge.client.get(path, headers=auth("admin-a"))
    continued = await edge.client.post("/api/v1/chat", json=follow_up, headers=auth("admin-a"))
    deleted = await edge.client.delete(path, headers=auth("admin-a"))
    own = await edge.client.get(path, headers=auth("reader-a"))

    for refused in (read, continued, deleted):
        assert refused.status_code == 404
        assert refused.json()["detail"] == f"conversation {conversation!r} not found"
    assert [t["content"] for t in own.json()["turns"]] == ["pods restart", "Restart the pod [1]."]
    assert (await edge.client.delete(path, headers=auth("reader-a"))).status_code == 204
