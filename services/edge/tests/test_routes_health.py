from __future__ import annotations

from typing import TYPE_CHECKING

from bruno_core.errors import PROBLEM_CONTENT_TYPE

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory


async def test_health_is_ok_even_when_downstreams_are_gone(edge: Edge) -> None:
    for server in edge.downstreams.servers.values():
        await server.stop()

    response = await edge.client.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_every_downstream_serves(edge: Edge) -> None:
    response = await edge.client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"retrieval": "SERVING", "generation": "SERVING", "embedding": "SERVING"},
    }


async def test_not_ready_names_the_stopped_downstream(edge: Edge) -> None:
    await edge.downstreams.servers["embedding"].stop()

    response = await edge.client.get("/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = response.json()
    assert "embedding" in problem["detail"]
    assert "retrieval" not in problem["detail"]
    assert problem["checks"]["embedding"] != "SERVING"
    assert problem["checks"]["retrieval"] == "SERVING"


async def test_not_ready_when_a_downstream_reports_not_serving(edge: Edge) -> None:
    await edge.downstreams.servers["generation"].set_serving(False)

    response = await edge.client.get("/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["generation"] == "NOT_SERVING"
    assert "generation (NOT_SERVING)" in response.json()["detail"]


async def test_probes_need_no_api_key(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret")

    for path in ("/health", "/ready", "/metrics"):
        assert (await edge.client.get(path)).status_code == 200, path
