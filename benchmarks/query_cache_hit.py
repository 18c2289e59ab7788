"""CPU of retrieval's embedding client per cached question, in-process, against the same code
of another source tree (#14): the part of a cached search that a model per collection changed.

    uv run python benchmarks/query_cache_hit.py --before DIR [--calls 20000] [--rounds 5]

Each tree runs in a process of its own with its ``services/retrieval/src`` first on
``sys.path``; its ``EmbeddingClient`` (query cache on) embeds one question against
``bruno_testing.fakes.FakeEmbedding`` over loopback gRPC once, then ``--calls`` more times from
the cache per round; a tree whose ``embed`` takes no model asks ``model()`` after each call, as
its search did. Reported: ``time.process_time`` µs per call, min and median over the rounds.
A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md ("Seventh pass").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

MODEL = "all-MiniLM-L6-v2-int8"
QUESTION = "what is the lift of a slender wing at low speed?"


async def measure(calls: int, rounds: int) -> list[float]:
    from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
    from bruno_core import GrpcServer, GrpcServerSettings, create_channel
    from bruno_retrieval.embedding_client import EmbeddingClient
    from bruno_testing.fakes import FakeEmbedding

    server = GrpcServer(
        "embedding", GrpcServerSettings(grpc_grace_seconds=0), listen_addr="127.0.0.1:0"
    )
    server.add_servicer(
        embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        FakeEmbedding({MODEL: 384}),
    )
    port = await server.start()
    client = EmbeddingClient(
        create_channel(f"127.0.0.1:{port}", timeout_seconds=30), query_cache_size=1024
    )
    names_model = "model" in EmbeddingClient.embed.__code__.co_varnames
    query = embedding_pb2.INPUT_TYPE_QUERY
    per_call = []
    try:
        for _ in range(rounds + 1):  # the first fills the cache and warms up
            started = time.process_time()
            for _ in range(calls):
                if names_model:
                    await client.embed([QUESTION], query, MODEL)
                else:
                    await client.embed([QUESTION], query)
                    await client.model()  # type: ignore[attr-defined]
            per_call.append((time.process_time() - started) / calls * 1e6)
    finally:
        await client.close()
        await server.stop()
    return per_call[1:]


def run_tree(tree: Path, calls: int, rounds: int) -> str:
    env = {**os.environ, "QUERY_CACHE_HIT_CHILD": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tree / "services" / "retrieval" / "src"), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--calls", str(calls), "--rounds", str(rounds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another source tree to measure alike")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.environ.get("QUERY_CACHE_HIT_CHILD"):
        per_call = asyncio.run(measure(args.calls, args.rounds))
        print(f"min {min(per_call):.1f} µs, median {statistics.median(per_call):.1f} µs")
        return
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# query cache hit {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}")
    trees = [("branch", Path(__file__).resolve().parent.parent)]
    if args.before is not None:
        trees.append(("before", args.before.resolve()))
    for label, tree in trees + trees:  # each twice, alternating
        print(f"{label}: {run_tree(tree, args.calls, args.rounds)}")


if __name__ == "__main__":
    main()
