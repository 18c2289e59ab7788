"""The minimal stack `make bench-overhead` measures Bruno against: a bare FastAPI route calling a
bare ``grpc.aio`` method that runs LanceDB's async full-text query (and, for hybrid, the vector
query at the same time) on a table of its own. No auth, validation, telemetry, metrics or
logging: what any service doing this work must pay, and nothing more.

    python benchmarks/minimal_stack.py grpc --port 50100 --db /tmp/min --vector-file v.json
    python benchmarks/minimal_stack.py http --port 8100 --grpc 127.0.0.1:50100

Each runs as its own process, as Bruno's services do. The gRPC side speaks Bruno's own
``Search`` message (``bruno.retrieval.v1``), so both stacks carry the same bytes, and both run
on the loop and HTTP parser Bruno's run on (uvloop, uvicorn's h11 protocol), so the ratio
measures Bruno's own layers and not a faster loop or parser on one side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import lancedb
import uvicorn
from fastapi import FastAPI

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core.event_loop import run_on_event_loop

TABLE = "chunks"
SERVICE = "bruno.retrieval.v1.RetrievalService"
_COLUMNS = ["document_id", "chunk_id", "title", "source", "text"]


async def _serve_grpc(port: int, db_path: str, vector: list[float]) -> None:
    db = await lancedb.connect_async(db_path)
    table = await db.open_table(TABLE)

    async def text(query: str, limit: int) -> list[dict[str, Any]]:
        search = table.query().nearest_to_text(query, columns="text")
        rows: list[dict[str, Any]] = (
            await search.select([*_COLUMNS, "_score"]).limit(limit).to_arrow()
        ).to_pylist()
        return rows

    async def nearest(limit: int) -> list[dict[str, Any]]:
        search = table.query().nearest_to(vector).distance_type("cosine")
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
        return retrieval_pb2.SearchResponse(
            hits=[
                retrieval_pb2.SearchHit(
                    document_id=row["document_id"],
                    chunk_id=row["chunk_id"],
                    title=row["title"],
                    source=row["source"],
                    text=row["text"],
                    score=score,
                )
                for row, score in zip(rows, scores, strict=True)
            ],
            mode=request.mode,
        )

    handler = grpc.unary_unary_rpc_method_handler(
        search,
        request_deserializer=retrieval_pb2.SearchRequest.FromString,
        response_serializer=retrieval_pb2.SearchResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Search": handler})]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def _http_app(grpc_addr: str) -> FastAPI:
    app = FastAPI()
    calls: list[grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = []

    @app.post("/search")
    async def search(body: dict[str, Any]) -> dict[str, Any]:
        if not calls:  # the channel belongs to uvicorn's loop, so it is made on first use
            channel = grpc.aio.insecure_channel(grpc_addr)
            calls.append(
                channel.unary_unary(
                    f"/{SERVICE}/Search",
                    request_serializer=retrieval_pb2.SearchRequest.SerializeToString,
                    response_deserializer=retrieval_pb2.SearchResponse.FromString,
                )
            )
        mode = (
            retrieval_pb2.SEARCH_MODE_TEXT
            if body.get("mode") == "text"
            else retrieval_pb2.SEARCH_MODE_HYBRID
        )
        found: retrieval_pb2.SearchResponse = await calls[0](
            retrieval_pb2.SearchRequest(query=body["query"], top_k=body.get("top_k", 5), mode=mode)
        )
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

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("side", choices=["grpc", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--vector-file")
    parser.add_argument("--grpc")
    args = parser.parse_args()
    if args.side == "grpc":
        vector = json.loads(Path(args.vector_file).read_text())
        run_on_event_loop(_serve_grpc(args.port, args.db, vector))
    else:
        uvicorn.run(
            _http_app(args.grpc),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            loop="uvloop",
            http="h11",
        )


if __name__ == "__main__":
    main()
