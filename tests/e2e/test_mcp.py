"""The MCP server end to end: the official MCP SDK client over real HTTP against the four real
services (API keys on), listing the tools and calling each, with a bad key and a tool error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bruno_testing.background import InBackground
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

KEY = "e2e-mcp-key"
DOC = {
    "id": "runbooks/velero",
    "title": "Velero",
    "source": "runbooks/velero.md",
    "text": "Velero backs up the cluster every night to the MinIO bucket.",
    "collection": "homelab",
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrunoSystem]:
    with (
        InBackground(OllamaStandIn(models=["llama3.2"])) as ollama,
        BrunoSystem(
            tmp_path_factory.mktemp("mcp"), ollama_host=ollama.url, env={"BRUNO_API_KEYS": KEY}
        ) as running,
    ):
        auth = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=running.edge_url, timeout=60, headers=auth) as client:
            assert client.post("/api/v1/documents", json=DOC).status_code in (200, 201)
        yield running


@asynccontextmanager
async def connected(system: BrunoSystem, key: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{system.edge_url}/mcp", http_client=http)) as client,
    ):
        yield client


def test_an_agent_lists_the_tools_and_calls_each(system: BrunoSystem) -> None:
    async def session() -> tuple[set[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with connected(system, KEY) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            collections = await client.call_tool("list_collections", {})
            found = await client.call_tool(
                "search", {"query": "When does Velero back up?", "collection": "homelab"}
            )
            answered = await client.call_tool(
                "ask", {"question": "When does Velero back up?", "collection": "homelab"}
            )
        results = (collections, found, answered)
        assert not any(r.is_error for r in results), [r.content for r in results]
        return tools, *(r.structured_content or {} for r in results)  # type: ignore[return-value]

    tools, collections, found, answered = asyncio.run(session())

    assert tools == {"search", "ask", "list_collections"}
    assert [c["name"] for c in collections["collections"]] == ["homelab"]
    passage = found["passages"][0]
    assert (passage["document_id"], passage["title"], passage["source"]) == (
        "runbooks/velero",
        "Velero",
        "runbooks/velero.md",
    )
    assert passage["chunk_id"]
    assert passage["score"] > 0
    assert "[1]" in answered["answer"]
    assert answered["citations"][0]["document_id"] == "runbooks/velero"
    assert answered["citations"][0]["cited"] is True


def test_a_bad_key_is_refused_with_a_json_rpc_error(system: BrunoSystem) -> None:
    async def session() -> None:
        async with connected(system, "not-the-key") as client:
            await client.list_tools()

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(session())

    assert caught.group_contains(MCPError, match="the API key is not valid")


def test_a_tool_error_names_what_to_fix(system: BrunoSystem) -> None:
    async def session() -> Any:
        async with connected(system, KEY) as client:
            return await client.call_tool("search", {"query": "Velero", "collection": "nope"})

    result = asyncio.run(session())

    assert result.is_error is True
    assert "nope" in result.content[0].text


def test_a_pdf_s_passage_and_citation_name_its_page_to_an_agent(system: BrunoSystem) -> None:
    manual = pdf_bytes(
        [
            PdfPage(heading="Mounting", paragraphs=["The access point hangs from the ceiling."]),
            PdfPage(heading="Power", paragraphs=["The access point takes PoE at 13 watts."]),
        ]
    )
    with httpx.Client(
        base_url=system.edge_url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        upload = client.post(
            "/api/v1/documents/upload?collection=homelab",
            files={"file": ("ap-manual.pdf", manual, "application/pdf")},
        )
        assert upload.status_code == 200, upload.text
    question = "How many watts of PoE does the access point take?"

    async def session() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connected(system, KEY) as client:
            found = await client.call_tool(
                "search", {"query": question, "collection": "homelab", "top_k": 1}
            )
            answered = await client.call_tool(
                "ask", {"question": question, "collection": "homelab"}
            )
        assert not found.is_error, found.content
        assert not answered.is_error, answered.content
        return found.structured_content or {}, answered.structured_content or {}

    found, answered = asyncio.run(session())

    [passage] = found["passages"]
    assert (passage["document_id"], passage["page"], passage["link"]) == (
        "ap-manual.pdf",
        2,
        "ap-manual.pdf#page=2",
    )
    cited = answered["citations"][0]  # the best passage first
    assert (cited["document_id"], cited["page"], cited["link"]) == (
        "ap-manual.pdf",
        2,
        "ap-manual.pdf#page=2",
    )
