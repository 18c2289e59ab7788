"""Overhead benchmark: Bruno's fixed cost per request against a minimal stack, in one run.

    uv run python benchmarks/overhead.py [--rounds 5] [--requests 40] [--chat-requests 32]
    uv run python benchmarks/overhead.py --chat-only  # only the chat rows
    uv run python benchmarks/overhead.py --search-only  # only the sequential rows
    uv run python benchmarks/overhead.py --throughput-only  # only the c=16 search rows

Starts the four services as processes on loopback (``bruno_testing.BrunoSystem``: embedded
defaults, one API key with a rate limit too high to refuse anything, so the key check and the
limiter run but never shed) and the minimal stack of ``benchmarks/minimal_stack.py`` (a bare
FastAPI route → a bare ``grpc.aio`` method → LanceDB's async FTS, and for hybrid the vector query
concurrently), both holding the same one-chunk document. Then, in ``--rounds`` interleaved
rounds of ``--requests`` sequential calls each (kept-alive connections), it times:

- ``POST /api/v1/search`` text and hybrid (the query vector cached by retrieval; the minimal
  stack has it precomputed) against the minimal stack's ``POST /search``;
- ``GET /api/v1/collections`` and ``GET /api/v1/documents`` against one minimal text search;

with each process's CPU milliseconds per call of every row (Bruno's edge and retrieval, the
minimal stack's HTTP and gRPC processes; from ``/proc``, Linux), summed over the rounds;

and once: chat time to first token through the edge against the official ``ollama`` client
calling the Ollama stand-in directly and against the minimal stack's chat (the question
embedded in its gRPC process by the same model, both legs, the answer streamed from the
stand-in), at concurrency 1 and 16 (distinct questions, so the query cache misses; generation
may ask the stand-in 16 answers at once, as the direct calls do), with each process's CPU
milliseconds per chat (from ``/proc``, Linux), and search throughput at concurrency 16 with
distinct questions (served and shed apart), Bruno's and the minimal stack's (its question
embedded the same way).

Within a round, each of Bruno's searches alternates call by call with the minimal stack's
search of the same mode, so a noisy moment of the machine lands on both. It prints the p50 of
every round, the spread of the per-round ratios and the ratio of the p50s of all calls. A
benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import lancedb
import pyarrow as pa
from chat import direct_call
from lancedb.index import FTS
from machine import cpu_seconds, footer, header
from ollama import AsyncClient
from restore_stack import (
    DOCUMENT,
    KEY,
    MODEL,
    QUERY,
    add_setting_option,
    distinct_question,
    pids,
    restore_stack,
    settings,
)

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port

HERE = Path(__file__).resolve().parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def timed(call: Callable[[], Awaitable[object]], requests: int) -> list[float]:
    """Seconds each of ``requests`` sequential calls took."""
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


async def timed_alternating(
    calls: list[Callable[[], Awaitable[object]]], requests: int
) -> list[list[float]]:
    """Seconds each of ``requests`` sequential calls of every one of ``calls`` took, the calls
    taken in turn (A B, then B A, ...), so each pair meets the same moment of a noisy machine."""
    times: list[list[float]] = [[] for _ in calls]
    for n in range(requests):
        order = range(len(calls)) if n % 2 == 0 else reversed(range(len(calls)))
        for index in order:
            started = time.perf_counter()
            await calls[index]()
            times[index].append(time.perf_counter() - started)
    return times


async def ok(response: Awaitable[httpx.Response]) -> httpx.Response:
    answer = await response
    answer.raise_for_status()
    return answer


@contextmanager
def minimal_stack(
    workdir: Path, vector: list[float], ollama_url: str, pids: dict[str, int] | None = None
) -> Iterator[str]:
    """The minimal stack's processes on loopback, holding DOCUMENT; yields its HTTP URL (and
    puts its processes' ids in ``pids``, as ``minimal http`` and ``minimal grpc``)."""
    db_path = workdir / "minimal"
    table = pa.table(
        {
            "document_id": ["restore.md"],
            "chunk_id": ["restore.md#0"],
            "title": ["Restore"],
            "source": ["restore.md"],
            "text": [DOCUMENT],
            "vector": pa.array([vector], type=pa.list_(pa.float32(), len(vector))),
        }
    )
    created = lancedb.connect(db_path).create_table("chunks", table)
    created.create_index(  # the sync API's FTS index, like retrieval's native one
        "text", config=FTS()
    )
    vector_file = workdir / "vector.json"
    vector_file.write_text(json.dumps(vector))
    grpc_port, http_port = free_port(), free_port()
    script = str(HERE / "minimal_stack.py")
    grpc_side = [sys.executable, script, "grpc", "--port", str(grpc_port), "--db", str(db_path)]
    http_side = [
        *(sys.executable, script, "http", "--port", str(http_port)),
        *("--ollama", ollama_url, "--model", MODEL),
    ]
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [*grpc_side, "--vector-file", str(vector_file)]
        ),
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [*http_side, "--grpc", f"127.0.0.1:{grpc_port}"]
        ),
    ]
    if pids is not None:
        pids.update({"minimal grpc": processes[0].pid, "minimal http": processes[1].pid})
    url = f"http://127.0.0.1:{http_port}"
    try:
        # The gRPC side first: the HTTP side logs a traceback for each search it cannot pass on.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=180)  # a loaded machine is slow
        deadline = time.monotonic() + 180
        while True:
            try:
                body = {"query": QUERY, "mode": "text"}
                if httpx.post(f"{url}/search", json=body, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the minimal stack did not answer")
            time.sleep(0.2)
        yield url
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def chat_ttft(
    client: httpx.AsyncClient, question: str, timings: list[dict[str, float]] | None = None
) -> float:
    """The time to the first token event; the ``done`` event's ``timings_ms`` go to
    ``timings``."""
    started = time.perf_counter()
    async with client.stream(
        "POST", "/api/v1/chat", json={"message": question, "stream": True}
    ) as response:
        response.raise_for_status()
        first: float | None = None
        event = ""
        async for line in response.aiter_lines():  # read to the end: the stream's whole cost
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            if first is None and event == "token":
                first = time.perf_counter() - started
            elif event == "error":
                raise RuntimeError("the edge answered with an error event")
            elif event == "done" and timings is not None and line.startswith("data: "):
                timings.append(json.loads(line.removeprefix("data: "))["timings_ms"])
    if first is None:
        raise RuntimeError("the chat streamed no token")
    return first


async def minimal_chat_ttft(client: httpx.AsyncClient, question: str) -> float:
    """The time to the minimal stack's first token event (its stream read to the end)."""
    started = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", "/chat", json={"message": question}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: "):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the minimal chat streamed no token")
    return first


