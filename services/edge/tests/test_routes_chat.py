from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import grpc

from bruno_core.errors import PROBLEM_CONTENT_TYPE

if TYPE_CHECKING:
    from conftest import Edge

RUNBOOK = "To fix a crashloop restart the pod and check the logs of the pod."


async def test_chat_answers_with_citations_and_timings(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="runbooks/crashloop.md", title="Crashloop", source="docs/c.md")

    response = await edge.client.post("/api/v1/chat", json={"message": "restart the pod"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "conversation_id",
        "answer",
        "citations",
        "model",
        "usage",
        "timings_ms",
        "fallback",
    }
    assert body["answer"] == "Restart the pod [1]."
    assert body["model"] == "fake-llm"
    assert body["fallback"] is False
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 4}
    assert set(body["timings_ms"]) == {"retrieval_ms", "generation_ms", "ttft_ms", "total_ms"}
    assert body["timings_ms"]["total_ms"] >= body["timings_ms"]["retrieval_ms"]
    [citation] = body["citations"]
    assert citation == {
        "document_id": "runbooks/crashloop.md",
        "chunk_id": "runbooks/crashloop.md#0",
        "title": "Crashloop",
        "source": "docs/c.md",
        "score": 1.0,
        "text": RUNBOOK,
    }
    assert len(body["conversation_id"]) == 32


async def test_chat_sends_passages_with_markers_in_retrieval_order(edge: Edge) -> None:
    await edge.ingest("restart the pod", id="a")
    await edge.ingest("restart it", id="b")

    await edge.client.post("/api/v1/chat", json={"message": "restart the pod", "top_k": 2})

    [request] = edge.generation.requests
    assert request.question == "restart the pod"
    assert [(p.marker, p.document_id) for p in request.passages] == [(1, "a"), (2, "b")]
    assert edge.retrieval.searches[-1].top_k == 2


async def test_chat_uses_default_top_k_and_collection(edge: Edge) -> None:
    await edge.client.post("/api/v1/chat", json={"message": "anything"})

    search = edge.retrieval.searches[-1]
    assert (search.top_k, search.collection) == (edge.settings.default_top_k, "default")


async def test_chat_echoes_the_given_conversation_id(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/chat", json={"message": "hello", "conversation_id": "conv-42"}
    )

    assert response.json()["conversation_id"] == "conv-42"


async def test_streamed_chat_sends_citations_then_tokens_then_done(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    response = await edge.client.post(
        "/api/v1/chat", json={"message": "restart the pod", "stream": True}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = edge.events(response)
    names = [name for name, _ in events]
    assert names == ["citations", "token", "token", "token", "token", "done"]
    assert events[0][1][0]["document_id"] == "crashloop"
    assert "".join(data["text"] for name, data in events if name == "token") == (
        "Restart the pod [1]."
    )
    done = events[-1][1]
    assert set(done) == {"conversation_id", "model", "usage", "timings_ms", "fallback"}
    assert done["usage"]["completion_tokens"] == 4
    assert done["timings_ms"]["ttft_ms"] is not None


async def test_accept_event_stream_selects_streaming(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/chat", json={"message": "hello"}, headers={"Accept": "text/event-stream"}
    )

    assert [name for name, _ in edge.events(response)][-1] == "done"


async def test_explicit_stream_false_wins_over_accept_header(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/chat",
        json={"message": "hello", "stream": False},
        headers={"Accept": "text/event-stream"},
    )

    assert response.headers["content-type"] == "application/json"


async def test_failure_after_stream_start_ends_with_an_error_event(edge: Edge) -> None:
    edge.generation.fail_after = 2

    response = await edge.client.post("/api/v1/chat", json={"message": "hi", "stream": True})

    assert response.status_code == 200
    events = edge.events(response)
    assert [name for name, _ in events] == ["citations", "token", "token", "error"]
    problem = events[-1][1]
    assert problem["status"] == 503
    assert problem["detail"] == "the generation service is unavailable"


async def test_generation_stream_without_done_is_an_error_event(edge: Edge) -> None:
    edge.generation.skip_done = True

    response = await edge.client.post("/api/v1/chat", json={"message": "hi", "stream": True})

    name, problem = edge.events(response)[-1]
    assert (name, problem["status"]) == ("error", 500)


async def test_generation_failure_without_streaming_is_a_problem(edge: Edge) -> None:
    edge.generation.fail_after = 0

    response = await edge.client.post("/api/v1/chat", json={"message": "hi"})

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE


async def test_retrieval_unavailable_is_503_problem_without_internal_details(edge: Edge) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    response = await edge.client.post("/api/v1/chat", json={"message": "hi", "stream": True})

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["detail"] == "the retrieval service is unavailable"
    assert "10.0.0.7" not in response.text


async def test_client_disconnect_cancels_the_generation_call(edge: Edge) -> None:
    edge.generation.hang_after = 1
    disconnected = asyncio.Event()
    body = json.dumps({"message": "hi", "stream": True}).encode()
    request_sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if b"event: token" in message.get("body", b""):
            disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/chat",
        "raw_path": b"/api/v1/chat",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"edge.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("edge.test", 80),
    }

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.app(scope, receive, send)
        await edge.generation.cancelled.wait()

    assert disconnected.is_set()
