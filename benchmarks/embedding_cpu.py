"""Embedding CPU benchmark: what one distinct query costs the embedding service, in CPU time of
its process and in latency, one client at a time and sixteen at once.

    uv run python benchmarks/embedding_cpu.py [--queries 800] [--concurrency 1,16] [--rounds 3]
        [--model all-MiniLM-L6-v2-int8-dynamic,all-MiniLM-L6-v2-int8]

The real embedding service (the built-in ONNX all-MiniLM-L6-v2 models) starts as a process
(``python -m bruno_embedding``, configured only through ``BRUNO_*``: set e.g.
``BRUNO_EMBEDDING_THREADS`` in the environment to try a setting). The clients call its gRPC
``Embed`` straight, one short question per request, each question asked once (as the retrieval
service does for a search whose question no cache holds), ``INPUT_TYPE_QUERY``. With
``--model`` the requests name each of those models in turn (``EmbedRequest.model``, as the
retrieval service does for a collection's model), every round once per model, all through the
one service; without it they name none and get the service's default.

The service's resident memory (``VmRSS``) is printed after it starts (the default model
loaded) and after the first requests naming each other model (which load it).

CPU is ``utime + stime`` of the service's process from ``/proc/<pid>/stat`` before and after
each round, divided by the round's queries; the main thread (gRPC server, event loop) is
counted apart from the others (the batcher's worker, ONNX Runtime's pool, gRPC's pollers), from
``/proc/<pid>/task/<pid>/stat``. CPU time is much less inflated than wall time on a shared
machine, so it is what to compare between two versions; rounds alternate the concurrencies.

This is a benchmark, not a test: it prints a table and asserts nothing. See docs/benchmarks.md,
"Third pass: embedding".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core.grpc_client import check_health
from bruno_embedding.onnx_embedder import ONNX_MODELS
from bruno_testing.system import free_port

TICKS = os.sysconf("SC_CLK_TCK")
TOPICS = ["backup", "restore", "volume", "snapshot", "retrieval", "velero", "night", "table"]


def question(n: int) -> str:
    """A question no other request asks, of a search's usual length (~20 word pieces)."""
    return f"How does Velero {TOPICS[n % len(TOPICS)]} the LanceDB volume? (ticket {n})"


def cpu_seconds(stat: Path) -> float:
    """``utime + stime`` of a process or thread, in seconds."""
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_service(address: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BRUNO_EMBEDDING_LISTEN_ADDR": address, "BRUNO_LOG_LEVEL": "WARNING"}
    with (workdir / "embedding.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bruno_embedding"], env=env, stdout=log, stderr=log
        )


async def wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        while await check_health(channel) != "SERVING":
            if process.poll() is not None:
                raise RuntimeError(f"the embedding service exited with {process.returncode}")
            await asyncio.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


async def one_round(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
    pid: int,
    first: int,
    queries: int,
    c: int,
    model: str = "",
) -> dict[str, float]:
    """``queries`` distinct questions from ``c`` clients to ``model`` (``""``: the default);
    CPU per query (ms), latency, rate."""
    latencies: list[float] = []
    numbers = iter(range(first, first + queries))

    async def client() -> None:
        for n in numbers:
            request = embedding_pb2.EmbedRequest(
                texts=[question(n)], input_type=embedding_pb2.INPUT_TYPE_QUERY, model=model
            )
            started = time.perf_counter()
            response = await stub.Embed(request, timeout=60)
            latencies.append(time.perf_counter() - started)
            if len(response.vectors) != 1 or len(response.vectors[0].values) != 384:
                raise RuntimeError("the answer is not one 384-float vector")

    process, main = Path(f"/proc/{pid}/stat"), Path(f"/proc/{pid}/task/{pid}/stat")
    cpu0, main0, wall0 = cpu_seconds(process), cpu_seconds(main), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(c)))
    wall = time.perf_counter() - wall0
    cpu, main_cpu = cpu_seconds(process) - cpu0, cpu_seconds(main) - main0
    return {
        "cpu": 1000 * cpu / queries,
        "main": 1000 * main_cpu / queries,
        "others": 1000 * (cpu - main_cpu) / queries,
        "p50": 1000 * pct(latencies, 0.5),
        "p99": 1000 * pct(latencies, 0.99),
        "rate": queries / wall,
    }


async def run(queries: int, concurrencies: list[int], rounds: int, models: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        address = f"127.0.0.1:{free_port()}"
        process = start_service(address, Path(tmp))
        try:
            async with asyncio.timeout(180):
                await wait_serving(address, process)
            async with grpc.aio.insecure_channel(address) as channel:
                stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
                info = await stub.Info(embedding_pb2.InfoRequest())
                memory = [f"{rss_mib(process.pid):.0f} MiB with {info.model} loaded"]
                # Warm the channel, the servicer and ORT's kernels for short inputs (and load
                # each model named).
                for model in models:
                    await one_round(stub, process.pid, 10**6, 64, 4, model)
                    loaded = model or info.model
                    memory.append(f"{rss_mib(process.pid):.0f} MiB after asking {loaded}")
                results: dict[tuple[str, int], list[dict[str, float]]] = {
                    (model, c): [] for model in models for c in concurrencies
                }
                first = 0
                for _ in range(rounds):
                    for c in concurrencies:
                        for model in models:
                            results[model, c].append(
                                await one_round(stub, process.pid, first, queries, c, model)
                            )
                            first += queries
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, {queries} queries a round, {rounds} rounds, "
        f"BRUNO_EMBEDDING_* = "
        f"{ {k: v for k, v in os.environ.items() if k.startswith('BRUNO_EMBEDDING')} }"
    )
    print(f"resident memory: {'; '.join(memory)}")
    print(
        "| model | c | CPU ms/query | main thread | other threads | p50 ms | p99 ms | queries/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (model, c), rows in results.items():

        def col(key: str, rows: list[dict[str, float]] = rows) -> str:
            values = sorted(row[key] for row in rows)
            return f"{pct(values, 0.5):.2f} ({values[0]:.2f} to {values[-1]:.2f})"

        print(
            f"| {model or info.model} | {c} | {col('cpu')} | {col('main')} | {col('others')} "
            f"| {col('p50')} | {col('p99')} | {col('rate')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=800, help="queries per round")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model",
        default="",
        help="comma-separated built-in models to ask for by name, rounds alternating them "
        f"({', '.join(ONNX_MODELS)}); unset: the service's default",
    )
    args = parser.parse_args()
    models = args.model.split(",")
    unknown = set(models) - {"", *ONNX_MODELS}
    if unknown:
        parser.error(f"not a built-in model: {', '.join(sorted(unknown))}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    asyncio.run(run(args.queries, concurrencies, args.rounds, models))


if __name__ == "__main__":
    main()
