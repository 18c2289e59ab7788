"""The OpenAPI document tells the truth: the statuses each route answers, in the dialect of its
path, event streams as ``text/event-stream`` events, the configured limits as constraints.

The end-to-end conformance run (``tests/e2e/test_openapi_conformance.py``) checks the live edge
against the whole document; these pin the findings it was built on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

KEYED_PREFIXES = ("/api/", "/v1/")
BODY_ROUTES = ["/api/v1/chat", "/api/v1/search", "/api/v1/documents", "/v1/chat/completions"]


async def document(edge: Edge) -> dict[str, Any]:
    response = await edge.client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


async def test_every_keyed_route_declares_the_refusals_of_keys_and_load(edge: Edge) -> None:
    doc = await document(edge)
    keyed = [op for op in operations(doc) if op[0].startswith(KEYED_PREFIXES)]

    assert keyed
    for path, method, operation in keyed:
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert {"401", "403", "429", "500", "503"} <= responses.keys(), where
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True, where
        assert responses["429"]["headers"]["Retry-After"]["required"] is True, where
        assert "Retry-After" in responses["503"]["headers"], where


async def test_every_keyed_route_requires_the_bearer_scheme(edge: Edge) -> None:
    doc = await document(edge)

    assert doc["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "description": "An API key (BRUNO_API_KEYS or the keys file), sent as "
            "`Authorization: Bearer <key>`.",
            "scheme": "bearer",
        }
    }
    for path, method, operation in operations(doc):
        expected: list[dict[str, list[str]]] | None = (
            [{"bearer": []}] if path.startswith(KEYED_PREFIXES) else None
        )
        assert operation.get("security") == expected, f"{method.upper()} {path}"


async def test_errors_are_declared_in_the_dialect_of_their_path(edge: Edge) -> None:
    doc = await document(edge)

    for path, method, operation in operations(doc):
        for status, response in operation["responses"].items():
            if int(status) < 400 or "content" not in response:
                continue
            where = f"{method.upper()} {path} {status}"
            if path.startswith("/v1/"):
                assert status != "422", f"{where}: /v1 answers invalid requests with 400"
                expected = {"application/json": "ErrorResponse"}
            else:
                expected = {"application/problem+json": "Problem"}
            declared = {
                media: content["schema"]["$ref"].rsplit("/", 1)[-1]
                for media, content in response["content"].items()
            }
            assert declared == expected, where


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("body", [b'{"message": ', b"\x80{}"], ids=["truncated", "not-utf8"])
async def test_a_body_that_is_not_json_is_a_declared_error(
    edge: Edge, path: str, body: bytes
) -> None:
    response = await edge.client.post(
        path, content=body, headers={"content-type": "application/json"}
    )
    declared = (await document(edge))["paths"][path]["post"]["responses"]

    assert response.status_code in (400, 422)
    assert str(response.status_code) in declared


async def test_a_chat_stream_is_declared_as_the_events_it_sends(edge: Edge) -> None:
    await edge.ingest("Velero backs up the cluster every night.")
    streamed = await edge.client.post("/api/v1/chat", json={"message": "Backups?", "stream": True})
    content = (await document(edge))["paths"]["/api/v1/chat"]["post"]["responses"]["200"]["content"]

    events = content["text/event-stream"]["schema"]
    assert events["type"] == "object"  # one event, not the stream as a JSON string
    declared = {variant["properties"]["event"]["const"]: variant for variant in events["oneOf"]}
    sent = {name for name, _ in edge.events(streamed)}
    assert sent == {"token", "citations", "done"}
    assert sent <= declared.keys()
    assert declared["done"]["properties"]["data"] == {
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/components/schemas/ChatDone"},
    }
    assert declared["error"]["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/Problem"
    }


async def test_a_completion_stream_is_declared_as_chunks_ending_in_done(edge: Edge) -> None:
    content = (await document(edge))["paths"]["/v1/chat/completions"]["post"]["responses"]["200"][
        "content"
    ]

    data = content["text/event-stream"]["schema"]["properties"]["data"]
    kinds = data["anyOf"]
    assert {"const": "[DONE]"} in kinds
    chunk = next(kind for kind in kinds if "contentSchema" in kind)
    assert {"$ref": "#/components/schemas/ChatCompletionChunk"} in chunk["contentSchema"]["anyOf"]


async def test_configured_limits_are_schema_constraints(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_top_k=7, max_message_chars=99, max_document_bytes=5000)
    schemas = (await document(edge))["components"]["schemas"]

    for model in ("ChatRequest", "SearchRequest", "BrunoOptions"):
        top_k = schemas[model]["properties"]["top_k"]["anyOf"]
        assert {"type": "integer", "minimum": 1, "maximum": 7} in top_k, model
    assert schemas["ChatRequest"]["properties"]["message"]["maxLength"] == 99
    assert schemas["SearchRequest"]["properties"]["query"]["maxLength"] == 99
    assert schemas["DocumentIn"]["properties"]["text"]["maxLength"] == 5000
    assert "x-bruno-configured-limits" not in str(schemas)


@pytest.mark.parametrize(("top_k", "status"), [(2.0, 200), (2.5, 422), ("2", 422)])
async def test_top_k_is_any_json_number_without_a_fraction(
    edge: Edge, top_k: object, status: int
) -> None:
    response = await edge.client.post("/api/v1/search", json={"query": "backups", "top_k": top_k})

    assert response.status_code == status, response.text


async def test_every_schema_reference_resolves(edge: Edge) -> None:
    doc = await document(edge)
    schemas = doc["components"]["schemas"]

    for reference in set(references(doc)):
        assert reference.removeprefix("#/components/schemas/") in schemas, reference
