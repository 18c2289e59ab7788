from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.routing import Route

from bruno_edge import create_app
from bruno_edge.api.deps import require_api_key
from bruno_edge.api.routes import chat, documents, health, openai, search
from bruno_edge.app import include_flat
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


def _solved(dependant: Dependant) -> Iterator[Dependant]:
    """Every node FastAPI solves for ``dependant`` on each request, repeats included (it solves
    a dependency's tree wherever it is named, before it looks in its cache)."""
    for sub in dependant.dependencies:
        yield sub
        yield from _solved(sub)


@pytest.mark.parametrize(
    ("router", "method", "path"),
    [
        (search.router, "POST", "/api/v1/search"),
        (chat.router, "POST", "/api/v1/chat"),
        (documents.router, "GET", "/api/v1/documents"),
    ],
)
def test_a_route_leaves_the_key_check_to_its_router_and_has_one_guard(
    router: APIRouter, method: str, path: str
) -> None:
    # The app adds each router's routes behind require_api_key once; a route naming it again (or
    # a dependency of it) would solve its tree again on every request.
    [route] = [
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    ]

    calls = [node.call for node in _solved(route.dependant)]

    assert require_api_key not in calls
    assert sum(getattr(call, "__name__", "") == "guard" for call in calls) == 1


def test_the_app_routes_each_request_once_and_checks_the_key_first() -> None:
    # The routers' routes are the app's own (bruno_edge.app.include_flat), not included routers
    # FastAPI would match a request against twice; every /api and /v1 route's first dependency
    # is the key check, solved once, with nothing under it (the bearer scheme is only in the
    # OpenAPI document).
    app = create_app(EdgeSettings(api_keys="key-one"))
    api_routes = [route for route in app.router.routes if isinstance(route, APIRoute)]
    keyed = [route for route in api_routes if route.path.startswith(("/api/", "/v1/"))]

    # Each a route matched on its own (an included router is a BaseRoute standing for many).
    assert all(isinstance(route, Route) for route in app.router.routes)
    assert len(keyed) == 19
    for route in keyed:
        first = route.dependant.dependencies[0]
        assert first.call is require_api_key, route.path
        assert first.dependencies == [], route.path
        calls = [node.call for node in _solved(route.dependant)]
        assert calls.count(require_api_key) == 1, route.path
        assert not any(isinstance(call, SecurityBase) for call in calls), route.path


def test_routes_added_flat_are_the_routes_an_inclusion_declares() -> None:
    # include_flat copies each route's settings by name; a FastAPI release adding one it does
    # not copy shows here, as a difference in the OpenAPI document of the same routers.
    def document(add: Callable[[FastAPI, APIRouter], None]) -> dict[str, Any]:
        app = FastAPI()
        for router in (search.router, chat.router, documents.router, openai.router, health.router):
            add(app, router)
        return app.openapi()

    included = document(
        lambda app, router: app.include_router(router, dependencies=[Depends(require_api_key)])
    )
    flat = document(
        lambda app, router: include_flat(app, router, dependencies=[Depends(require_api_key)])
    )

    assert flat == included
