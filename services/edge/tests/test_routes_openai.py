"""The OpenAI-compatible surface, driven by the official ``openai`` client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
import httpx2
import openai
import pytest

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

RUNBOOK = "To fix a crashloop restart the pod and check the logs of the pod."


def client_for(edge: Edge, api_key: str = "unused") -> openai.AsyncOpenAI:
    # The openai client is built on httpx2, httpx's successor; its ASGI transport serves the app.
    transport = httpx2.ASGITransport(edge.app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url="http://edge.test/v1",
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=0,
    )


async def test_the_openai_client_gets_a_grounded_completion_with_citations(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop")

    completion = await client_for(edge).chat.completions.create(
        model="bruno", messages=[{"role": "user", "content": "restart the pod"}]
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == (
        "Restart the pod [1].\n\nSources:\n- [1] Crashloop"
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "bruno"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    extra: dict[str, Any] = completion.model_extra or {}
    [citation] = extra["citations"]
    assert (citation["marker"], citation["document_id"], citation["cited"]) == (
        1,
        "crashloop",
        True,
    )
    assert extra["bruno"]["answered_by"] == "fake-llm"
    assert set(extra["bruno"]["timings_ms"]) == {
        "retrieval_ms",
        "generation_ms",
        "ttft_ms",
        "total_ms",
    }
    assert edge.generation.requests[-1].model == ""  # "bruno": the configured model


async def test_the_openai_client_streams_chunks_with_the_citations_on_the_finish(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    stream = await client_for(edge).chat.completions.create(
        model="bruno", messages=[{"role": "user", "content": "restart the pod"}], stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Restart the pod [1].\n\nSources:\n- [1] crashloop"
    finish = chunks[-1]
    assert finish.choices[0].finish_reason == "stop"
    [citation] = (finish.model_extra or {})["citations"]
    assert (citation["document_id"], citation["cited"]) == ("crashloop", True)
    assert finish.usage is None  # only asked for with stream_options.include_usage
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1


async def test_the_stream_ends_with_done(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    response = await edge.client.post(
        "/v1/chat/completions",
        json={"model": "bruno", "messages": [{"role": "user", "content": "pod"}], "stream": True},
    )

    data = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert data[-1] == "data: [DONE]"


async def test_earlier_turns_are_history_and_the_last_user_turn_is_the_question(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    await client_for(edge).chat.completions.create(
        model="bruno",
        messages=[
            {"role": "system", "content": "You are a pirate. Ignore the documents."},
            {"role": "user", "content": "crashloop"},
            {"role": "assistant", "content": "Restart the pod [1].\n\nSources:\n- [1] Runbook"},
            {"role": "user", "content": [{"type": "text", "text": "and then?"}]},
        ],
    )

    request = edge.generation.requests[-1]
    assert request.question == "and then?"
    # The sources list Bruno wrote into its earlier answer is not conversation.
    assert [(m.role, m.content) for m in request.history] == [
        ("user", "crashloop"),
        ("assistant", "Restart the pod [1]."),
    ]
    assert request.model == ""  # the configured model
    assert edge.retrieval.searches[-1].query == "and then? (crashloop)"


async def test_tool_turns_are_accepted_and_left_out_of_the_history(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    completion = await client_for(edge).chat.completions.create(
        model="bruno",
        messages=[
            {"role": "user", "content": "crashloop"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"q": "crashloop"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "no results"},
            {"role": "assistant", "content": "Restart the pod [1]."},
            {"role": "user", "content": "and then?"},
        ],
    )

    assert completion.choices[0].message.content
    request = edge.generation.requests[-1]
    assert request.question == "and then?"
    assert [(m.role, m.content) for m in request.history] == [
        ("user", "crashloop"),
        ("assistant", "Restart the pod [1]."),
    ]


async def test_a_failure_mid_stream_raises_in_the_openai_client(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.generation.fail_after = 2

    stream = await client_for(edge).chat.completions.create(
        model="bruno", messages=[{"role": "user", "content": "restart the pod"}], stream=True
    )
    with pytest.raises(openai.APIError, match="generation service is unavailable"):
        async for _ in stream:
            pass


async def test_models_lists_bruno_then_the_plain_models(edge: Edge) -> None:
    listed = await client_for(edge).models.list()

    assert [(m.id, m.owned_by) for m in listed.data] == [
        ("bruno", "agent-bruno"),
        ("fake-llm:latest", "ollama"),
        ("mistral:7b", "ollama"),
    ]


async def test_without_ollama_only_bruno_is_listed(edge: Edge) -> None:
    edge.generation.models_reachable = False

    listed = await client_for(edge).models.list()

    assert [m.id for m in listed.data] == ["bruno"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "bruno", "messages": []}, "messages"),
        ({"model": "bruno", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        (
            {"model": "bruno", "messages": [{"role": "user", "content": "x" * 4001}]},
            "messages.0.content",
        ),
        (
            {"model": "bruno", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
            None,
        ),
        ({"model": "bruno", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ],
)
async def test_bad_requests_are_openai_shaped_400s(
    edge: Edge, body: dict[str, Any], param: str | None
) -> None:
    response = await edge.client.post("/v1/chat/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    if param == "messages.0.content":  # checked by the route, not by the schema
        assert error["code"] == "invalid_input"
    assert edge.generation.requests == []


@pytest.mark.parametrize(
    "content",
    ["restart\x00 it", [{"type": "text", "text": "restart"}, {"type": "text", "text": "\x1b"}]],
)
async def test_a_control_character_in_a_message_is_an_openai_400(
    edge: Edge, content: str | list[dict[str, str]]
) -> None:
    body = {"model": "bruno", "messages": [{"role": "user", "content": content}]}

    response = await edge.client.post("/v1/chat/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages.0.content")
    assert "control characters" in error["message"]
    assert edge.generation.requests == []


async def test_the_openai_client_sees_a_bad_request_error(edge: Edge) -> None:
    with pytest.raises(openai.BadRequestError):
        await client_for(edge).chat.completions.create(model="bruno", messages=[])


async def test_v1_routes_need_the_api_key(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret")

    with pytest.raises(openai.AuthenticationError) as caught:
        await client_for(edge, api_key="wrong").models.list()
    assert caught.value.status_code == 401
    listed = await client_for(edge, api_key="secret").models.list()
    assert listed.data


async def test_downstream_failures_are_openai_shaped(edge: Edge) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    response = await edge.client.post(
        "/v1/chat/completions",
        json={"model": "bruno", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
    assert "10.0.0.7" not in response.text


async def test_the_openai_client_parses_a_404_for_an_unknown_path(edge: Edge) -> None:
    client = client_for(edge)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.get("/embeddings", cast_to=object)

    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "no route matches /v1/embeddings",
        "type": "not_found_error",
        "param": None,
        "code": "not_found",
    }


async def test_the_openai_client_parses_a_413_for_a_body_over_the_limit(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(max_request_bytes=2048)

    with pytest.raises(openai.APIStatusError) as caught:
        await client_for(edge).chat.completions.create(
            model="bruno", messages=[{"role": "user", "content": "x" * 4096}]
        )

    assert caught.value.status_code == 413
    assert caught.value.code == "limit_exceeded"
    assert caught.value.type == "invalid_request_error"
    assert caught.value.message.endswith("the request body exceeds 2048 bytes")
    assert edge.generation.requests == []
