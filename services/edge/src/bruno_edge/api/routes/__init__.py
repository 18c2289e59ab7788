"""One router per resource; the ``/api`` ones go behind the API key in :mod:`bruno_edge.app`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_edge.schemas import Problem

# Each router carries the whole prefix itself (rather than inheriting it from an enclosing
# router) so a matched route's ``path`` is the full template the metrics label requests with.
API_PREFIX = "/api/v1"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route may answer with."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        for status in statuses
    }
