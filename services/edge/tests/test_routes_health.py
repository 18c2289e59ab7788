from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

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


async def test_a_missing_model_makes_ready_degraded_while_the_fallback_answers(
    edge: Edge,
) -> None:
    edge.generation.info.model_available = False
    edge.generation.info.detail = 'Ollama does not have the model "fake-llm"'

    response = await edge.client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"retrieval": "SERVING", "generation": "MODEL_MISSING", "embedding": "SERVING"},
        "detail": "generation (MODEL_MISSING); answers come from the extractive fallback",
    }


async def test_requiring_the_model_makes_a_missing_one_not_ready(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(require_model=True)
    edge.generation.info.model_available = False

    response = await edge.client.get("/ready")

    assert response.status_code == 503
    problem = response.json()
    assert problem["detail"] == "not ready: generation (MODEL_MISSING)"
    assert problem["checks"]["generation"] == "MODEL_MISSING"


@pytest.mark.parametrize("require_model", [False, True])
async def test_why_the_model_is_missing_is_logged_not_answered(
    edge_factory: EdgeFactory, caplog: pytest.LogCaptureFixture, require_model: bool
) -> None:
    edge = await edge_factory(api_keys="secret", require_model=require_model)
    edge.generation.info.model_available = False
    edge.generation.info.detail = "Ollama is not reachable at http://10.0.0.9:11434"

    with caplog.at_level(logging.WARNING, logger="bruno_edge"):
        response = await edge.client.get("/ready")

    assert response.status_code == (503 if require_model else 200)
    assert "10.0.0.9" not in response.text
    assert "Ollama" not in response.text
    assert any(
        getattr(record, "detail", "") == edge.generation.info.detail for record in caplog.records
    )


async def test_requiring_the_model_is_ready_when_it_is_there(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(require_model=True)

    assert (await edge.client.get("/ready")).json()["status"] == "ready"
