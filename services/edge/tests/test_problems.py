from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bruno_core import Conflict

if TYPE_CHECKING:
    from conftest import Edge


async def test_unknown_route_is_a_404_problem(edge: Edge) -> None:
    response = await edge.client.get("/api/v2/nothing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no route matches /api/v2/nothing",
    }


async def test_wrong_method_is_a_405_problem_with_allow(edge: Edge) -> None:
    response = await edge.client.put("/health")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "GET" in response.headers["allow"]
    assert response.json()["title"] == "Method Not Allowed"


@pytest.mark.parametrize("path", ["/health", "/api/v1/documents", "/v1/models"])
async def test_head_on_a_get_route_is_a_405_that_allows_get(edge: Edge, path: str) -> None:
    # Deliberate (docs/errors.md, "Method not allowed"): HEAD would do the whole GET's work.
    response = await edge.client.head(path)

    assert response.status_code == 405
    assert "GET" in response.headers["allow"].split(", ")
    assert "HEAD" not in response.headers["allow"]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/conversations/c-1", "DELETE, GET"),
        ("/api/v1/documents", "GET, POST"),
        ("/api/v1/documents/upload", "DELETE, POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_path_not_only_the_first_routes(
    edge: Edge, path: str, allowed: str
) -> None:
    response = await edge.client.put(path)

    assert response.status_code == 405
    assert response.headers["allow"] == allowed


async def test_unexpected_error_is_a_bare_500_problem(edge: Edge) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals at /srv/bruno/db")

    edge.app.add_api_route("/broken", broken)

    response = await edge.client.get("/broken")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["title"], problem["status"]) == ("Internal error", 500)
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_domain_errors_keep_their_status(edge: Edge) -> None:
    async def conflicting() -> None:
        raise Conflict("the collection is being rebuilt")

    edge.app.add_api_route("/conflicting", conflicting)

    response = await edge.client.get("/conflicting")

    assert response.status_code == 409
    assert response.json()["detail"] == "the collection is being rebuilt"


@pytest.mark.parametrize("path", ["/v1/nope", "/v1", "/v1/chat/completions/extra"])
async def test_unknown_route_under_v1_is_an_openai_404(edge: Edge, path: str) -> None:
    response = await edge.client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": f"no route matches {path}",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    }


async def test_a_path_that_only_starts_like_v1_stays_a_problem(edge: Edge) -> None:
    response = await edge.client.get("/v1nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_wrong_method_under_v1_is_an_openai_405_with_allow(edge: Edge) -> None:
    response = await edge.client.put("/v1/models")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert "GET" in response.headers["allow"]
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")
    assert error["message"] == "PUT is not allowed on /v1/models"


async def test_unexpected_error_under_v1_is_a_bare_openai_500(edge: Edge) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals at /srv/bruno/db")

    edge.app.add_api_route("/v1/broken", broken)

    response = await edge.client.get("/v1/broken")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal")
    assert "secret" not in response.text


async def test_domain_errors_under_v1_keep_their_status_as_openai_errors(edge: Edge) -> None:
    async def conflicting() -> None:
        raise Conflict("the collection is being rebuilt")

    edge.app.add_api_route("/v1/conflicting", conflicting)

    response = await edge.client.get("/v1/conflicting")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "message": "the collection is being rebuilt",
        "type": "invalid_request_error",
        "param": None,
        "code": "conflict",
    }
