"""A wire-compatible stand-in of the Ollama HTTP API, served in-process on a loopback port.

The build machines have no Ollama, so tests put the real ``ollama`` client in front of this:
the same paths, JSON shapes, NDJSON streaming and error bodies, with knobs for what a test
needs to provoke (slow tokens, a server dying mid-answer) and records of what it received.

It honours what Ollama's runner honours in a chat or generate request, as Ollama does it
(``llm/server.go``, ``runner/``): ``options.num_predict`` stops the answer after that many
tokens with ``done_reason: "length"``; ``options.stop`` ends it before the first stop string,
which is not sent (``done_reason: "stop"``); ``format`` (``"json"`` or a JSON schema) makes the
answer JSON (for a schema, a value of the schema's shape). Sampling options (``temperature``,
``top_p``, ``seed``, penalties) change nothing in a deterministic stand-in; they are recorded
with the rest of the body. ``/api/show`` reports ``capabilities`` as Ollama does: ``embedding``
for an embedding model (here: a name containing ``embed``), ``completion`` otherwise.

    async with OllamaStandIn(models=["llama3.2"], token_delay=0.0) as ollama:
        client = ollama_client.AsyncClient(host=ollama.url)
        await client.chat(model="llama3.2", messages=[...])
        assert "[1]" in ollama.chat_requests[-1]["messages"][-1]["content"]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bruno_testing.loopback_app import LoopbackApp

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received: ``body`` is the parsed JSON ({} for a GET)."""

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


def echo_reply(body: dict[str, Any]) -> str:
    """The default answer: cites the passage markers the user turns showed, echoes the question.

    Only user turns count, so the markers prove the passages (not the instructions) arrived.
    """
    turns = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
    user_turns = [str(t.get("content", "")) for t in turns if t.get("role") == "user"]
    markers = sorted({int(m) for m in re.findall(r"\[(\d+)\]", " ".join(user_turns))})
    lines = [line for line in (user_turns[-1] if user_turns else "").splitlines() if line.strip()]
    question = re.sub(r"^question:\s*", "", lines[-1].strip(), flags=re.I) if lines else ""
    if not markers:
        return f"I found nothing about this in the passages: {question}"
    cited = " ".join(f"[{m}]" for m in markers)
    return f"According to the passages {cited}, here is the answer to: {question}"


