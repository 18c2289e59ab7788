from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from bruno.retrieval.v1 import retrieval_pb2
from bruno_edge import __version__, create_app
from bruno_edge.api.deps import EdgeState
from bruno_edge.config import EdgeSettings

if TYPE_CHECKING:
    from conftest import Edge


async def test_openapi_describes_the_api_with_bearer_auth(edge: Edge) -> None:
    schema = (await edge.client.get("/openapi.json")).json()

    assert schema["info"]["title"] == "Agent Bruno"
    assert schema["info"]["version"] == __version__
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (BRUNO_API_KEYS or the keys file), sent as "
        "`Authorization: Bearer <key>`.",
    }
    assert schema["paths"]["/api/v1/chat"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    assert set(schema["paths"]) >= {
        "/api/v1/chat",
        "/api/v1/documents",
        "/api/v1/documents/{document_id}",
        "/api/v1/search",
        "/health",
        "/ready",
        "/metrics",
    }
    problem = schema["paths"]["/api/v1/chat"]["post"]["responses"]["422"]["content"]
    assert "application/problem+json" in problem


async def test_docs_page_is_served(edge: Edge) -> None:
    response = await edge.client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_lifespan_opens_and_closes_the_downstream_channels() -> None:
    app = create_app(EdgeSettings(api_keys="k"))
    state: EdgeState = app.state.edge

    async with app.router.lifespan_context(app):
        downstreams = state.downstreams
        assert downstreams is not None

    assert state.downstreams is None
    with pytest.raises(grpc.aio.UsageError):
        await downstreams.retrieval.Search(retrieval_pb2.SearchRequest(query="q"))
