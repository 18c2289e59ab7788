"""The MCP server at /mcp, driven by the official MCP SDK client: tools with schemas an agent
can act on, answers from the services, errors in JSON-RPC's terms, the same API keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import NotFound
from bruno_testing.fakes import FakeServices

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

RUNBOOK = "To fix a crashloop restart the pod and check the logs of the pod."
BASE = "http://127.0.0.1"
TOKEN = "Bruno-Consistency-Token"


@asynccontextmanager
async def mcp_client(edge: Edge, key: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx2.ASGITransport(edge.app, raise_app_exceptions=False)
    async with (
        httpx2.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http,
        Client(streamable_http_client(f"{BASE}/mcp", http_client=http)) as client,
    ):
        yield client


def structured(result: Any) -> dict[str, Any]:
    assert result.is_error is False, result.content
    content: dict[str, Any] = result.structured_content
    return content


async def test_the_tools_are_listed_with_schemas_and_descriptions(edge: Edge) -> None:
    async with mcp_client(edge) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {"search", "ask", "list_collections"}
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["top_k"]["maximum"] == edge.settings.max_top_k
    assert search["properties"]["mode"]["enum"] == ["hybrid", "vector", "text"]
    assert tools["ask"].input_schema["required"] == ["question"]
    for tool in tools.values():
        assert tool.description
        assert tool.output_schema is not None
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True


async def test_search_finds_passages_with_title_source_score_and_chunk(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop", source="runbooks/c.md")

    async with mcp_client(edge) as client:
        result = await client.call_tool(
            "search", {"query": "restart the pod", "top_k": 3, "mode": "text"}
        )

    found = structured(result)
    [passage] = found["passages"]
    assert (passage["document_id"], passage["chunk_id"]) == ("crashloop", "crashloop:0")
    assert (passage["title"], passage["source"]) == ("Crashloop", "runbooks/c.md")
    assert passage["score"] > 0
    search = edge.retrieval.searches[-1]
    assert (search.top_k, search.collection) == (3, "default")


async def test_ask_answers_with_its_citations(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop")

    async with mcp_client(edge) as client:
        result = await client.call_tool("ask", {"question": "restart the pod"})

    answer = structured(result)
    assert answer["answer"] == "Restart the pod [1]."
    [citation] = answer["citations"]
    assert (citation["marker"], citation["document_id"], citation["cited"]) == (
        1,
        "crashloop",
        True,
    )
    assert (answer["model"], answer["fallback"]) == ("fake-llm", False)


async def test_list_collections_names_them_with_their_counts(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", collection="homelab")

    async with mcp_client(edge) as client:
        result = await client.call_tool("list_collections", {})

    [collection] = structured(result)["collections"]
    assert (collection["name"], collection["documents"]) == ("homelab", 1)


async def test_a_collections_documents_are_a_resource(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop", collection="homelab")

    async with mcp_client(edge) as client:
        templates = (await client.list_resource_templates()).resource_templates
        read = await client.read_resource("bruno://collections/homelab/documents")

    assert [t.uri_template for t in templates] == ["bruno://collections/{collection}/documents"]
    [content] = read.contents
    listed = json.loads(getattr(content, "text", ""))
    assert [(d["document_id"], d["title"]) for d in listed["documents"]] == [
        ("crashloop", "Crashloop")
    ]


async def test_the_documents_resource_lists_a_document_as_the_rest_route_does_in_utc(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop", collection="homelab")

    async with mcp_client(edge) as client:
        read = await client.read_resource("bruno://collections/homelab/documents")
    rest = await edge.client.get("/api/v1/documents", params={"collection": "homelab"})

    [content] = read.contents
    [listed] = json.loads(getattr(content, "text", ""))["documents"]
    assert listed == rest.json()["documents"][0]
    assert listed["ingested_at"].endswith("Z")


async def test_what_the_caller_can_fix_is_a_tool_error_the_agent_reads(edge: Edge) -> None:
    edge.retrieval.fail_with = NotFound("collection 'nope' not found")

    async with mcp_client(edge) as client:
        missing = await client.call_tool("search", {"query": "pods", "collection": "nope"})
        bad = await client.call_tool("search", {"query": "pods", "top_k": 0})

    assert missing.is_error is True
    assert "collection 'nope' not found" in missing.content[0].text  # type: ignore[union-attr]
    assert bad.is_error is True
    assert "top_k" in bad.content[0].text  # type: ignore[union-attr]


@pytest.fixture
async def readers() -> AsyncIterator[FakeServices]:
    """A second retrieval fake: the readers' address (its generation and embedding unused)."""
    async with FakeServices() as fakes:
        yield fakes