async def minimal_chat(client: httpx.AsyncClient, offset: int, n: int) -> float:
    return await minimal_chat_ttft(client, distinct_question(offset + n))


async def edge_chat(
    client: httpx.AsyncClient, offset: int, timings: list[dict[str, float]], n: int
) -> float:
    return await chat_ttft(client, distinct_question(offset + n), timings)


async def direct_ttft(client: AsyncClient, question: str) -> float:
    """Time to first token of ``question`` asked of Ollama directly (the official client)."""
    return (await direct_call(client, question)).ttft


async def concurrently(
    call: Callable[[int], Awaitable[float]], concurrency: int, requests: int
) -> list[float]:
    numbers = list(range(requests))
    results: list[float] = []

    async def worker() -> None:
        while numbers:
            results.append(await call(numbers.pop()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def cpu_per_chat(before: dict[str, float], after: dict[str, float], chats: int) -> str:
    """Each process's CPU milliseconds per chat between two :func:`cpu_seconds` readings."""
    return ", ".join(
        f"{name} {(after[name] - before[name]) * 1000 / chats:.1f}"
        for name in after
        if name in before
    )


#: The processes whose CPU each sequential row reports.
SERVING = {"bruno": ("edge", "retrieval"), "minimal": ("minimal http", "minimal grpc")}
# The sequential rows, measured group by group; a group's calls alternate call by call.
SEQUENTIAL_GROUPS = (
    ("bruno text", "minimal text"),
    ("bruno hybrid", "minimal hybrid"),
    ("bruno collections",),
    ("bruno documents",),
)


async def measure(
    system: BrunoSystem,
    minimal_url: str,
    minimal_pids: dict[str, int],
    ollama_url: str,
    args: argparse.Namespace,
) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx.AsyncClient(
            base_url=system.edge_url, headers=headers, timeout=60, limits=limits
        ) as bruno,
        httpx.AsyncClient(base_url=minimal_url, timeout=60, limits=limits) as minimal,
    ):
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "bruno text": lambda: ok(
                bruno.post("/api/v1/search", json={"query": QUERY, "mode": "text"})
            ),
            "minimal text": lambda: ok(
                minimal.post("/search", json={"query": QUERY, "mode": "text"})
            ),
            "bruno hybrid": lambda: ok(
                bruno.post("/api/v1/search", json={"query": QUERY, "mode": "hybrid"})
            ),
            "minimal hybrid": lambda: ok(
                minimal.post("/search", json={"query": QUERY, "mode": "hybrid"})
            ),
            "bruno collections": lambda: ok(bruno.get("/api/v1/collections")),
            "bruno documents": lambda: ok(bruno.get("/api/v1/documents")),
        }
        if args.chat_only:
            await measure_chat(system, bruno, minimal, minimal_pids, ollama_url, args)
            return
        if args.throughput_only:
            await measure_throughput(bruno, minimal, 0, args)
            return
        for call in calls.values():  # warm: connections, caches, the query vector
            await timed(call, 10)
        rounds: dict[str, list[float]] = {name: [] for name in calls}
        every: dict[str, list[float]] = {name: [] for name in calls}
        cpu: dict[str, dict[str, float]] = {name: {} for name in calls}
        print(
            f"\n{args.rounds} rounds of {args.requests} sequential calls, p50 ms per round; "
            "Bruno's and the minimal stack's calls of one mode alternate call by call\n"
        )
        print("| call | " + " | ".join(f"round {n + 1}" for n in range(args.rounds)) + " |")
        print("|---|" + "---|" * args.rounds)
        for _ in range(args.rounds):
            for group in SEQUENTIAL_GROUPS:
                before = cpu_seconds(pids(system) | minimal_pids)
                times = await timed_alternating([calls[name] for name in group], args.requests)
                after = cpu_seconds(pids(system) | minimal_pids)
                for name, taken in zip(group, times, strict=True):
                    rounds[name].append(pct(taken, 0.5))
                    every[name].extend(taken)
                    # A group pairs one stack's call with the other's (or with none), so
                    # each process's CPU is its stack's call's.
                    for process in SERVING[name.split()[0]]:
                        if process in before and process in after:
                            spent = after[process] - before[process]
                            cpu[name][process] = cpu[name].get(process, 0.0) + spent
        for name, p50s in rounds.items():
            print(f"| {name} | " + " | ".join(ms(p) for p in p50s) + " |")
        calls_made = args.rounds * args.requests
        print(
            "\nCPU ms per call, by process (all rounds): "
            + "; ".join(
                f"{name}: "
                + ", ".join(
                    f"{process} {seconds * 1000 / calls_made:.2f}"
                    for process, seconds in spent.items()
                )
                for name, spent in cpu.items()
            )
        )

        def spread(values: list[float], unit: str = "") -> str:
            return f"{min(values):.2f}-{max(values):.2f}{unit}"

        def ratios(a: str, b: str) -> list[float]:
            return [x / y for x, y in zip(rounds[a], rounds[b], strict=True)]

        def pooled(a: str, b: str) -> str:
            return f"{pct(every[a], 0.5) / pct(every[b], 0.5):.2f}x"

        print(
            "\n| measure | Bruno p50 | minimal p50 | ratio (per round) | ratio (p50 of all calls) |"
        )
        print("|---|---|---|---|---|")
        for mode in ("text", "hybrid"):
            print(
                f"| search, {mode} | {spread([p * 1000 for p in rounds[f'bruno {mode}']])} ms | "
                f"{spread([p * 1000 for p in rounds[f'minimal {mode}']])} ms | "
                f"{spread(ratios(f'bruno {mode}', f'minimal {mode}'), 'x')} | "
                f"{pooled(f'bruno {mode}', f'minimal {mode}')} |"
            )
        for listing in ("collections", "documents"):
            print(
                f"| list {listing} | {spread([p * 1000 for p in rounds[f'bruno {listing}']])} ms | "
                f"{spread([p * 1000 for p in rounds['minimal text']])} ms (text search) | "
                f"{spread(ratios(f'bruno {listing}', 'minimal text'), 'x')} | "
                f"{pooled(f'bruno {listing}', 'minimal text')} |"
            )
        if args.search_only:
            return

        offset = await measure_chat(system, bruno, minimal, minimal_pids, ollama_url, args)
        await measure_throughput(bruno, minimal, offset, args)


