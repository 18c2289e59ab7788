"""Answers from Ollama through the real client, against the wire-level stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import Unavailable
from bruno_generation import ollama_generator
from bruno_generation.answer import Finished
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.prompting import ChatTurn, build_messages
from bruno_testing.ollama_standin import OllamaStandIn

if TYPE_CHECKING:
    from conftest import Made


def messages(passages: list[generation_pb2.Passage]) -> list[ChatTurn]:
    return build_messages("How do I restore?", passages)


async def test_tokens_come_in_order_then_the_counts_of_the_last_chunk(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    ollama.reply = "Use velero restore create [2]."
    generator = OllamaGenerator(host=ollama.url)

    pieces = [
        p async for p in generator.generate(messages(passages), model="llama3.2", passages_used=2)
    ]

    *tokens, finished = pieces
    assert isinstance(finished, Finished)
    assert tokens == ["Use ", "velero ", "restore ", "create ", "[2]."]
    assert finished == Finished(
        model="llama3.2",
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=5,
        passages_used=2,
    )
    assert finished.prompt_tokens > 0
    assert ollama.chat_requests[-1]["messages"] == messages(passages)
    assert ollama.chat_requests[-1]["stream"] is True
    assert ollama.chat_requests[-1]["options"]["temperature"] == generator.options["temperature"]


async def test_nothing_listening_is_ollama_unreachable(
    dead_ollama_url: str, passages: list[generation_pb2.Passage]
) -> None:
    generator = OllamaGenerator(host=dead_ollama_url)

    with pytest.raises(OllamaUnreachable, match="OLLAMA_HOST"):
        async for _ in generator.generate(messages(passages), model="llama3.2", passages_used=2):
            pass


async def test_a_missing_model_names_the_model_and_the_pull_command(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    generator = OllamaGenerator(host=ollama.url)

    with pytest.raises(ModelNotFound, match=r"`ollama pull qwen3`"):
        async for _ in generator.generate(messages(passages), model="qwen3", passages_used=2):
            pass


async def test_ollama_dying_mid_answer_is_unavailable_after_the_tokens_it_sent(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    ollama.fail_after_tokens = 2
    tokens: list[str] = []

    async def read() -> None:
        async for piece in OllamaGenerator(host=ollama.url).generate(
            messages(passages), model="llama3.2", passages_used=2
        ):
            assert isinstance(piece, str)
            tokens.append(piece)

    with pytest.raises(Unavailable, match="middle of the answer") as caught:
        await read()

    assert len(tokens) == 2
    assert not isinstance(caught.value, OllamaUnreachable | ModelNotFound)


async def test_closing_the_answer_early_closes_the_request_to_ollama(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    ollama.reply = "word " * 1000
    ollama.token_delay = 0.01
    answer = OllamaGenerator(host=ollama.url).generate(
        messages(passages), model="llama3.2", passages_used=2
    )

    assert await anext(answer) == "word "
    await answer.aclose()

    assert await ollama.wait_for_cancelled(1, within=10)


async def test_cancelling_the_reader_closes_the_request_to_ollama(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    ollama.reply = "word " * 1000
    ollama.token_delay = 0.01
    started = asyncio.Event()

    async def read() -> None:
        async for _ in OllamaGenerator(host=ollama.url).generate(
            messages(passages), model="llama3.2", passages_used=2
        ):
            started.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(started.wait(), 10)
    reader.cancel()

    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await ollama.wait_for_cancelled(1, within=10)


async def test_the_context_window_is_num_ctx_when_the_model_was_trained_for_more(
    ollama: OllamaStandIn,
) -> None:
    ollama.context_length = 131_072
    generator = OllamaGenerator(host=ollama.url, options={"num_ctx": 8192})

    assert await generator.context_window("llama3.2") == 8192
    assert await generator.trained_context_length("llama3.2") == 131_072


async def test_the_context_window_shrinks_to_a_model_trained_for_less_warning_once(
    ollama: OllamaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    ollama.context_length, ollama.architecture = 2048, "gemma3"
    generator = OllamaGenerator(host=ollama.url, options={"num_ctx": 8192})

    with caplog.at_level(logging.WARNING, logger="bruno_generation.ollama_generator"):
        windows = [await generator.context_window(m) for m in ("llama3.2", "llama3.2:latest")]

    assert windows == [2048, 2048]
    assert [r.path for r in ollama.requests] == ["/api/show"]  # one look-up per model
    [warning] = caplog.records
    assert "BRUNO_OLLAMA_NUM_CTX" in warning.getMessage()
    assert (warning.model_context, warning.num_ctx) == (2048, 8192)  # type: ignore[attr-defined]


@pytest.mark.parametrize("why", ["unreachable", "model missing", "length not reported"])
async def test_the_context_window_is_num_ctx_when_ollama_cannot_say(
    ollama: OllamaStandIn, dead_ollama_url: str, why: str
) -> None:
    host = dead_ollama_url if why == "unreachable" else ollama.url
    model = "qwen3" if why == "model missing" else "llama3.2"
    ollama.context_length = None if why == "length not reported" else 1024
    generator = OllamaGenerator(host=host, options={"num_ctx": 4096})

    assert await generator.context_window(model) == 4096
    assert await generator.trained_context_length(model) is None


async def test_a_failed_look_up_is_retried_so_a_model_pulled_later_is_measured(
    ollama: OllamaStandIn,
) -> None:
    ollama.context_length = 1024
    generator = OllamaGenerator(host=ollama.url, options={"num_ctx": 4096}, show_retry_seconds=0.0)
    assert await generator.context_window("qwen3") == 4096

    ollama.models.append("qwen3")

    assert await generator.context_window("qwen3") == 1024


async def test_concurrent_answers_share_one_look_up_and_the_memory_is_bounded(
    ollama: OllamaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama.context_length = 2048
    generator = OllamaGenerator(host=ollama.url, options={"num_ctx": 8192})

    windows = await asyncio.gather(*(generator.context_window("llama3.2") for _ in range(8)))

    assert windows == [2048] * 8
    assert [r.path for r in ollama.requests] == ["/api/show"]

    monkeypatch.setattr(ollama_generator, "SHOW_CACHE_MODELS", 2)
    for name in ("a", "b", "c"):  # made-up names, as a client may send them
        await generator.trained_context_length(name)
    await generator.trained_context_length("llama3.2")  # forgotten: looked up again
    assert [r.path for r in ollama.requests].count("/api/show") == 5


async def test_without_num_ctx_there_is_no_window_to_budget(ollama: OllamaStandIn) -> None:
    generator = OllamaGenerator(host=ollama.url, options={"temperature": 0.0})

    assert await generator.context_window("llama3.2") is None
    assert ollama.requests == []


async def test_aclose_closes_the_pooled_connection_to_ollama(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    generator = OllamaGenerator(host=ollama.url)
    async for _ in generator.generate(messages(passages), model="llama3.2", passages_used=2):
        pass
    assert ollama.open_connections == 1

    await generator.aclose()

    assert await ollama.wait_for_open_connections(0)


async def test_the_clients_are_made_with_the_generator_and_no_call_makes_another(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage], made: Made
) -> None:
    generator = OllamaGenerator(host=ollama.url, options={"num_ctx": 4096})
    at_start = dataclasses.replace(made)

    [_ async for _ in generator.generate(messages(passages), model="llama3.2", passages_used=2)]
    await generator.complete(messages(passages), model="llama3.2")
    await generator.context_window("llama3.2")
    await generator.model_status("llama3.2")
    await generator.chat_models()
    await generator.aclose()

    assert at_start.clients > 0
    assert at_start.bundles == 1  # the clients share one TLS context
    assert made == at_start
    assert {r.path for r in ollama.requests} >= {"/api/chat", "/api/show", "/api/tags"}


async def test_with_nothing_listening_calls_fail_as_unreachable_and_make_no_client(
    dead_ollama_url: str, passages: list[generation_pb2.Passage], made: Made
) -> None:
    generator = OllamaGenerator(host=dead_ollama_url, options={"num_ctx": 4096})
    at_start = dataclasses.replace(made)

    assert await generator.context_window("llama3.2") == 4096
    assert await generator.model_status("llama3.2") == (False, "Ollama is not reachable")
    with pytest.raises(OllamaUnreachable):
        [_ async for _ in generator.generate(messages(passages), model="llama3.2", passages_used=2)]
    await generator.aclose()

    assert at_start.clients > 0
    assert made == at_start


def test_the_http_clients_async_backend_is_loaded_with_the_module_not_by_the_first_call() -> None:
    # A fresh interpreter: in this one, earlier tests' requests have loaded it already.
    check = (
        "import sys, bruno_generation.ollama_generator; "
        "sys.exit(0 if 'anyio._backends._asyncio' in sys.modules else 1)"
    )

    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
