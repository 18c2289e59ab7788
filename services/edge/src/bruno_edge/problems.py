"""Every error the edge answers is a document, never a stack trace, in the dialect of its path.

``/api`` and the rest speak ``application/problem+json`` (RFC 9457); everything under ``/v1``,
the OpenAI-compatible surface, speaks OpenAI error objects
(``{"error": {"message", "type", "param", "code"}}``), so OpenAI clients parse even a 404 or a
413 into their own exceptions. Domain errors (:class:`bruno_core.BrunoError`, including those
translated from gRPC statuses) keep their own status; validation errors become 422 naming each
bad field (400 in the OpenAI dialect, as OpenAI answers); routing errors (404, 405, whose
``Allow`` names every method of the path) become ``about:blank`` problems; anything unexpected
becomes a bare 500.
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
from starlette.routing import Match

from bruno_core import BrunoError, Internal, InvalidInput
from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_edge.refusals import retry_after_headers

log = logging.getLogger(__name__)

#: Paths under this prefix answer errors as OpenAI error objects.
OPENAI_PREFIX = "/v1"

_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ProblemException(StarletteHTTPException):
    """Carries a :class:`BrunoError` through places where FastAPI only lets ``HTTPException``
    pass untouched (an error raised while the request body is read)."""

    def __init__(self, error: BrunoError) -> None:
        super().__init__(status_code=error.http_status, detail=error.detail)
        self.error = error


def _with_challenge(status: int, headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers``, plus the ``WWW-Authenticate`` challenge every 401 must carry (RFC 9110)."""
    all_headers = dict(headers or {})
    if status == HTTPStatus.UNAUTHORIZED:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return all_headers


def speaks_openai(path: str) -> bool:
    """Whether errors on ``path`` are OpenAI error objects rather than problem documents."""
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


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
    return JSONResponse(
        body,
        status_code=error.http_status,
        headers=_with_challenge(error.http_status, headers),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _openai_status(status: int) -> int:
    return 400 if status == 422 else status  # OpenAI answers invalid requests with 400


def openai_error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI error object: ``{"error": {"message", "type", "param", "code"}}`` (the
    ``ErrorResponse`` of :mod:`bruno_edge.openai_schemas`, built plainly: that module imports
    the request models, which import this one through :mod:`bruno_edge.limits`)."""
    status = _openai_status(status)
    default_type = "server_error" if status >= 500 else "invalid_request_error"
    kind = _OPENAI_ERROR_TYPES.get(status, default_type)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-shaped error response (422 becomes 400, as OpenAI answers)."""
    body = openai_error_body(status, message, param=param, code=code)
    return JSONResponse(
        body, status_code=_openai_status(status), headers=_with_challenge(status, headers)
    )


def openai_code(error: BrunoError) -> str:
    """The OpenAI ``code`` of a domain error: its slug, the way OpenAI spells codes."""
    return error.slug.replace("-", "_")


def error_response(
    path: str,
    error: BrunoError,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """``error`` in the dialect of ``path``; ``extra`` members go to problem documents only.

    An error that names a request parameter (a ``param`` attribute) names it as OpenAI's
    ``param``; one that says when to come back (a refusal's ``retry_after``) sends
    ``Retry-After``.
    """
    headers = {**retry_after_headers(error), **(headers or {})}
    if speaks_openai(path):
        param = getattr(error, "param", None)
        return openai_error(
            error.http_status,
            error.detail,
            param=param if isinstance(param, str) else None,
            code=openai_code(error),
            headers=headers,
        )
    return problem_response(error, extra=extra, headers=headers)


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


def _openai_validation_error(errors: Sequence[Any]) -> JSONResponse:
    """The first bad field as the OpenAI ``param`` (without the ``body.`` prefix)."""
    first = errors[0] if errors else {}
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    message = str(first.get("msg", "the request is invalid"))
    return openai_error(400, f"{param}: {message}" if param else message, param=param)


async def _bruno_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrunoError)  # noqa: S101 - registered for BrunoError only
    if exc.http_status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "error": exc.detail})
    return error_response(request.url.path, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    if speaks_openai(request.url.path):
        return _openai_validation_error(exc.errors())
    summary, fields = validation_detail(exc.errors())
    return problem_response(InvalidInput(summary), extra={"errors": fields})


#: The methods a 405's ``Allow`` may name (RFC 9110's, less CONNECT and TRACE, plus PATCH).
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers on the request's path, for ``Allow``.

    Starlette's 405 names only the methods of the first route whose path matched, and a path
    often has one route per method (``GET`` and ``DELETE`` of a conversation); asking the
    routes about each method finds them all, however routers are nested.
    """
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    path = request.url.path
    if isinstance(exc, ProblemException):
        return error_response(path, exc.error, headers=exc.headers)
    status = HTTPStatus(exc.status_code)
    headers = exc.headers
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    detail = exc.detail if exc.detail != status.phrase else _default_detail(request, status)
    if speaks_openai(path):
        return openai_error(status.value, detail, code=status.name.lower(), headers=headers)
    body = {"type": "about:blank", "title": status.phrase, "status": status.value, "detail": detail}
    return JSONResponse(
        body,
        status_code=status.value,
        headers=_with_challenge(status.value, headers),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _default_detail(request: Request, status: HTTPStatus) -> str:
    if status is HTTPStatus.NOT_FOUND:
        return f"no route matches {request.url.path}"
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        return f"{request.method} is not allowed on {request.url.path}"
    return status.description or status.phrase


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    failed = Internal("the edge failed to answer; the cause is in its logs")
    return error_response(request.url.path, failed)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error ``app`` answers a problem document (an OpenAI error under ``/v1``)."""
    app.add_exception_handler(BrunoError, _bruno_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
