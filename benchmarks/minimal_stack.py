"""The minimal stack `make bench-overhead` measures Bruno against: a bare FastAPI route calling a
bare ``grpc.aio`` method that runs LanceDB's async full-text query (and, for hybrid, the vector
query at the same time) on a table of its own. No auth, validation, telemetry, metrics or
logging: what any service doing this work must pay, and nothing more.

For chat, ``POST /chat`` calls ``SearchQuestion``, which embeds the question in the gRPC
process (the same built-in ONNX model and tokenizer as Bruno's default, a bare ONNX Runtime
session with its default options but no spinning, on a worker thread) while the keyword leg
runs, then runs the vector leg; the route puts the passages into a prompt and streams the
answer of the official ``ollama`` client back as server-sent events, one per token.
``POST /search`` with ``"embed": true`` embeds its question the same way. Bruno's own chat
path adds two services (embedding, generation) and the conversation; this is the floor of the
work itself.

    python benchmarks/minimal_stack.py grpc --port 50100 --db /tmp/min --vector-file v.json
    python benchmarks/minimal_stack.py http --port 8100 --grpc 127.0.0.1:50100 \
        --ollama http://127.0.0.1:11434 --model llama3.2

Each runs as its own process, as Bruno's services do. The gRPC side speaks Bruno's own
``Search`` message (``bruno.retrieval.v1``), so both stacks carry the same bytes, and both run
on the loop and HTTP parser Bruno's run on (uvloop, uvicorn's h11 protocol), so the ratio
measures Bruno's own layers and not a faster loop or parser on one side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import lancedb
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from ollama import AsyncClient

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core.event_loop import run_on_event_loop
from bruno_embedding.onnx_embedder import (
    DEFAULT_MODEL,
    load_tokenizer,
    mean_pool_normalise,
    model_file,
)

TABLE = "chunks"
SERVICE = "bruno.retrieval.v1.RetrievalService"
_COLUMNS = ["document_id", "chunk_id", "title", "source", "text"]


class _Model:
    """Bruno's default embedding model, bare: the tokenizer, one ONNX Runtime session with its
    default options but for spinning, mean pooling."""

    def __init__(self) -> None:
        self.tokenizer = load_tokenizer()
        options = ort.SessionOptions()
        # ORT's idle pool threads busy-wait after each run by default: 50 ms of CPU a question
        # on 2 cores, all of it waste (and taken from the other processes' cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model_file(DEFAULT_MODEL)), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def vector(self, text: str) -> list[float]:
        encoding = self.tokenizer.encode(text)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (hidden,) = self.session.run(
            ["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.inputs}
        )
        row: list[float] = mean_pool_normalise(hidden, feeds["attention_mask"])[0].tolist()
        return row


def _hits(rows: list[dict[str, Any]], scores: list[float]) -> list[retrieval_pb2.SearchHit]:
    return [
        retrieval_pb2.SearchHit(
            document_id=row["document_id"],
            chunk_id=row["chunk_id"],
            title=row["title"],
            source=row["source"],
            text=row["text"],
            score=score,
        )
        for row, score in zip(rows, scores, strict=True)
    ]


async def _serve_grpc(port: int, db_path: str, vector: list[float]) -> None:
    db = await lancedb.connect_async(db_path)
    table = await db.open_table(TABLE)
    model = _Model()
    model.vector("warm-up")

    async def text(query: str, limit: int) -> list[dict[str, Any]]:
        search = table.query().nearest_to_text(query, columns="text")
        rows: list[dict[str, Any]] = (
            await search.select([*_COLUMNS, "_score"]).limit(limit).to_arrow()
        ).to_pylist()
        return rows

    async def nearest(limit: int, to: list[float] = vector) -> list[dict[str, Any]]:
        search = table.query().nearest_to(to).distance_type("cosine")
        rows: list[dict[str, Any]] = (
            await search.select([*_COLUMNS, "_distance"]).limit(limit).to_arrow()
        ).to_pylist()
        return rows

    async def search(
        request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> retrieval_pb2.SearchResponse:
        if request.mode == retrieval_pb2.SEARCH_MODE_TEXT:
            rows = await text(request.query, request.top_k)
            scores = [row["_score"] for row in rows]
        else:
            # Both legs run, as Bruno's do; fusing them is Bruno's work, not the floor's.
            _, rows = await asyncio.gather(
                text(request.query, request.top_k), nearest(request.top_k)
            )
            scores = [1.0 - row["_distance"] for row in rows]
        return retrieval_pb2.SearchResponse(hits=_hits(rows, scores), mode=request.mode)

    async def search_question(
        request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> retrieval_pb2.SearchResponse:
        # The keyword leg runs while the question is embedded, as Bruno's does.
        keyword_leg = asyncio.ensure_future(text(request.query, request.top_k))
        question = await asyncio.to_thread(model.vector, request.query)
        rows = await nearest(request.top_k, question)
        await keyword_leg  # fusing is Bruno's work, not the floor's
        scores = [1.0 - row["_distance"] for row in rows]
        return retrieval_pb2.SearchResponse(hits=_hits(rows, scores), mode=request.mode)

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=retrieval_pb2.SearchRequest.FromString,
            response_serializer=retrieval_pb2.SearchResponse.SerializeToString,
        )
        for name, method in (("Search", search), ("SearchQuestion", search_question))
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def _http_app(grpc_addr: str, ollama_url: str, model: str) -> FastAPI:
    app = FastAPI()
    calls: list[grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = []
    clients: list[AsyncClient] = []

    def method(name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        if not calls:  # the channel belongs to uvicorn's loop, so it is made on first use
            channel = grpc.aio.insecure_channel(grpc_addr)
            calls.extend(
                channel.unary_unary(
                    f"/{SERVICE}/{rpc}",
                    request_serializer=retrieval_pb2.SearchRequest.SerializeToString,
                    response_deserializer=retrieval_pb2.SearchResponse.FromString,
                )
                for rpc in ("Search", "SearchQuestion")
            )
        return calls[0] if name == "Search" else calls[1]

    @app.post("/search")
    async def search(body: dict[str, Any]) -> dict[str, Any]:
        mode = (
            retrieval_pb2.SEARCH_MODE_TEXT
            if body.get("mode") == "text"
            else retrieval_pb2.SEARCH_MODE_HYBRID
        )
        # "embed": the question is embedded (a distinct question), else the vector is cached.
        found: retrieval_pb2.SearchResponse = await method(
            "SearchQuestion" if body.get("embed") else "Search"
        )(retrieval_pb2.SearchRequest(query=body["query"], top_k=body.get("top_k", 5), mode=mode))
        return {
            "results": [
                {
                    "document_id": hit.document_id,
                    "chunk_id": hit.chunk_id,
                    "title": hit.title,
                    "source": hit.source,
                    "text": hit.text,
                    "score": hit.score,
                }
                for hit in found.hits
            ]
        }

    @app.post("/chat")
    async def chat(body: dict[str, Any]) -> StreamingResponse:
        if not clients:
            clients.append(AsyncClient(host=ollama_url))
        question = body["message"]
        found: retrieval_pb2.SearchResponse = await method("SearchQuestion")(
            retrieval_pb2.SearchRequest(
                query=question, top_k=5, mode=retrieval_pb2.SEARCH_MODE_HYBRID
            )
        )
        passages = "\n\n".join(f"[{n}] {hit.text}" for n, hit in enumerate(found.hits, 1))
        messages = [
            {"role": "system", "content": f"Answer from these passages, citing [n]:\n{passages}"},
            {"role": "user", "content": question},
        ]
        stream = await clients[0].chat(model=model, messages=messages, stream=True)

        async def tokens() -> AsyncIterator[str]:
            async for part in stream:
                if part.message.content:
                    yield f"data: {json.dumps(part.message.content)}\n\n"

        return StreamingResponse(tokens(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("side", choices=["grpc", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--vector-file")
    parser.add_argument("--grpc")
    parser.add_argument("--ollama", default="http://127.0.0.1:11434")
    parser.add_argument("--model", default="llama3.2")
    args = parser.parse_args()
    if args.side == "grpc":
        vector = json.loads(Path(args.vector_file).read_text())
        run_on_event_loop(_serve_grpc(args.port, args.db, vector))
    else:
        uvicorn.run(
            _http_app(args.grpc, args.ollama, args.model),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            loop="uvloop",
            http="h11",
        )


if __name__ == "__main__":
    main()
