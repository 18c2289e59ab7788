"""The Ollama stand-in, driven by the real ``ollama`` client as the services drive Ollama."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from ollama import AsyncClient, ChatResponse, ResponseError

from bruno_testing.ollama_standin import OllamaStandIn, echo_reply, hashed_embedding

QUESTION = [
    {"role": "system", "content": "Answer from the passages."},
    {"role": "user", "content": "<passages>\n[1] Flux\n[2] Velero\n</passages>\nHow do I restore?"},
]


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaStandIn]:
    async with OllamaStandIn(models=["llama3.2", "nomic-embed-text"]) as standin:
        yield standin


async def test_streamed_chat_sends_tokens_then_one_done_chunk_with_counts(
    ollama: OllamaStandIn,
) -> None:
    client = AsyncClient(host=ollama.url)
    parts = [p async for p in await client.chat(model="llama3.2", messages=QUESTION, stream=True)]

    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    text = "".join(p.message.content or "" for p in parts)
    assert text == echo_reply({"messages": QUESTION})
    assert "[1]" in text
    assert "[2]" in text
    assert "How do I restore?" in text
    last = parts[-1]
    assert last.done_reason == "stop"
    assert last.eval_count == len(parts) - 1
    assert (last.prompt_eval_count or 0) > 0
    assert last.total_duration is not None


def test_the_default_reply_cites_only_markers_shown_in_user_turns() -> None:
    instructions = {"role": "system", "content": "Cite passages like [1] or [2]."}
    no_passages = {"role": "user", "content": "<passages>\n</passages>\nQuestion: Any news?"}

    assert echo_reply({"messages": [instructions, no_passages]}) == (
        "I found nothing about this in the passages: Any news?"
    )
    assert echo_reply({"messages": [instructions, *QUESTION[1:]]}) == (
        "According to the passages [1] [2], here is the answer to: How do I restore?"
    )


async def test_chat_without_streaming_answers_in_one_json_body(ollama: OllamaStandIn) -> None:
    ollama.reply = "Restore with velero [2]."
    answer: ChatResponse = await AsyncClient(host=ollama.url).chat(
        model="llama3.2:latest", messages=QUESTION, stream=False
    )

    assert answer.message.role == "assistant"
    assert answer.message.content == "Restore with velero [2]."
    assert answer.done is True
    assert answer.eval_count == 4


async def test_every_request_body_is_recorded(ollama: OllamaStandIn) -> None:
    await AsyncClient(host=ollama.url).chat(
        model="llama3.2", messages=QUESTION, options={"temperature": 0.1}
    )

    assert ollama.requests[-1].path == "/api/chat"
    assert ollama.chat_requests[-1]["messages"] == QUESTION
    assert ollama.chat_requests[-1]["options"]["temperature"] == 0.1


async def test_tags_lists_the_pulled_models_with_their_tag(ollama: OllamaStandIn) -> None:
    listing = await AsyncClient(host=ollama.url).list()

    assert [m.model for m in listing.models] == ["llama3.2:latest", "nomic-embed-text:latest"]


async def test_embed_returns_deterministic_unit_vectors(ollama: OllamaStandIn) -> None:
    client = AsyncClient(host=ollama.url)
    first = await client.embed(model="nomic-embed-text", input=["flux reconcile", "velero"])
    again = await client.embed(model="nomic-embed-text", input="flux reconcile")

    assert len(first.embeddings) == 2
    assert len(first.embeddings[0]) == 768
    assert list(again.embeddings[0]) == list(first.embeddings[0])
    assert math.isclose(sum(v * v for v in first.embeddings[0]), 1.0)
    assert list(first.embeddings[1]) != list(first.embeddings[0])


async def test_embedding_scale_stretches_the_vectors_without_turning_them() -> None:
    async with OllamaStandIn(
        models=["nomic-embed-text"], embedding_dim=16, embedding_scale=3.0
    ) as ollama:
        client = AsyncClient(host=ollama.url)
        texts = ["flux reconcile", "velero restore"]
        stretched = (await client.embed(model="nomic-embed-text", input=texts)).embeddings
        ollama.embedding_scale = 1.0
        unit = (await client.embed(model="nomic-embed-text", input=texts)).embeddings

    for text, long, short in zip(texts, stretched, unit, strict=True):
        assert math.isclose(math.sqrt(sum(v * v for v in long)), 3.0)
        assert list(long) == pytest.approx([3.0 * v for v in hashed_embedding(text, 16)])
        assert list(short) == pytest.approx(hashed_embedding(text, 16))


def test_texts_sharing_words_embed_closer_than_unrelated_texts() -> None:
    def cosine(a: str, b: str) -> float:
        pairs = zip(hashed_embedding(a, 64), hashed_embedding(b, 64), strict=True)
        return sum(x * y for x, y in pairs)

    assert cosine("restart the flux controller", "flux controller restart") > cosine(
        "restart the flux controller", "backup schedule for velero"
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_unknown_model_is_a_404_naming_the_model(ollama: OllamaStandIn, stream: bool) -> None:
    async def ask() -> None:
        async with AsyncClient(host=ollama.url) as client:
            if stream:
                async for _ in await client.chat(model="mistral", messages=QUESTION, stream=True):
                    pass
            else:
                await client.chat(model="mistral", messages=QUESTION)

    with pytest.raises(ResponseError) as caught:
        await ask()

    assert caught.value.status_code == 404
    assert caught.value.error == 'model "mistral" not found, try pulling it first'


async def test_show_reports_the_configured_context_length_under_the_architecture(
    ollama: OllamaStandIn,
) -> None:
    ollama.context_length, ollama.architecture = 2048, "qwen3"
    async with AsyncClient(host=ollama.url) as client:
        shown = await client.show("llama3.2")

    info = shown.modelinfo or {}
    assert info["general.architecture"] == "qwen3"
    assert info["qwen3.context_length"] == 2048
    assert shown.details is not None
    assert shown.details.family == "qwen3"
    assert ollama.requests[-1].body == {"model": "llama3.2"}


async def test_show_of_an_unknown_model_is_a_404(ollama: OllamaStandIn) -> None:
    async with AsyncClient(host=ollama.url) as client:
        with pytest.raises(ResponseError) as caught:
            await client.show("mistral")

    assert caught.value.status_code == 404


async def test_show_can_leave_the_context_length_out(ollama: OllamaStandIn) -> None:
    ollama.context_length = None
    async with AsyncClient(host=ollama.url) as client:
        shown = await client.show("llama3.2")

    info = shown.modelinfo or {}
    assert info["general.architecture"] == "llama"
    assert not any(key.endswith(".context_length") for key in info)


async def test_root_says_ollama_is_running(ollama: OllamaStandIn) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(ollama.url)

    assert response.text == "Ollama is running"


async def test_failing_after_n_tokens_drops_the_connection_mid_stream(
    ollama: OllamaStandIn,
) -> None:
    ollama.fail_after_tokens = 2
    received: list[str] = []

    async def read_all() -> None:
        async with AsyncClient(host=ollama.url) as client:
            async for part in await client.chat(model="llama3.2", messages=QUESTION, stream=True):
                received.append(part.message.content or "")

    with pytest.raises(httpx.RemoteProtocolError):
        await read_all()

    assert len(received) == 2


async def test_a_client_leaving_mid_stream_is_counted_as_cancelled(ollama: OllamaStandIn) -> None:
    ollama.reply = "word " * 500
    ollama.token_delay = 0.01
    streaming = asyncio.Event()

    async def read_forever() -> None:
        async with AsyncClient(host=ollama.url) as client:
            async for _ in await client.chat(model="llama3.2", messages=QUESTION, stream=True):
                streaming.set()

    reader = asyncio.create_task(read_forever())
    await asyncio.wait_for(streaming.wait(), 10)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader

    assert await ollama.wait_for_cancelled(1)
    assert ollama.cancelled == 1


async def test_generate_streams_the_reply_as_response_fragments(ollama: OllamaStandIn) -> None:
    ollama.reply = "plain answer"
    parts = [
        p
        async for p in await AsyncClient(host=ollama.url).generate(
            model="llama3.2", prompt="hi", stream=True
        )
    ]

    assert "".join(p.response or "" for p in parts) == "plain answer"
    assert parts[-1].done is True


async def test_url_is_unusable_once_stopped() -> None:
    standin = OllamaStandIn()
    async with standin:
        assert standin.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = standin.url


async def test_open_connections_counts_keep_alive_connections_until_the_client_closes(
    ollama: OllamaStandIn,
) -> None:
    client = AsyncClient(host=ollama.url)
    await client.list()

    assert ollama.open_connections == 1
    await client.close()  # type: ignore[no-untyped-call]  # ollama leaves it bare
    assert await ollama.wait_for_open_connections(0)


async def test_connections_send_each_token_at_once_with_nagle_off(ollama: OllamaStandIn) -> None:
    # As Ollama (Go's net/http) does. With Nagle's algorithm on, a token written while the
    # client still delays its ACK of the headers waits for that ACK (~40 ms on Linux): chat
    # benchmarks measured the stand-in's TCP instead of Bruno.
    client = AsyncClient(host=ollama.url)
    await client.list()

    assert ollama._server is not None
    [connection] = ollama._server.server_state.connections
    sock = connection.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await client.close()  # type: ignore[no-untyped-call]  # ollama leaves it bare


@pytest.mark.parametrize("stream", [True, False])
async def test_num_predict_cuts_the_answer_with_done_reason_length(
    ollama: OllamaStandIn, stream: bool
) -> None:
    ollama.reply = "one two three four five"
    client = AsyncClient(host=ollama.url)

    if stream:
        parts = [
            p
            async for p in await client.chat(
                model="llama3.2", messages=QUESTION, stream=True, options={"num_predict": 2}
            )
        ]
        text, last = "".join(p.message.content or "" for p in parts), parts[-1]
    else:
        last = await client.chat(model="llama3.2", messages=QUESTION, options={"num_predict": 2})
        text = last.message.content or ""

    assert text == "one two "
    assert (last.done_reason, last.eval_count) == ("length", 2)


async def test_num_predict_beyond_the_answer_or_unlimited_finishes_with_stop(
    ollama: OllamaStandIn,
) -> None:
    ollama.reply = "one two"
    client = AsyncClient(host=ollama.url)

    for limit in (2, 50, -1):
        answer = await client.chat(
            model="llama3.2", messages=QUESTION, options={"num_predict": limit}
        )
        assert (answer.message.content, answer.done_reason) == ("one two", "stop")


async def test_a_stop_string_ends_the_answer_before_it(ollama: OllamaStandIn) -> None:
    ollama.reply = "Restore it. END Then check the logs."
    client = AsyncClient(host=ollama.url)

    answer = await client.chat(
        model="llama3.2", messages=QUESTION, options={"stop": ["nothing", " END"]}
    )

    assert (answer.message.content, answer.done_reason) == ("Restore it.", "stop")


async def test_format_json_and_a_schema_make_the_answer_json(ollama: OllamaStandIn) -> None:
    ollama.reply = "Velero"
    client = AsyncClient(host=ollama.url)
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
        "required": ["title"],
    }

    plain = await client.chat(model="llama3.2", messages=QUESTION, format="json")
    shaped = await client.chat(model="llama3.2", messages=QUESTION, format=schema)

    assert json.loads(plain.message.content or "") == {"answer": "Velero"}
    assert json.loads(shaped.message.content or "") == {"title": "Velero", "tags": ["Velero"]}
    assert ollama.chat_requests[-1]["format"] == schema


async def test_show_tells_an_embedding_model_from_a_chat_model(ollama: OllamaStandIn) -> None:
    client = AsyncClient(host=ollama.url)

    assert (await client.show("llama3.2")).capabilities == ["completion", "tools"]
    assert (await client.show("nomic-embed-text")).capabilities == ["embedding"]