async def measure_throughput(
    bruno: httpx.AsyncClient, minimal: httpx.AsyncClient, offset: int, args: argparse.Namespace
) -> None:
    """The rows of hybrid searches of distinct questions sixteen at once, Bruno's and the
    minimal stack's (questions numbered from ``offset``)."""
    print(
        "\n| search, c=16, distinct questions (hybrid) | answered/s | served p50 | "
        "served p99 | shed (503) | shed p50 |"
    )
    print("|---|---|---|---|---|---|")
    requests = args.throughput_requests
    for name, client, path, extra in (
        ("bruno", bruno, "/api/v1/search", {}),
        ("minimal", minimal, "/search", {"embed": True}),
    ):
        served, shed, elapsed = await distinct_searches(
            client, path, extra, 100_000 + offset, requests
        )
        offset += requests
        shed_p50 = f"{ms(pct(shed, 0.5))} ms" if shed else "-"
        print(
            f"| {name}, {requests} requests | {len(served) / elapsed:.1f} | "
            f"{ms(pct(served, 0.5))} ms | {ms(pct(served, 0.99))} ms | {len(shed)} | "
            f"{shed_p50} |"
        )


async def distinct_searches(
    client: httpx.AsyncClient, path: str, extra: dict[str, bool], first: int, requests: int
) -> tuple[list[float], list[float], float]:
    """``requests`` hybrid searches of distinct questions (numbered from ``first``), sixteen at
    once: the seconds of those served and of those shed (503), and the seconds it all took."""
    served: list[float] = []
    shed: list[float] = []

    async def search(n: int) -> float:
        started = time.perf_counter()
        answer = await client.post(path, json={"query": distinct_question(first + n), **extra})
        took = time.perf_counter() - started
        if answer.status_code == 503:
            shed.append(took)
        else:
            answer.raise_for_status()
            served.append(took)
        return took

    started = time.perf_counter()
    await concurrently(search, 16, requests)
    return served, shed, time.perf_counter() - started


