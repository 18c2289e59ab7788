from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_testing.asgi import http_scope

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

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
        "passages_used",
        "passages_dropped",
        "cited",
        "finish_reason",
        "search_query",
    }
    assert (body["passages_used"], body["passages_dropped"], body["cited"]) == (1, 0, [1])
    assert body["finish_reason"] == "stop"
    assert body["answer"] == "Restart the pod [1]."
    assert body["model"] == "fake-llm"
    assert body["fallback"] is False
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 4}
    assert set(body["timings_ms"]) == {"retrieval_ms", "generation_ms", "ttft_ms", "total_ms"}
    assert body["timings_ms"]["total_ms"] >= body["timings_ms"]["retrieval_ms"]
    [citation] = body["citations"]
    assert citation == {
        "marker": 1,
        "cited": True,
        "document_id": "runbooks/crashloop.md",
        "chunk_id": "runbooks/crashloop.md:0",
        "title": "Crashloop",
        "source": "docs/c.md",
        "page": None,
        "link": None,
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


async def test_an_unknown_conversation_id_is_404(edge: Edge) -> None:
    response = await edge.client.post(
        "/api/v1/chat", json={"message": "hello", "conversation_id": "conv-42"}
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert edge.generation.requests == []


async def test_a_follow_up_continues_the_conversation_and_is_rewritten(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    first = (await edge.client.post("/api/v1/chat", json={"message": "crashloop"})).json()

    second = await edge.client.post(
        "/api/v1/chat",
        json={"message": "restart it?", "conversation_id": first["conversation_id"]},
    )

    assert second.status_code == 200
    body = second.json()
    assert body["conversation_id"] == first["conversation_id"]
    assert body["search_query"] == "restart it? (crashloop)"
    assert [m.content for m in edge.generation.requests[-1].history] == [
        "crashloop",
        "Restart the pod [1].",
    ]
    stored = await edge.client.get(f"/api/v1/conversations/{body['conversation_id']}")
    assert stored.status_code == 200
    turns = stored.json()["turns"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "crashloop"),
        ("assistant", "Restart the pod [1]."),
        ("user", "restart it?"),
        ("assistant", "Restart the pod [1]."),
    ]
    assert turns[1]["chunk_ids"] == ["crashloop:0"]
    assert turns[0]["created_at"] is not None


async def test_a_deleted_conversation_is_gone(edge: Edge) -> None:
    first = (await edge.client.post("/api/v1/chat", json={"message": "hi"})).json()
    path = f"/api/v1/conversations/{first['conversation_id']}"

    assert (await edge.client.delete(path)).status_code == 204
    assert (await edge.client.get(path)).status_code == 404
    assert (await edge.client.delete(path)).status_code == 404
    follow_up = await edge.client.post(
        "/api/v1/chat", json={"message": "hi", "conversation_id": first["conversation_id"]}
    )
    assert follow_up.status_code == 404


async def test_a_malformed_conversation_id_is_422(edge: Edge) -> None:
    assert (await edge.client.get("/api/v1/conversations/no%20spaces")).status_code == 422


@pytest.mark.parametrize("conversation_id", ["..", "."])
async def test_a_conversation_id_of_dots_is_422_wherever_it_is_given(
    edge: Edge, conversation_id: str
) -> None:
    encoded = conversation_id.replace(".", "%2E")
    chat = await edge.client.post(
        "/api/v1/chat", json={"message": "hi", "conversation_id": conversation_id}
    )
    read = await edge.client.get(f"/api/v1/conversations/{encoded}")
    forget = await edge.client.delete(f"/api/v1/conversations/{encoded}")

    assert (chat.status_code, read.status_code, forget.status_code) == (422, 422, 422)


async def test_nothing_relevant_means_i_dont_know_without_asking_the_model(edge: Edge) -> None:
    response = await edge.client.post("/api/v1/chat", json={"message": "what is love?"})

    body = response.json()
    assert body["answer"].startswith("I don't know")
    assert (body["citations"], body["fallback"], body["model"]) == ([], True, "none")
    assert edge.generation.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {"message": ""},
        {"message": "   "},
        {"message": "x" * 4001},
        {"message": "hi", "stream": "yes"},
        {"message": "hi", "conversation_id": "has spaces"},
        {"message": "hi", "role": "system"},
        {},
    ],
)
async def test_bad_chat_requests_are_4xx_problems(edge: Edge, body: dict[str, Any]) -> None:
    response = await edge.client.post("/api/v1/chat", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert edge.generation.requests == []


async def test_streams_send_heartbeat_comments_while_the_model_is_silent(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(sse_heartbeat_seconds=0.05)
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.generation.hang_after = 0
    pinged = asyncio.Event()
    seen = b""

    async def on_send(message: MutableMapping[str, Any]) -> None:
        nonlocal seen
        seen += message.get("body", b"")
        if b": ping" in seen:
            pinged.set()

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await call_asgi(edge, {"message": "restart the pod", "stream": True}, on_send, pinged)
    assert seen.startswith(b": ping")  # the stream is open before the model says a word


async def test_streamed_chat_sends_tokens_then_citations_marked_cited_then_done(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    response = await edge.client.post(
        "/api/v1/chat", json={"message": "restart the pod", "stream": True}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = edge.events(response)
    names = [name for name, _ in events]
    assert names == ["token", "token", "token", "token", "citations", "done"]
    [citation] = events[-2][1]
    assert (citation["document_id"], citation["cited"]) == ("crashloop", True)
    assert "".join(data["text"] for name, data in events if name == "token") == (
        "Restart the pod [1]."
    )
    done = events[-1][1]
    assert set(done) == {
        "conversation_id",
        "model",
        "usage",
        "timings_ms",
        "fallback",
        "passages_used",
        "passages_dropped",
        "cited",
        "finish_reason",
        "search_query",
    }
    assert done["cited"] == [1]
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
    await edge.ingest("hi there", id="greeting")
    edge.generation.fail_after = 2

    response = await edge.client.post("/api/v1/chat", json={"message": "hi", "stream": True})

    assert response.status_code == 200
    events = edge.events(response)
    assert [name for name, _ in events] == ["token", "token", "error"]
    problem = events[-1][1]
    assert problem["status"] == 503
    assert problem["detail"] == "the generation service is unavailable"


async def test_generation_stream_without_done_is_an_error_event(edge: Edge) -> None:
    await edge.ingest("hi there", id="greeting")
    edge.generation.skip_done = True

    response = await edge.client.post("/api/v1/chat", json={"message": "hi", "stream": True})

    name, problem = edge.events(response)[-1]
    assert (name, problem["status"]) == ("error", 500)


async def test_generation_failure_without_streaming_is_a_problem(edge: Edge) -> None:
    await edge.ingest("hi there", id="greeting")
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
    await edge.ingest("hi there", id="greeting")
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

    scope = http_scope("POST", "/api/v1/chat")

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.app(scope, receive, send)
        await edge.generation.cancelled.wait()

    assert disconnected.is_set()


async def test_a_client_leaving_a_plain_json_chat_cancels_the_generation_call(edge: Edge) -> None:
    await edge.ingest("hi there", id="greeting")
    edge.generation.hang_after = 1
    body = json.dumps({"message": "hi"}).encode()
    request_sent = False
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0.05)  # the client waits a moment, then hangs up
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", "/api/v1/chat")

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.app(scope, receive, send)
        await edge.generation.cancelled.wait()


async def call_asgi(
    edge: Edge,
    body: dict[str, Any],
    on_send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    hang_up: asyncio.Event,
) -> None:
    """POST ``body`` to /api/v1/chat over raw ASGI; the client hangs up when ``hang_up`` is set
    (httpx's ASGI transport would wait for the whole response)."""
    payload = json.dumps(body).encode()
    request_sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    scope = http_scope("POST", "/api/v1/chat")
    await edge.app(scope, receive, on_send)
