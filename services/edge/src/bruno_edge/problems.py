"""Every error the edge answers is ``application/problem+json`` (RFC 9457), never a stack trace.

Domain errors (:class:`bruno_core.BrunoError`, including those translated from gRPC statuses)
keep their own status; validation errors become 422 naming each bad field; routing errors
(404, 405) become ``about:blank`` problems; anything unexpected becomes a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bruno_core import BrunoError, Internal, InvalidInput, Unauthenticated
from bruno_core.errors import PROBLEM_CONTENT_TYPE

log = logging.getLogger(__name__)


class ProblemException(StarletteHTTPException):
    """Carries a :class:`BrunoError` through places where FastAPI only lets ``HTTPException``
    pass untouched (an error raised while the request body is read)."""

    def __init__(self, error: BrunoError) -> None:
        super().__init__(status_code=error.http_status, detail=error.detail)
        self.error = error


def problem_response(
    error: BrunoError,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The problem+json response for ``error``, with optional extension members."""
    body = error.problem()
    if extra:
        body.update(extra)
    all_headers = dict(headers or {})
    if isinstance(error, Unauthenticated):
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        body, status_code=error.http_status, headers=all_headers, media_type=PROBLEM_CONTENT_TYPE
    )


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def validation_detail(errors: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """A one-line summary and a per-field list of what is wrong, without echoing the input."""
    fields = [
        {"field": _field(error.get("loc", ())), "message": str(error.get("msg", "invalid"))}
        for error in errors
    ]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return summary or "the request is invalid", fields


async def _bruno_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrunoError)  # noqa: S101 - registered for BrunoError only
    if exc.http_status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "error": exc.detail})
    return problem_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    summary, fields = validation_detail(exc.errors())
    return problem_response(InvalidInput(summary), extra={"errors": fields})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if isinstance(exc, ProblemException):
        return problem_response(exc.error, headers=exc.headers)
    status = HTTPStatus(exc.status_code)
    detail = exc.detail if exc.detail != status.phrase else _default_detail(request, status)
    body = {"type": "about:blank", "title": status.phrase, "status": status.value, "detail": detail}
    headers = dict(exc.headers or {})
    if status is HTTPStatus.UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        body, status_code=status.value, headers=headers, media_type=PROBLEM_CONTENT_TYPE
    )


def _default_detail(request: Request, status: HTTPStatus) -> str:
    if status is HTTPStatus.NOT_FOUND:
        return f"no route matches {request.url.path}"
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        return f"{request.method} is not allowed on {request.url.path}"
    return status.description or status.phrase


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(Internal("the edge failed to answer; the cause is in its logs"))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error ``app`` answers a problem document."""
    app.add_exception_handler(BrunoError, _bruno_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