async def measure_chat(
    system: BrunoSystem,
    bruno: httpx.AsyncClient,
    minimal: httpx.AsyncClient,
    minimal_pids: dict[str, int],
    ollama_url: str,
    args: argparse.Namespace,
) -> int:
    """The chat TTFT rows (direct Ollama, the minimal stack's chat, Bruno's), and each
    process's CPU per chat; returns the next question number."""
    ollama = AsyncClient(host=ollama_url)
    await concurrently(lambda n: direct_ttft(ollama, distinct_question(n)), 2, 4)
    await concurrently(lambda n: minimal_chat_ttft(minimal, distinct_question(5_000 + n)), 2, 4)
    await concurrently(lambda n: chat_ttft(bruno, distinct_question(10_000 + n)), 2, 4)
    print(
        "\n| chat TTFT | direct p50 | minimal p50 | edge p50 | minimal added | edge added | "
        "edge / direct | edge / minimal | edge p95 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    offset = 20_000
    cpu: list[str] = []
    stages: list[str] = []
    for concurrency in (1, 16):
        requests = max(args.chat_requests, 2 * concurrency)
        direct = await concurrently(
            lambda n: direct_ttft(ollama, distinct_question(n)), concurrency, requests
        )
        before = cpu_seconds(minimal_pids)
        floor = await concurrently(
            functools.partial(minimal_chat, minimal, offset), concurrency, requests
        )
        minimal_cpu = cpu_per_chat(before, cpu_seconds(minimal_pids), requests)
        offset += requests
        before = cpu_seconds(pids(system))
        timings: list[dict[str, float]] = []
        edge = await concurrently(
            functools.partial(edge_chat, bruno, offset, timings), concurrency, requests
        )
        cpu.append(
            f"c={concurrency}: {cpu_per_chat(before, cpu_seconds(pids(system)), requests)}; "
            f"{minimal_cpu}"
        )
        stages.append(
            f"c={concurrency}: "
            + ", ".join(
                f"{stage} {ms(pct([t[stage] / 1000 for t in timings], 0.5))}"
                for stage in ("retrieval_ms", "ttft_ms", "total_ms")
            )
        )
        offset += requests
        d50, m50, e50 = pct(direct, 0.5), pct(floor, 0.5), pct(edge, 0.5)
        print(
            f"| c={concurrency} | {ms(d50)} ms | {ms(m50)} ms | {ms(e50)} ms | "
            f"+{ms(m50 - d50)} ms | +{ms(e50 - d50)} ms | {e50 / d50:.2f}x | "
            f"{e50 / m50:.2f}x | {ms(pct(edge, 0.95))} ms |"
        )
    print("\nCPU ms per chat, by process (to the end of its stream): " + " / ".join(cpu))
    print("The edge's own timings (the done event), p50 ms: " + "; ".join(stages))
    return offset


def query_vector(system: BrunoSystem) -> list[float]:
    """The query's vector from Bruno's own embedding service, for the minimal stack."""
    with grpc.insecure_channel(f"127.0.0.1:{system.ports['embedding']}") as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        request = embedding_pb2.EmbedRequest(
            texts=[QUERY], input_type=embedding_pb2.INPUT_TYPE_QUERY
        )
        return list(stub.Embed(request, timeout=30).vectors[0].values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--chat-requests", type=int, default=32)
    parser.add_argument("--throughput-requests", type=int, default=480)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument(
        "--chat-only", action="store_true", help="only the chat rows (and CPU per chat)"
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the rows of distinct hybrid searches sixteen at once",
    )
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="only the sequential rows: searches and listings (and CPU per call)",
    )
    add_setting_option(parser)
    args = parser.parse_args()
    print(header("bench-overhead"))
    standin = OllamaStandIn(models=[MODEL], token_delay=args.token_delay, reply="It is [1].")
    with InBackground(standin) as ollama, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {
            # Sixteen chats of one key at once are the measure, not a key to hold back (a slot
            # is freed just after the client has read the end of its stream, hence twice that).
            "BRUNO_CONCURRENT_CHATS": "32",
            # The stand-in answers any number of chats at once, as the direct calls measure it:
            # generation may ask it as many (its default of one is a small GPU's queue, not
            # the fixed cost this measures).
            "BRUNO_OLLAMA_PARALLEL": "16",
            **settings(args),
        }
        with restore_stack(workdir, ollama.url, env) as system:
            minimal_pids: dict[str, int] = {}
            vector = query_vector(system)
            with minimal_stack(workdir, vector, ollama.url, minimal_pids) as minimal_url:
                asyncio.run(measure(system, minimal_url, minimal_pids, ollama.url, args))
    print(footer())


if __name__ == "__main__":
    main()