async def test_search_and_ask_sending_a_writes_token_read_that_version(
    edge_factory: EdgeFactory, readers: FakeServices
) -> None:
    split = await edge_factory(retrieval_reader_addr=readers.addr("retrieval"))
    token = (await split.ingest(RUNBOOK, id="crashloop")).headers[TOKEN]

    async with mcp_client(split) as client:
        searched = await client.call_tool(
            "search", {"query": "restart the pod", "consistency_token": token}
        )
        asked = await client.call_tool(
            "ask", {"question": "restart the pod", "consistency_token": token}
        )
        plain = await client.call_tool("search", {"query": "restart the pod"})

    assert searched.is_error is asked.is_error is plain.is_error is False
    version = retrieval_pb2.Committed(table="default", version=1)
    assert [s.at_least for s in readers.retrieval.searches[:2]] == [version, version]
    assert not readers.retrieval.searches[2].HasField("at_least")


@pytest.mark.parametrize("tool", ["search", "ask"])
@pytest.mark.parametrize("token", ["default@x", "default@0", "default", f"{'t' * 200}@1"])
async def test_a_malformed_consistency_token_is_a_tool_error_and_reads_nothing(
    edge: Edge, tool: str, token: str
) -> None:
    question = {"search": "query", "ask": "question"}[tool]

    async with mcp_client(edge) as client:
        result = await client.call_tool(tool, {question: "pods", "consistency_token": token})

    assert result.is_error is True
    assert "consistency_token" in result.content[0].text  # type: ignore[union-attr]
    assert edge.retrieval.searches == []


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("search", {"query": "restart\x00the pod"}),
        ("search", {"query": "pods", "filters": {"source": "runbooks\x1b[2J"}}),
        ("ask", {"question": "restart the pod\x7f"}),
    ],
)
async def test_control_characters_in_tool_arguments_are_a_tool_error_naming_them(
    edge: Edge, tool: str, arguments: dict[str, Any]
) -> None:
    async with mcp_client(edge) as client:
        result = await client.call_tool(tool, arguments)

    assert result.is_error is True
    assert "control characters" in result.content[0].text  # type: ignore[union-attr]
    assert edge.retrieval.searches == []


async def test_a_service_down_is_a_json_rpc_error_without_internal_addresses(
    edge: Edge,
) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    async with mcp_client(edge) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("list_collections", {})

    assert caught.value.code == -32603
    assert caught.value.message == "the retrieval service is unavailable"
    assert "10.0.0.7" not in str(caught.value.data)


async def test_the_same_api_keys_guard_mcp(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret", edge_host="0.0.0.0")

    for key in (None, "wrong"):
        with pytest.raises(ExceptionGroup) as caught:
            async with mcp_client(edge, key) as client:
                await client.list_tools()
        assert caught.group_contains(MCPError, match="API key")
    async with mcp_client(edge, "secret") as client:
        assert (await client.list_tools()).tools


async def test_a_refused_key_is_a_401_with_a_json_rpc_error_body(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(api_keys="secret", edge_host="0.0.0.0")
    transport = httpx.ASGITransport(edge.app)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await http.post("/mcp", json=ping, headers={"Authorization": "Bearer no"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32001, "message": "the API key is not valid", "data": {"status": 401}},
    }


async def test_without_keys_only_loopback_host_names_reach_the_tools(
    edge_factory: EdgeFactory,
) -> None:
    """No keys: a web page that rebinds its own DNS name to 127.0.0.1 must not get in."""
    open_edge = await edge_factory()
    keyed = await edge_factory(api_keys="secret", edge_host="0.0.0.0")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}

    async def status(edge: Edge, host: str, key: str = "") -> int:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.ASGITransport(edge.app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
            response = await http.post("/mcp", json=ping, headers={**headers, **auth})
        return response.status_code

    assert await status(open_edge, "127.0.0.1:8080") == 200
    assert await status(open_edge, "attacker.example") >= 400
    assert await status(keyed, "bruno.home.lan", "secret") == 200
