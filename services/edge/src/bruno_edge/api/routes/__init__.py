"""One router per resource; the ``/api`` ones go behind the API key in :mod:`bruno_edge.app`.

Also what routes declare they answer besides their own model, for the OpenAPI document: errors
in the dialect of their path (:func:`problem_responses` under ``/api``,
:func:`openai_error_responses` under ``/v1``), with the headers that come with them, and event
streams (:data:`CHAT_EVENTS`, :data:`COMPLETION_EVENTS`). The schemas they refer to by name are
added to the document by :mod:`bruno_edge.openapi`.

    @router.get("/things", responses=problem_responses(401, 403, 429, 503))
"""

from __future__ import annotations

from typing import Any

from bruno_core.errors import PROBLEM_CONTENT_TYPE

# Each router carries the whole prefix itself (rather than inheriting it from an enclosing
# router) so a matched route's ``path`` is the full template the metrics label requests with.
API_PREFIX = "/api/v1"

# nginx answers 499 when the client closed the connection first; nobody reads it here either.
CLIENT_CLOSED_REQUEST = 499

_WHY = {
    400: "The body cannot be read: not UTF-8 text, or malformed multipart data.",
    401: "No API key, or one that is not valid.",
    403: "The API key lacks the scope this route needs.",
    404: "Not found, or outside the API key's collections (worded as if it did not exist).",
    409: "The collection has to be rebuilt first (`bruno reindex`): it was built with another "
    "embedding model, or before metadata filters.",
    413: "Too large: the request body (`BRUNO_MAX_REQUEST_BYTES`), or what a service accepts.",
    415: "A file of a type that cannot be ingested.",
    422: "Malformed JSON, or a parameter or field that breaks its schema or a configured limit.",
    429: "Too many requests or concurrent chats for this key, or too many failed keys from this "
    "address.",
    500: "The edge or a service failed; the cause is in its logs.",
    503: "The edge sheds load or is stopping (both with `Retry-After`), or a service is down.",
    504: "A service did not answer in time.",
}
# The OpenAI dialect answers every invalid request with 400, as OpenAI does.
_OPENAI_WHY = {
    **_WHY,
    400: "Malformed JSON, a field that breaks its schema or a limit, or a parameter Agent Bruno "
    "does not support (named in `param`).",
}
_CLIENT_CLOSED = {
    "description": "The client closed the connection before the answer was ready (no body; "
    "as nginx logs it, nobody reads it)."
}

_RETRY_AFTER = {"type": "integer", "minimum": 1}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send an API key as `Authorization: Bearer <key>`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds until the key (or address) may ask again.",
            "required": True,
            "schema": _RETRY_AFTER,
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait, when the edge shed the request or is stopping.",
            "required": False,
            "schema": _RETRY_AFTER,
        }
    },
}


def component(name: str) -> dict[str, str]:
    """A reference to the schema ``name`` of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(
    statuses: tuple[int, ...], media_type: str, schema: str, why: dict[int, str]
) -> dict[int | str, dict[str, Any]]:
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == CLIENT_CLOSED_REQUEST:
            declared[status] = _CLIENT_CLOSED
            continue
        entry: dict[str, Any] = {
            "description": why[status],
            "content": {media_type: {"schema": component(schema)}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        declared[status] = entry
    return declared


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route may answer with."""
    return _errors(statuses, PROBLEM_CONTENT_TYPE, "Problem", _WHY)


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the OpenAI error objects a ``/v1`` route may answer with."""
    return _errors(statuses, "application/json", "ErrorResponse", _OPENAI_WHY)


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"contentMediaType": "application/json", "contentSchema": schema}


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {"event": {"const": name}, "data": _json_data(data)}}


# An event stream's schema describes one event, as OpenAPI 3.2's `itemSchema` does (and as
# readers of 3.1 documents, the version FastAPI writes, take a `text/event-stream` schema).
_ONE_EVENT = (
    "One server-sent event (its `event` and `data` fields); `data` is JSON of the shape its "
    "`event` names. Comment lines keep the connection alive."
)

#: The events of a streamed ``POST /api/v1/chat``.
CHAT_EVENTS: dict[str, Any] = {
    "type": "object",
    "description": _ONE_EVENT,
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["token", "citations", "done", "error"]},
        "data": {"type": "string"},
    },
    "oneOf": [
        _event("token", component("ChatToken")),
        _event("citations", {"type": "array", "items": component("Citation")}),
        _event("done", component("ChatDone")),
        _event("error", component("Problem")),
    ],
}

#: The events of a streamed ``POST /v1/chat/completions``: unnamed, as OpenAI sends them.
COMPLETION_EVENTS: dict[str, Any] = {
    "type": "object",
    "description": "One server-sent event: a `chat.completion.chunk`, an error object (the "
    "stream then ends), or the closing `[DONE]`.",
    "required": ["data"],
    "properties": {
        "event": {"const": "message", "description": "Unnamed events (`message`)."},
        "data": {
            "type": "string",
            "anyOf": [
                {"const": "[DONE]"},
                _json_data(
                    {"anyOf": [component("ChatCompletionChunk"), component("ErrorResponse")]}
                ),
            ],
        },
    },
}


def event_stream(events: dict[str, Any]) -> dict[str, Any]:
    """The ``content`` entry of a response that may be an event stream of ``events``."""
    return {"text/event-stream": {"schema": events}}
