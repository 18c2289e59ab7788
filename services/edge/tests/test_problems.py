from __future__ import annotations

from typing import TYPE_CHECKING

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
