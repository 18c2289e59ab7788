"""The edge's OpenAPI document: FastAPI's, completed with what FastAPI cannot be told.

- The schemas that error bodies and event streams refer to by name (:mod:`bruno_edge.api.routes`
  declares them as references, so a problem document is ``application/problem+json`` only,
  never also ``application/json``).
- No 422 under ``/v1``: FastAPI declares one on every route with parameters, but the OpenAI
  dialect answers invalid requests with 400, which those routes declare.
- The API-key scheme (``bearer``) and, on every route behind
  :func:`~bruno_edge.api.deps.require_api_key`, the requirement of it: what an ``HTTPBearer``
  dependency would declare, without FastAPI solving one on every request.
- The limits an operator configures (``BRUNO_MAX_TOP_K``, ``BRUNO_MAX_MESSAGE_CHARS``,
  ``BRUNO_MAX_DOCUMENT_BYTES``), written into the schemas of the fields that a
  :func:`configured` marker names, as this edge enforces them.

    install_openapi(app, settings)   # app.openapi() now answers the completed document
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bruno_edge.api.deps import bearer_scheme, require_api_key
from bruno_edge.config import EdgeSettings
from bruno_edge.limits import Limits
from bruno_edge.openai_schemas import ChatCompletionChunk, ErrorResponse
from bruno_edge.problems import OPENAI_PREFIX
from bruno_edge.schemas import CONFIGURED_LIMITS, ChatDone, ChatToken, Problem

#: Models no route answers as a whole, but error bodies and event streams refer to.
REFERENCED_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    ErrorResponse,
    ChatToken,
    ChatDone,
    ChatCompletionChunk,
)
_FASTAPI_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"
#: The keys FastAPI writes first in an operation, before a security requirement.
_OPERATION_HEAD = ("tags", "summary", "description", "operationId", "deprecated")
_BOUNDED_TYPES = frozenset({"integer", "number", "string", "array"})


def install_openapi(app: FastAPI, settings: EdgeSettings) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    limits = Limits.from_settings(settings)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _add_key_requirements(document, app)
            _add_referenced_models(document)
            _drop_fastapi_validation_errors(document)
            _write_limits(document, limits)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_key_requirements(document: dict[str, Any], app: FastAPI) -> None:
    """Declare :data:`~bruno_edge.api.deps.bearer_scheme` and require it of each operation of a
    route that depends on :func:`~bruno_edge.api.deps.require_api_key`, where FastAPI writes a
    security dependency's requirement (after the operation's id and ``deprecated``)."""
    keyed = [
        route
        for route in app.routes
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and any(dependency.dependency is require_api_key for dependency in route.dependencies)
    ]
    if not keyed:
        return
    name = bearer_scheme.scheme_name
    for route in keyed:
        operations = document["paths"][route.path_format]
        for method in route.methods or ():
            operation = operations[method.lower()]
            head = {key: operation[key] for key in _OPERATION_HEAD if key in operation}
            operations[method.lower()] = {
                **head,
                "security": [*operation.get("security", []), {name: []}],
                **{
                    key: value
                    for key, value in operation.items()
                    if key not in head and key != "security"
                },
            }
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[name] = jsonable_encoder(bearer_scheme.model, by_alias=True, exclude_none=True)


def _add_referenced_models(document: dict[str, Any]) -> None:
    _, found = models_json_schema(
        [(model, "serialization") for model in REFERENCED_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in found.get("$defs", {}).items():
        schemas.setdefault(name, schema)


def _drop_fastapi_validation_errors(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        if path != OPENAI_PREFIX and not path.startswith(OPENAI_PREFIX + "/"):
            continue
        for operation in operations.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref") == _FASTAPI_VALIDATION_ERROR:
                del responses["422"]
    if _FASTAPI_VALIDATION_ERROR not in _references(document["paths"]):
        schemas = document["components"]["schemas"]
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def _references(node: Any) -> set[str]:
    """Every ``$ref`` within ``node``."""
    if isinstance(node, list):
        return set().union(*(_references(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
    return found.union(*(_references(value) for value in node.values()))


def _write_limits(node: Any, limits: Limits) -> None:
    """Replace each :data:`CONFIGURED_LIMITS` marker with the keywords it names, valued from
    ``limits``, on the schema itself or (an optional field) on its non-null alternatives."""
    if isinstance(node, list):
        for item in node:
            _write_limits(item, limits)
        return
    if not isinstance(node, dict):
        return
    marker = node.pop(CONFIGURED_LIMITS, None)
    if marker is not None:
        keywords = {keyword: getattr(limits, name) for keyword, name in marker.items()}
        targets = [node] if node.get("type") in _BOUNDED_TYPES else node.get("anyOf", [])
        for target in targets:
            if target.get("type") in _BOUNDED_TYPES:
                target.update(keywords)
    for value in node.values():
        _write_limits(value, limits)
