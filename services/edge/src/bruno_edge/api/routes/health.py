"""Probes and metrics, outside the API key: ``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bruno.generation.v1 import generation_pb2
from bruno_core import Unavailable
from bruno_edge.api.deps import DownstreamsDep, SettingsDep, StateDep
from bruno_edge.api.routes import problem_responses
from bruno_edge.clients import Downstreams
from bruno_edge.problems import problem_response
from bruno_edge.schemas import Health, Readiness

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

READY_TIMEOUT_SECONDS = 2.0
MODEL_MISSING = "MODEL_MISSING"


@router.get("/health")
async def health() -> Health:
    """Liveness: the process serves. Never depends on downstreams."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses=problem_responses(503),
)
async def ready(
    request: Request, downstreams: DownstreamsDep, settings: SettingsDep
) -> Readiness | JSONResponse:
    """Readiness: every downstream answers its gRPC health check with SERVING.

    When generation serves but its model is missing, the extractive fallback still answers:
    ``"status": "degraded"`` (200), or 503 with ``BRUNO_REQUIRE_MODEL=true``. The answer holds
    status words only; why the model is missing goes to the log.

    With retrieval's readers configured (``BRUNO_RETRIEVAL_READER_ADDR``) both roles are
    checked: ``retrieval`` (the writer) and ``retrieval-reader``. A writer down while readers
    serve is ``"degraded"`` (200): searches and chats answer, writes fail until it is back.
    """
    checks, model = await asyncio.gather(
        downstreams.health(timeout_seconds=READY_TIMEOUT_SECONDS), _model_problem(downstreams)
    )
    if model is not None:
        # Generation's explanation can name internal addresses ("Ollama is not reachable at
        # http://10.…") and this route needs no key: it goes to the log, not the answer, once
        # per explanation rather than at every probe.
        if model != getattr(request.app.state, "model_problem", None):
            log.warning("generation's model is not available", extra={"detail": model})
        request.app.state.model_problem = model
        if checks.get("generation") == "SERVING":
            checks["generation"] = MODEL_MISSING
    else:
        request.app.state.model_problem = None
    degraded = []
    if model is not None:
        degraded.append(f"generation ({MODEL_MISSING}); answers come from the extractive fallback")
    writer = checks.get("retrieval", "")
    if checks.get("retrieval-reader") == "SERVING" and writer != "SERVING":
        degraded.append(f"retrieval writer ({writer}); searches answer, writes fail")
    failing = [
        f"{name} ({status})"
        for name, status in checks.items()
        if status != "SERVING"
        and (status != MODEL_MISSING or settings.require_model)
        and not (name == "retrieval" and checks.get("retrieval-reader") == "SERVING")
    ]
    if failing:
        detail = "not ready: " + ", ".join(failing)
        return problem_response(Unavailable(detail), extra={"checks": checks})
    if degraded:
        return Readiness(status="degraded", checks=checks, detail="; ".join(degraded))
    return Readiness(checks=checks)


async def _model_problem(downstreams: Downstreams) -> str | None:
    """Why generation's model cannot answer, or None when it can (or generation is down,
    which its health check reports)."""
    try:
        info = await downstreams.generation.Info(
            generation_pb2.InfoRequest(), timeout=READY_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError:
        return None
    if info.model_available:
        return None
    return info.detail or f"the model {info.model} is not available"


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(state: StateDep) -> Response:
    """Prometheus text exposition of the edge's metrics."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
