"""What OpenAI-style clients ask for reaches Ollama: sampling options, a length cut, a plain
model without passages (Converse), the list of models (ListModels). Real gRPC, the stand-in."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from bruno.generation.v1 import generation_pb2
from bruno_generation.prompting import SYSTEM_PROMPT
from bruno_testing.ollama_standin import OllamaStandIn

if TYPE_CHECKING:
    from conftest import Serve, Stub

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


def request(
    passages: list[generation_pb2.Passage], **fields: Any
) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        question="How do I restore a velero backup?", passages=passages, **fields
    )


async def answer(
    stub: Stub, req: generation_pb2.GenerateRequest
) -> tuple[str, generation_pb2.Done]:
    """The streamed text and the Done event, checking Done comes once and last."""
    return await _collect(stub.Generate(req))


async def plain(stub: Stub, req: generation_pb2.ConverseRequest) -> tuple[str, generation_pb2.Done]:
    return await _collect(stub.Converse(req))


async def _collect(call: Any) -> tuple[str, generation_pb2.Done]:
    events = [event async for event in call]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds == ["token"] * (len(events) - 1) + ["done"]
    return "".join(event.token.text for event in events[:-1]), events[-1].done


def converse(**fields: Any) -> generation_pb2.ConverseRequest:
    messages = fields.pop(
        "messages",
        [
            generation_pb2.ChatMessage(role="system", content="You write chat titles."),
            generation_pb2.ChatMessage(role="user", content="Title for: restoring Velero"),
        ],
    )
    return generation_pb2.ConverseRequest(
        model=fields.pop("model", "mistral"), messages=messages, **fields
    )


async def test_sampling_options_reach_ollama_over_the_configured_ones(
    serve: Serve, ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    options = generation_pb2.SamplingOptions(
        temperature=0.7,
        top_p=0.5,
        max_tokens=300,
        stop=["###"],
        seed=42,
        frequency_penalty=0.25,
        presence_penalty=-0.5,
        format=json.dumps(SCHEMA),
    )
    async with serve(ollama_host=ollama.url, ollama_num_ctx=8192) as stub:
        await answer(stub, request(passages, options=options))

    sent = ollama.chat_requests[-1]
    assert sent["options"] == {
        "temperature": 0.7,
        "num_ctx": 8192,
        "top_p": 0.5,
        "num_predict": 300,
        "stop": ["###"],
        "seed": 42,
        "frequency_penalty": 0.25,
        "presence_penalty": -0.5,
    }
    assert sent["format"] == SCHEMA


async def test_without_options_ollama_gets_the_settings_and_no_format(
    serve: Serve, ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    async with serve(ollama_host=ollama.url, ollama_num_ctx=8192) as stub:
        text, done = await answer(stub, request(passages))

    sent = ollama.chat_requests[-1]
    assert sent["options"] == {"temperature": 0.2, "num_ctx": 8192}
    assert sent.get("format") is None
    assert done.finish_reason == "stop"
    assert text


async def test_max_tokens_cuts_the_answer_and_the_done_says_length(
    serve: Serve, ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    ollama.reply = "one two three four five"
    options = generation_pb2.SamplingOptions(max_tokens=2)
    async with serve(ollama_host=ollama.url) as stub:
        text, done = await answer(stub, request(passages, options=options))

    assert text == "one two "
    assert (done.finish_reason, done.usage.completion_tokens) == ("length", 2)


async def test_the_extractive_answer_honours_max_tokens_too(
    serve: Serve, passages: list[generation_pb2.Passage], dead_ollama_url: str
) -> None:
    options = generation_pb2.SamplingOptions(max_tokens=3)
    async with serve(ollama_host=dead_ollama_url, generation_backend="auto") as stub:
        whole, unlimited = await answer(stub, request(passages))
        text, done = await answer(stub, request(passages, options=options))

    assert unlimited.finish_reason == "stop"
    assert len(text.split()) == 3
    assert whole.startswith(text)
    assert (done.finish_reason, done.usage.completion_tokens, done.fallback) == ("length", 3, True)


@pytest.mark.parametrize(
    "options",
    [
        generation_pb2.SamplingOptions(temperature=2.5),
        generation_pb2.SamplingOptions(top_p=1.5),
        generation_pb2.SamplingOptions(max_tokens=0),
        generation_pb2.SamplingOptions(stop=["a", "b", "c", "d", "e"]),
        generation_pb2.SamplingOptions(stop=[""]),
        generation_pb2.SamplingOptions(format="yaml"),
        generation_pb2.SamplingOptions(format="[1, 2]"),
    ],
)
async def test_bad_sampling_options_are_refused_before_any_model_is_called(
    serve: Serve,
    ollama: OllamaStandIn,
    passages: list[generation_pb2.Passage],
    options: generation_pb2.SamplingOptions,
) -> None:
    async with serve(ollama_host=ollama.url) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await answer(stub, request(passages, options=options))
        with pytest.raises(grpc.aio.AioRpcError) as plain_caught:
            await plain(stub, converse(options=options))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert plain_caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ollama.chat_requests == []


async def test_converse_sends_the_messages_as_they_are_to_the_named_model(
    serve: Serve, ollama: OllamaStandIn
) -> None:
    ollama.reply = "Restoring Velero backups"
    options = generation_pb2.SamplingOptions(format="json", temperature=0.0)
    async with serve(ollama_host=ollama.url) as stub:
        text, done = await plain(stub, converse(options=options))

    sent = ollama.chat_requests[-1]
    assert sent["model"] == "mistral"
    assert sent["messages"] == [
        {"role": "system", "content": "You write chat titles."},
        {"role": "user", "content": "Title for: restoring Velero"},
    ]
    assert SYSTEM_PROMPT not in json.dumps(sent)
    assert sent["format"] == "json"
    assert json.loads(text) == {"answer": "Restoring Velero backups"}
    assert (done.model, done.fallback, done.finish_reason) == ("mistral", False, "stop")
    assert done.usage.completion_tokens > 0


async def test_converse_with_a_model_ollama_lacks_is_not_found(
    serve: Serve, ollama: OllamaStandIn
) -> None:
    async with serve(ollama_host=ollama.url) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plain(stub, converse(model="gpt-4o-mini"))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-4o-mini" in (caught.value.details() or "")


async def test_converse_never_falls_back_to_quoting(serve: Serve, dead_ollama_url: str) -> None:
    async with serve(ollama_host=dead_ollama_url, generation_backend="auto") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await plain(stub, converse())
    async with serve(ollama_host=dead_ollama_url, generation_backend="extractive") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as extractive:
            await plain(stub, converse())

    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert extractive.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"model": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"messages": []}, grpc.StatusCode.INVALID_ARGUMENT),
        (
            {"messages": [generation_pb2.ChatMessage(role="wizard", content="hi")]},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"messages": [generation_pb2.ChatMessage(role="user", content="x" * 16_001)]},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (
            {"messages": [generation_pb2.ChatMessage(role="user", content="hi")] * 34},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (
            # About 5,000 estimated tokens: more than a 4,096-token window holds.
            {"messages": [generation_pb2.ChatMessage(role="user", content="word " * 3000)]},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_bad_plain_chats_are_refused_before_ollama(
    serve: Serve, ollama: OllamaStandIn, fields: dict[str, Any], code: grpc.StatusCode
) -> None:
    ollama.context_length = 4096
    async with serve(ollama_host=ollama.url) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plain(stub, converse(**fields))

    assert caught.value.code() == code
    assert ollama.chat_requests == []


async def test_list_models_names_the_chat_models_and_leaves_embedding_models_out(
    serve: Serve,
) -> None:
    async with (
        OllamaStandIn(models=["mistral", "nomic-embed-text", "llama3.2:3b"]) as ollama,
        serve(ollama_host=ollama.url) as stub,
    ):
        listed = await stub.ListModels(generation_pb2.ListModelsRequest())
        await stub.ListModels(generation_pb2.ListModelsRequest())

    assert list(listed.models) == ["llama3.2:3b", "mistral:latest"]
    assert listed.reachable is True
    shown = [r for r in ollama.requests if r.path == "/api/show"]
    assert len(shown) == 3  # once per model, then remembered


async def test_list_models_says_when_ollama_cannot_be_asked(
    serve: Serve, dead_ollama_url: str
) -> None:
    async with serve(ollama_host=dead_ollama_url) as stub:
        listed = await stub.ListModels(generation_pb2.ListModelsRequest())

    assert (list(listed.models), listed.reachable) == ([], False)
    assert "not reachable" in listed.detail
    assert dead_ollama_url not in listed.detail


async def test_the_extractive_backend_lists_no_models(serve: Serve, ollama: OllamaStandIn) -> None:
    async with serve(ollama_host=ollama.url, generation_backend="extractive") as stub:
        listed = await stub.ListModels(generation_pb2.ListModelsRequest())

    assert (list(listed.models), listed.reachable) == ([], True)
    assert ollama.requests == []
