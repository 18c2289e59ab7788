from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from bruno_edge.limits import current_limits

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory


async def test_body_over_the_limit_by_content_length_is_413(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_request_bytes=2048)

    response = await edge.client.post(
        "/api/v1/documents", json={"text": "x" * 4096}, headers=edge.auth
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the request body exceeds 2048 bytes"
    assert edge.retrieval.documents == {}


async def streamed_json(head: bytes, tail: bytes) -> AsyncIterator[bytes]:
    """A JSON body of 5 KiB sent in chunks, without Content-Length: ``head``, a long string
    value, ``tail``."""
    yield head
    for _ in range(10):
        yield b"x" * 512
    yield tail


async def test_streamed_body_over_the_limit_is_413(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_request_bytes=2048)

    response = await edge.client.post(
        "/api/v1/documents",
        content=streamed_json(b'{"text": "', b'"}'),
        headers={"content-type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["title"] == "Limit exceeded"
    assert edge.retrieval.documents == {}


async def test_streamed_body_under_the_limit_is_accepted(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_request_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        yield b"x" * 1000
        yield b'"}'

    response = await edge.client.post(
        "/api/v1/documents", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "body.message"),
        ({"message": " \n\t "}, "body.message"),
        ({"message": "x" * 4001}, "body.message"),
        ({"message": "restore\x00the volume"}, "body.message"),
        ({"message": "restore \x1b[31mnow"}, "body.message"),
        ({"message": "restore \x85now"}, "body.message"),
        ({"message": "hi", "top_k": 0}, "body.top_k"),
        ({"message": "hi", "top_k": 51}, "body.top_k"),
        ({"message": "hi", "top_k": "5"}, "body.top_k"),
        ({"message": "hi", "temperature": 0.2}, "body.temperature"),
        ({"message": "hi", "collection": "Not-Lower"}, "body.collection"),
        ({"message": "hi", "collection": "x" * 64}, "body.collection"),
        ({"message": "hi", "conversation_id": "a b"}, "body.conversation_id"),
        ({}, "body.message"),
    ],
)
async def test_invalid_chat_requests_are_422_problems_naming_the_field(
    edge: Edge, body: dict[str, Any], field: str
) -> None:
    response = await edge.client.post("/api/v1/chat", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["title"], problem["status"]) == ("Invalid input", 422)
    assert field in problem["detail"]
    assert field in [error["field"] for error in problem["errors"]]
    assert edge.generation.requests == []


async def test_message_limit_follows_the_settings(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_message_chars=10)

    too_long = await edge.client.post("/api/v1/chat", json={"message": "x" * 11})
    just_right = await edge.client.post("/api/v1/chat", json={"message": "x" * 10})

    assert too_long.status_code == 422
    assert "at most 10 characters" in too_long.json()["detail"]
    assert just_right.status_code == 200


async def test_top_k_limit_follows_the_settings(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_top_k=3, default_top_k=2)

    response = await edge.client.post("/api/v1/search", json={"query": "q", "top_k": 4})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "body.text"),
        ({"text": "   "}, "body.text"),
        ({"text": "é" * 600}, "body.text"),  # 1200 bytes in UTF-8, over the 1000 allowed
        ({"text": "t", "id": "has space"}, "body.id"),
        ({"text": "t", "id": "x" * 201}, "body.id"),
        ({"text": "t", "metadata": {f"k{i}": "v" for i in range(33)}}, "body.metadata"),
        ({"text": "t", "metadata": {"k" * 65: "v"}}, "body.metadata"),
        ({"text": "t", "metadata": {"k": "v" * 1025}}, "body.metadata.k"),
        ({"text": "t", "metadata": {"k": 1}}, "body.metadata.k"),
        ({"text": "t", "title": "x" * 501}, "body.title"),
        ({"text": "backup\x00volume"}, "body.text"),
        ({"text": "t", "title": "Restore\x07"}, "body.title"),
        ({"text": "t", "source": "runbooks/\x7frestore.md"}, "body.source"),
        ({"text": "t", "metadata": {"k": "v\x00"}}, "body.metadata.k"),
        ({"text": "t", "metadata": {"k\x01": "v"}}, "body.metadata"),
        ({"text": "t", "tags": []}, "body.tags"),
    ],
)
async def test_invalid_documents_are_422_problems(
    edge_factory: EdgeFactory, body: dict[str, Any], field: str
) -> None:
    edge = await edge_factory(max_document_bytes=1000)

    response = await edge.client.post("/api/v1/documents", json=body)

    assert response.status_code == 422
    assert any(e["field"].startswith(field) for e in response.json()["errors"])
    assert edge.retrieval.documents == {}


async def test_a_control_character_is_named_in_the_422(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/chat", json={"message": "restore\x00the volume"})

    assert "U+0000 is at position 7" in response.json()["detail"]


async def test_tabs_and_line_breaks_are_text(edge: Edge) -> None:
    text = "# Restore\r\n\r\nStep\tCommand\n1\tvelero restore create\n"

    document = await edge.client.post("/api/v1/documents", json={"text": text, "title": "A\tB"})
    chat = await edge.client.post("/api/v1/chat", json={"message": "how do I\n\trestore?"})

    assert (document.status_code, chat.status_code) == (201, 200)
    assert [doc.text for doc in edge.retrieval.documents.values()] == [text]


async def test_malformed_json_is_a_422_problem(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/chat", content=b'{"message": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_limits_outside_a_request_are_the_defaults() -> None:
    assert current_limits().max_message_chars == 4000
    assert current_limits().max_top_k == 50


async def test_body_over_the_limit_under_v1_is_an_openai_413(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_request_bytes=2048)
    body = {"model": "bruno", "messages": [{"role": "user", "content": "x" * 4096}]}

    response = await edge.client.post("/v1/chat/completions", json=body)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": "the request body exceeds 2048 bytes",
            "type": "invalid_request_error",
            "param": None,
            "code": "limit_exceeded",
        }
    }
    assert edge.generation.requests == []


async def test_streamed_body_over_the_limit_under_v1_is_an_openai_413(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(max_request_bytes=2048)
    head = b'{"model": "bruno", "messages": [{"role": "user", "content": "'

    response = await edge.client.post(
        "/v1/chat/completions",
        content=streamed_json(head, b'"}]}'),
        headers={"content-type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["message"] == "the request body exceeds 2048 bytes"
    assert edge.generation.requests == []
