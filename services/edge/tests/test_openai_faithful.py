"""The OpenAI surface does what the request says, driven by the official ``openai`` client:
parameters reach generation, what Bruno cannot do is refused by name, plain models answer
without retrieval, sources are written into the answer unless switched off."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from bruno.generation.v1 import generation_pb2

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

RUNBOOK = "To fix a crashloop restart the pod and check the logs of the pod."
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "restart the pod"}]


def client_for(edge: Edge) -> openai.AsyncOpenAI:
    transport = httpx2.ASGITransport(edge.app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        api_key="unused",
        base_url="http://edge.test/v1",
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=0,
    )


async def test_sampling_parameters_reach_generation(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    schema = {"type": "object", "properties": {"steps": {"type": "array"}}}

    await client_for(edge).chat.completions.create(
        model="bruno",
        messages=ASK,
        temperature=0.5,
        top_p=0.9,
        max_completion_tokens=64,
        stop="###",
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        extra_body={
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": schema},
            }
        },
    )

    options = edge.generation.requests[-1].options
    assert options.temperature == pytest.approx(0.5)
    assert options.top_p == pytest.approx(0.9)
    assert (options.max_tokens, list(options.stop), options.seed) == (64, ["###"], 7)
    assert options.frequency_penalty == pytest.approx(0.5)
    assert options.presence_penalty == pytest.approx(0.25)
    assert json.loads(options.format) == schema


async def test_without_parameters_generation_keeps_its_own_settings(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    await client_for(edge).chat.completions.create(model="bruno", messages=ASK)

    options = edge.generation.requests[-1].options
    assert not any(options.HasField(name) for name in ("temperature", "max_tokens", "seed"))
    assert (list(options.stop), options.format) == ([], "")


async def test_max_tokens_cutting_the_answer_finishes_with_length(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    completion = await client_for(edge).chat.completions.create(
        model="bruno",
        messages=ASK,
        max_tokens=2,
    )

    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Restart the "
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            "tools",
        ),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_tokens"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, None),
    ],
)
async def test_what_bruno_cannot_do_is_a_400_naming_the_parameter(
    edge: Edge, extra: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client_for(edge).chat.completions.create(
            model="bruno",
            messages=ASK,
            extra_body=extra,
        )

    assert caught.value.param == (param or "response_format")
    assert edge.generation.requests == []
    assert edge.retrieval.searches == []


async def test_tools_the_client_does_not_want_called_are_accepted(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    tool: ChatCompletionToolParam = {"type": "function", "function": {"name": "f"}}

    completion = await client_for(edge).chat.completions.create(
        model="bruno",
        messages=ASK,
        tools=[tool],
        tool_choice="none",
    )

    assert completion.choices[0].message.content


async def test_a_tool_result_after_the_question_is_left_out_and_the_question_answered(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "restart the pod"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "SECRET TOOL OUTPUT"},
    ]

    completion = await client_for(edge).chat.completions.create(
        model="bruno",
        messages=messages,
    )

    request = edge.generation.requests[-1]
    assert request.question == "restart the pod"
    assert "SECRET TOOL OUTPUT" not in str(request)
    assert completion.choices[0].message.content


async def test_include_usage_adds_a_last_chunk_without_choices(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    stream = await client_for(edge).chat.completions.create(
        model="bruno",
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    *answer, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in answer)
    assert answer[-1].choices[0].finish_reason == "stop"


async def test_only_cited_passages_are_listed_and_each_says_whether_it_is_cited(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", title="Crashloop", source="https://wiki/crash")
    await edge.ingest("restart the pod gently", id="gentle", title="Gentle")

    completion = await client_for(edge).chat.completions.create(model="bruno", messages=ASK)

    extra: dict[str, Any] = completion.model_extra or {}
    assert {c["document_id"]: c["cited"] for c in extra["citations"]} == {
        "crashloop": True,
        "gentle": False,
    }
    assert completion.choices[0].message.content == (
        "Restart the pod [1].\n\nSources:\n- [1] [Crashloop](<https://wiki/crash>)"
    )


async def test_sources_stay_out_of_the_text_when_switched_off(
    edge_factory: EdgeFactory,
) -> None:
    by_setting = await edge_factory(openai_inline_sources=False)
    await by_setting.ingest(RUNBOOK, id="crashloop")
    answers = [
        await client_for(by_setting).chat.completions.create(model="bruno", messages=ASK),
        await client_for(by_setting).chat.completions.create(
            model="bruno",
            messages=ASK,
            extra_body={"bruno": {"inline_sources": True}},
        ),
    ]
    on = await edge_factory()
    answers += [
        await client_for(on).chat.completions.create(
            model="bruno",
            messages=ASK,
            extra_body={"bruno": {"inline_sources": False}},
        ),
        await client_for(on).chat.completions.create(
            model="bruno",
            messages=ASK,
            response_format={"type": "json_object"},  # sources would break the JSON
        ),
    ]

    texts = [a.choices[0].message.content for a in answers]
    assert texts == [
        "Restart the pod [1].",
        "Restart the pod [1].\n\nSources:\n- [1] crashloop",
        "Restart the pod [1].",
        "Restart the pod [1].",
    ]
    assert all((a.model_extra or {})["citations"] for a in answers)


async def test_bruno_options_choose_the_collection_and_top_k(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop", collection="homelab")

    await client_for(edge).chat.completions.create(
        model="bruno",
        messages=ASK,
        extra_body={"bruno": {"collection": "homelab", "top_k": 3}},
    )

    search = edge.retrieval.searches[-1]
    assert (search.collection, search.top_k) == ("homelab", 3)


async def test_a_plain_model_gets_the_messages_as_they_are_and_no_retrieval(edge: Edge) -> None:
    completion = await client_for(edge).chat.completions.create(
        model="mistral:7b",
        messages=[
            {"role": "developer", "content": "Write a title."},
            {"role": "user", "content": "restart the pod"},
        ],
        temperature=0.0,
    )

    [sent] = edge.generation.conversed
    assert sent.model == "mistral:7b"
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Write a title."),
        ("user", "restart the pod"),
    ]
    assert sent.options.temperature == 0.0
    assert edge.retrieval.searches == []
    assert edge.generation.requests == []
    assert completion.model == "mistral:7b"
    assert completion.choices[0].message.content == "Pod restarts"
    assert (completion.model_extra or {}).get("citations") is None


async def test_a_plain_model_streams_with_the_requested_name_on_every_chunk(edge: Edge) -> None:
    stream = await client_for(edge).chat.completions.create(
        model="mistral:7b",
        messages=ASK,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]

    assert {c.model for c in chunks} == {"mistral:7b"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Pod restarts"


async def test_a_plain_task_asked_whole_yields_the_model_to_streamed_chats(edge: Edge) -> None:
    # A chat UI asks for titles and tags without streaming; a person reads a stream.
    await client_for(edge).chat.completions.create(model="mistral:7b", messages=ASK)
    stream = await client_for(edge).chat.completions.create(
        model="mistral:7b", messages=ASK, stream=True
    )
    _ = [chunk async for chunk in stream]

    assert [sent.priority for sent in edge.generation.conversed] == [
        generation_pb2.PRIORITY_BACKGROUND,
        generation_pb2.PRIORITY_INTERACTIVE,
    ]


async def test_a_model_named_without_its_tag_is_the_latest(edge: Edge) -> None:
    completion = await client_for(edge).chat.completions.create(model="fake-llm", messages=ASK)

    assert edge.generation.conversed[-1].model == "fake-llm:latest"
    assert completion.model == "fake-llm"


async def test_an_unknown_model_is_model_not_found_never_an_answer(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")

    with pytest.raises(openai.NotFoundError) as caught:
        await client_for(edge).chat.completions.create(model="gpt-4o-mini", messages=ASK)

    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert "gpt-4o-mini" in caught.value.message
    assert edge.generation.requests == edge.generation.conversed == []


async def test_a_plain_model_that_cannot_be_checked_is_unavailable(edge: Edge) -> None:
    edge.generation.models_reachable = False

    with pytest.raises(openai.InternalServerError) as caught:
        await client_for(edge).chat.completions.create(model="mistral:7b", messages=ASK)

    assert caught.value.status_code == 503
    assert "not reachable" in caught.value.message


async def test_models_retrieve_knows_what_is_served(edge: Edge) -> None:
    client = client_for(edge)

    assert (await client.models.retrieve("bruno")).owned_by == "agent-bruno"
    assert (await client.models.retrieve("mistral:7b")).id == "mistral:7b"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-4o-mini")
    assert caught.value.code == "model_not_found"
