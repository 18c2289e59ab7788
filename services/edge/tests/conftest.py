"""The edge under test: the real app, in front of real gRPC servers on loopback serving
``bruno_testing.fakes`` (small, deterministic, configurable to fail, and checked against the
real services)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
from fastapi import FastAPI

from bruno_core import GrpcServer
from bruno_edge import EdgeSettings, create_app
from bruno_testing.fakes import (
    FakeConversations,
    FakeGeneration,
    FakeJobs,
    FakeRetrieval,
    FakeServices,
)


@dataclass
class Downstreams:
    retrieval: FakeRetrieval
    generation: FakeGeneration
    servers: dict[str, GrpcServer]
    conversations: FakeConversations
    jobs: FakeJobs

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"


@dataclass
class Edge:
    app: FastAPI
    client: httpx.AsyncClient
    settings: EdgeSettings
    downstreams: Downstreams
    auth: dict[str, str] = field(default_factory=dict)

    @property
    def retrieval(self) -> FakeRetrieval:
        return self.downstreams.retrieval

    @property
    def generation(self) -> FakeGeneration:
        return self.downstreams.generation

    @property
    def conversations(self) -> FakeConversations:
        return self.downstreams.conversations

    @property
    def jobs(self) -> FakeJobs:
        return self.downstreams.jobs

    async def ingest(self, text: str, **fields: Any) -> httpx.Response:
        response = await self.client.post(
            "/api/v1/documents", json={"text": text, **fields}, headers=self.auth
        )
        assert response.status_code in (200, 201), response.text
        return response

    @staticmethod
    def events(response: httpx.Response) -> list[tuple[str, Any]]:
        """The (event, decoded data) pairs of an SSE response, pings left out."""
        return parse_sse(response.text)


class EdgeFactory(Protocol):
    async def __call__(self, **overrides: Any) -> Edge: ...


@pytest.fixture
async def downstreams() -> AsyncIterator[Downstreams]:
    async with FakeServices() as fakes:
        yield Downstreams(
            fakes.retrieval, fakes.generation, fakes.servers, fakes.conversations, fakes.jobs
        )


@pytest.fixture
async def edge_factory(downstreams: Downstreams) -> AsyncIterator[EdgeFactory]:
    """Builds an edge app (lifespan running) and a client for it; settings override defaults."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Edge:
            values: dict[str, Any] = {
                "retrieval_addr": downstreams.addr("retrieval"),
                "generation_addr": downstreams.addr("generation"),
                "embedding_addr": downstreams.addr("embedding"),
                "api_keys": "",
                "edge_host": "127.0.0.1",
                **overrides,
            }
            settings = EdgeSettings(**values)
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app, raise_app_exceptions=False),
                    base_url="http://edge.test",
                )
            )
            return Edge(app, client, settings, downstreams)

        yield make


@pytest.fixture
async def edge(edge_factory: EdgeFactory) -> Edge:
    """An edge in open mode on loopback (no API keys)."""
    return await edge_factory()


def parse_sse(body: str) -> list[tuple[str, Any]]:
    """The (event, decoded data) pairs of an SSE body, pings left out."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
