from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bruno_edge.config import EdgeSettings
from bruno_edge.keys import Keyring

if TYPE_CHECKING:
    from conftest import EdgeFactory

ROUTES = [
    ("POST", "/api/v1/chat", {"message": "hi"}),
    ("POST", "/api/v1/search", {"query": "hi"}),
    ("POST", "/api/v1/documents", {"text": "hi"}),
    ("GET", "/api/v1/documents", None),
    ("DELETE", "/api/v1/documents/x", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic a2V5LW9uZQ==", "key-one"])
async def test_api_routes_refuse_a_missing_or_wrong_key(
    edge_factory: EdgeFactory,
    method: str,
    path: str,
    body: object,
    authorization: str | None,
) -> None:
    edge = await edge_factory(api_keys="key-one,key-two")
    headers = {"Authorization": authorization} if authorization else {}

    response = await edge.client.request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Unauthenticated"
    assert edge.retrieval.searches == []


@pytest.mark.parametrize("key", ["key-one", "key-two"])
async def test_any_configured_key_is_accepted(edge_factory: EdgeFactory, key: str) -> None:
    edge = await edge_factory(api_keys=" key-one , key-two ")

    response = await edge.client.post(
        "/api/v1/search", json={"query": "hi"}, headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "localhost"])
async def test_without_keys_a_loopback_edge_is_open(edge_factory: EdgeFactory, host: str) -> None:
    edge = await edge_factory(api_keys="", edge_host=host)

    response = await edge.client.post("/api/v1/search", json={"query": "hi"})

    assert response.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "edge.example.com"])
async def test_without_keys_a_public_edge_fails_closed(
    edge_factory: EdgeFactory, host: str
) -> None:
    edge = await edge_factory(api_keys="", edge_host=host)

    response = await edge.client.post("/api/v1/search", json={"query": "hi"})

    assert response.status_code == 401


async def test_open_mode_logs_a_warning(
    edge_factory: EdgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    await edge_factory(api_keys="")

    assert any("no API keys configured" in r.getMessage() for r in caplog.records)


def test_key_matching_is_exact() -> None:
    keyring = Keyring.from_settings(EdgeSettings(api_keys="alpha,beta"))

    assert keyring.find("beta") is not None
    assert keyring.find("bet") is None
    assert keyring.find("betaa") is None
