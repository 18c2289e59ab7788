"""The generation service's wiring: serving until SIGTERM, and who closes the Ollama client."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from typing import TYPE_CHECKING

import pytest

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core import GrpcServer, check_health, create_channel
from bruno_core.entrypoint import serve as serve_until_stopped
from bruno_generation.config import GenerationSettings
from bruno_generation.ollama_generator import OllamaGenerator
from bruno_generation.server import create_server
from bruno_generation.servicer import SERVICE
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import free_port as pick_free_port

if TYPE_CHECKING:
    from conftest import Made

QUESTION = "How do I restore a velero backup?"


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


async def answer_once(
    server: GrpcServer, passages: list[generation_pb2.Passage]
) -> list[generation_pb2.GenerateResponse]:
    """Start ``server``, ask it one question over a channel, stop it: the answer's events."""
    port = await server.start()
    try:
        async with create_channel(f"127.0.0.1:{port}", timeout_seconds=30) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            request = generation_pb2.GenerateRequest(question=QUESTION, passages=passages)
            return [event async for event in stub.Generate(request)]
    finally:
        await server.stop()


async def test_sigterm_drains_the_server_then_closes_the_connections_to_ollama(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage], free_port: int
) -> None:
    settings = GenerationSettings(
        generation_listen_addr=f"127.0.0.1:{free_port}",
        ollama_host=ollama.url,
        grpc_grace_seconds=1,
    )
    serving = asyncio.create_task(serve_until_stopped(settings, create_server))
    try:
        async with create_channel(f"127.0.0.1:{free_port}", timeout_seconds=30) as channel:
            for _ in range(300):
                if await check_health(channel, SERVICE.full_name, timeout_seconds=0.5) == "SERVING":
                    break
                await asyncio.sleep(0.05)
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            request = generation_pb2.GenerateRequest(question=QUESTION, passages=passages)
            [_ async for _ in stub.Generate(request)]
        assert ollama.open_connections == 1  # the pooled client keeps its connection
        # Without the server's handler in place the signal would end the test run instead.
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(30):
            await serving
    finally:
        serving.cancel()

    assert await ollama.wait_for_open_connections(0)


async def test_the_server_makes_its_ollama_clients_before_it_serves_not_on_the_first_answer(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage], made: Made
) -> None:
    settings = GenerationSettings(
        generation_listen_addr="127.0.0.1:0", ollama_host=ollama.url, grpc_grace_seconds=0
    )
    server = await create_server(settings)
    before_serving = dataclasses.replace(made)
    events = await answer_once(server, passages)

    assert events[-1].done.model == "llama3.2"
    assert ollama.chat_requests  # Ollama answered, not the fallback
    assert before_serving.clients > 0
    assert made == before_serving


class ClosesCounted(OllamaGenerator):
    """The real client, counting the calls to close it."""

    closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


async def test_an_ollama_client_passed_in_stays_the_callers_to_close(
    ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    settings = GenerationSettings(
        generation_listen_addr="127.0.0.1:0", ollama_host=ollama.url, grpc_grace_seconds=0
    )
    client = ClosesCounted(host=ollama.url)
    server = await create_server(settings, ollama=client)
    events = await answer_once(server, passages)

    assert events[-1].done.model == "llama3.2"  # the client passed in answered
    assert client.closed == 0
    await client.aclose()
