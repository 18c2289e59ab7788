"""Probes and metrics, outside the API key: ``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bruno_core import Unavailable
from bruno_edge.api.deps import DownstreamsDep, StateDep
from bruno_edge.api.routes import problem_responses
from bruno_edge.problems import problem_response
from bruno_edge.schemas import Health, Readiness

router = APIRouter(tags=["operations"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health() -> Health:
    """Liveness: the process serves. Never depends on downstreams."""
    return Health()


@router.get("/ready", response_model=Readiness, responses=problem_responses(503))
async def ready(downstreams: DownstreamsDep) -> Readiness | JSONResponse:
    """Readiness: every downstream answers its gRPC health check with SERVING."""
    checks = await downstreams.health(timeout_seconds=READY_TIMEOUT_SECONDS)
    failing = [f"{name} ({status})" for name, status in checks.items() if status != "SERVING"]
    if failing:
        error = Unavailable("not ready: " + ", ".join(failing))
        return problem_response(error, extra={"checks": checks})
    return Readiness(checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(state: StateDep) -> Response:
    """Prometheus text exposition of the edge's metrics."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