def hashed_embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector: each word adds ±1 at a slot chosen by its hash."""
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def json_reply(text: str, form: Any) -> str:
    """What a model constrained by Ollama's ``format`` answers: JSON text; for a schema, a value
    of its shape (strings carry ``text``), for ``"json"`` an object holding ``text``."""
    if isinstance(form, dict):
        return json.dumps(_value_of(form, text))
    return json.dumps({"answer": text})


def _value_of(schema: dict[str, Any], text: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _value_of(sub, text) for name, sub in properties.items()}
    if kind == "array":
        return [_value_of(schema.get("items") or {"type": "string"}, text)]
    return {"string": text, "integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind)


def _until_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first stop string, which is left out."""
    cut = min((i for i in (text.find(stop) for stop in stops if stop) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _canonical(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


class _TokenStream(Response):
    """NDJSON chunks paced by ``token_delay``; notices the client leaving, can die mid-way."""

    media_type = "application/x-ndjson"

    def __init__(self, standin: OllamaStandIn, chunks: list[bytes], final: bytes) -> None:
        # Not Response.__init__: it would announce a Content-Length of 0 for the empty body.
        self.status_code, self.background = 200, None
        self.init_headers()
        self.standin, self.chunks, self.final = standin, chunks, final

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wait_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.create_task(wait_for_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            fail_after = self.standin.fail_after_tokens
            for sent, chunk in enumerate(self.chunks):
                if fail_after is not None and sent >= fail_after:
                    # Returning without the last chunk makes uvicorn drop the connection,
                    # which is what a client sees when the Ollama process dies.
                    return
                await asyncio.wait([gone], timeout=self.standin.token_delay)
                if gone.done():
                    await self.standin._count_cancelled()
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": self.final, "more_body": False})
        finally:
            gone.cancel()


class OllamaStandIn(LoopbackApp):
    """The Ollama API on ``url`` (``http://127.0.0.1:<port>``) until stopped.

    ``models`` are the pulled models (``llama3.2`` and ``llama3.2:latest`` are the same);
    ``reply`` is the answer text or a function of the request body (default
    :func:`echo_reply`); ``fail_after_tokens`` drops a streamed answer's connection after that
    many tokens; ``embedding_dim`` is the size of ``/api/embed`` vectors, and
    ``embedding_scale`` multiplies them (1.0 gives the unit vectors of :func:`hashed_embedding`;
    any other value gives vectors of that length, to prove a client re-normalises);
    ``context_length`` and ``architecture`` are what ``/api/show`` reports as the models'
    trained context (``model_info["<architecture>.context_length"]``; ``None`` leaves the key
    out). All are attributes a test may change between requests. ``requests`` records every request,
    ``cancelled`` counts streams whose client hung up before the end.
    """

    name = "Ollama stand-in"

    def __init__(
        self,
        models: Sequence[str] = ("llama3.2", "nomic-embed-text"),
        *,
        token_delay: float = 0.0,
        reply: Reply | None = None,
        fail_after_tokens: int | None = None,
        embedding_dim: int = 768,
        embedding_scale: float = 1.0,
        context_length: int | None = 131_072,
        architecture: str = "llama",
    ) -> None:
        self.models = list(models)
        self.token_delay = token_delay
        self.reply: Reply = reply if reply is not None else echo_reply
        self.fail_after_tokens = fail_after_tokens
        self.embedding_dim = embedding_dim
        self.embedding_scale = embedding_scale
        self.context_length = context_length
        self.architecture = architecture
        self.requests: list[RecordedRequest] = []
        self.cancelled = 0
        self._changed = asyncio.Condition()
        super().__init__(
            Starlette(
                routes=[
                    Route("/", self._root, methods=["GET"]),
                    Route("/api/version", self._version, methods=["GET"]),
                    Route("/api/tags", self._tags, methods=["GET"]),
                    Route("/api/show", self._show, methods=["POST"]),
                    Route("/api/chat", self._chat, methods=["POST"]),
                    Route("/api/generate", self._generate, methods=["POST"]),
                    Route("/api/embed", self._embed, methods=["POST"]),
                ]
            )
        )

    async def start(self) -> None:
        await super().start()
        # Ollama (Go's net/http) never drops an idle keep-alive connection; uvicorn would after
        # 5 s, hiding a client that never closes its pool. Connections read this when they open.
        assert self._server is not None  # noqa: S101 - start() just made it
        self._server.config.timeout_keep_alive = 24 * 3600

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of every ``POST /api/chat`` so far, oldest first."""
        return [r.body for r in self.requests if r.path == "/api/chat"]

    @property
    def open_connections(self) -> int:
        """Client connections open right now, idle keep-alive ones included."""
        return 0 if self._server is None else len(self._server.server_state.connections)

    async def wait_for_open_connections(self, count: int, *, within: float = 10.0) -> bool:
        """Whether :attr:`open_connections` comes down (or up) to ``count`` within ``within``
        seconds: a client closing its connection reaches the server a moment later."""
        try:
            async with asyncio.timeout(within):
                # uvicorn signals no one when a connection closes; polling is all there is.
                while self.open_connections != count:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            return False
        return True

    async def wait_for_cancelled(self, count: int = 1, *, within: float = 10.0) -> bool:
        """Whether ``cancelled`` reaches ``count`` within ``within`` seconds."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self.cancelled >= count)
        except TimeoutError:
            return False
        return True

    async def _count_cancelled(self) -> None:
        async with self._changed:
            self.cancelled += 1
            self._changed.notify_all()

    async def _record(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if request.method == "POST":
            raw = await request.body()
            parsed = json.loads(raw) if raw else {}
            body = parsed if isinstance(parsed, dict) else {"_": parsed}
        self.requests.append(RecordedRequest(request.method, request.url.path, body))
        return body

    def _missing_model(self, body: dict[str, Any]) -> JSONResponse | None:
        model = body.get("model")
        if not model:
            return JSONResponse({"error": "model is required"}, status_code=400)
        if _canonical(str(model)) not in {_canonical(m) for m in self.models}:
            error = f'model "{model}" not found, try pulling it first'
            return JSONResponse({"error": error}, status_code=404)
        return None

    async def _root(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("Ollama is running")

    async def _version(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"version": "0.12.0"})

    async def _tags(self, request: Request) -> Response:
        await self._record(request)
        details = {"format": "gguf", "family": "llama", "parameter_size": "3.2B"}
        models = [
            {
                "name": _canonical(m),
                "model": _canonical(m),
                "modified_at": _now(),
                "size": 2_019_393_189,
                "digest": hashlib.sha256(m.encode()).hexdigest(),
                "details": {**details, "families": ["llama"], "quantization_level": "Q4_K_M"},
            }
            for m in self.models
        ]
        return JSONResponse({"models": models})

    async def _show(self, request: Request) -> Response:
        body = await self._record(request)
        if (missing := self._missing_model(body)) is not None:
            return missing
        arch = self.architecture
        model_info: dict[str, Any] = {
            "general.architecture": arch,
            "general.parameter_count": 3_212_749_888,
            f"{arch}.embedding_length": 3072,
        }
        if self.context_length is not None:
            model_info[f"{arch}.context_length"] = self.context_length
        return JSONResponse(
            {
                "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
                "modelfile": f"FROM {_canonical(str(body['model']))}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": arch,
                    "families": [arch],
                    "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M",
                },
                "model_info": model_info,
                "capabilities": _capabilities(str(body["model"])),
                "modified_at": _now(),
            }
        )

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, lambda text: {"message": _assistant(text)})

    async def _generate(self, request: Request) -> Response:
        return await self._answer(request, lambda text: {"response": text})

    async def _answer(self, request: Request, piece: Callable[[str], dict[str, Any]]) -> Response:
        started = time.monotonic_ns()
        body = await self._record(request)
        if (missing := self._missing_model(body)) is not None:
            return missing
        text = self.reply(body) if callable(self.reply) else self.reply
        if body.get("format"):
            text = json_reply(text, body["format"])
        options = body.get("options") or {}
        text = _until_stop(text, options.get("stop") or [])
        tokens = re.findall(r"\S+\s*|\s+", text)
        done_reason = "stop"
        limit = options.get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(tokens):  # -1 (and absent): no limit
            tokens, done_reason = tokens[:limit], "length"
        text = "".join(tokens)
        prompt_words = len(re.findall(r"\S+", json.dumps(body.get("messages", body.get("prompt")))))

        def final(content: str) -> dict[str, Any]:
            elapsed = time.monotonic_ns() - started
            return {
                "model": body["model"],
                "created_at": _now(),
                **piece(content),
                "done": True,
                "done_reason": done_reason,
                "total_duration": elapsed,
                "load_duration": 0,
                "prompt_eval_count": prompt_words,
                "prompt_eval_duration": elapsed // 2,
                "eval_count": len(tokens),
                "eval_duration": elapsed // 2,
            }

        if body.get("stream", True) is False:
            await asyncio.sleep(self.token_delay * len(tokens))
            return JSONResponse(final(text))
        model = body["model"]
        chunks = [
            _line({"model": model, "created_at": _now(), **piece(t), "done": False}) for t in tokens
        ]
        return _TokenStream(self, chunks, _line(final("")))

    async def _embed(self, request: Request) -> Response:
        body = await self._record(request)
        if (missing := self._missing_model(body)) is not None:
            return missing
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else list(texts)
        dim = int(body.get("dimensions") or self.embedding_dim)
        scale = self.embedding_scale
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [[scale * v for v in hashed_embedding(str(t), dim)] for t in texts],
                "total_duration": 1000,
                "load_duration": 0,
                "prompt_eval_count": sum(len(str(t).split()) for t in texts),
            }
        )


def _capabilities(model: str) -> list[str]:
    return ["embedding"] if "embed" in model else ["completion", "tools"]


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"
