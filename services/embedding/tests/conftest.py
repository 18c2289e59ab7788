"""Shared fixtures: the MiniLM model loaded once, and a tiny wire-level stand-in of Ollama's
``POST /api/embed``."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STANDIN_DIMENSION = 8


def standin_vector(text: str) -> list[float]:
    """The stand-in's embedding of ``text``: deterministic, distinct per text, not unit length."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(byte - 127.5) / 10 for byte in digest[:STANDIN_DIMENSION]]


@dataclass
class OllamaStandIn:
    """What the stand-in serves and what it was asked."""

    url: str = ""
    models: set[str] = field(default_factory=lambda: {"nomic-embed-text", "all-minilm"})
    requests: list[dict[str, object]] = field(default_factory=list)


def _app(state: OllamaStandIn) -> Starlette:
    async def embed(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        model = body.get("model", "")
        if model.split(":", 1)[0] not in state.models:
            error = f'model "{model}" not found, try pulling it first'
            return JSONResponse({"error": error}, status_code=404)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {
                "model": model,
                "embeddings": [standin_vector(text) for text in texts],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": sum(len(text.split()) for text in texts),
            }
        )

    return Starlette(routes=[Route("/api/embed", embed, methods=["POST"])])


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaStandIn]:
    """Ollama's ``POST /api/embed`` on a free loopback port, spoken to by the real client."""
    state = OllamaStandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        _app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the Ollama stand-in stopped while starting")
        await asyncio.sleep(0.005)
    yield state
    server.should_exit = True
    await task


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens (a port just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def minilm() -> Iterator[OnnxMiniLMEmbedder]:
    """The real model, loaded once for the whole session (batches of 4 to exercise batching)."""
    embedder = OnnxMiniLMEmbedder(batch_size=4, threads=1)
    yield embedder
    asyncio.run(embedder.aclose())
