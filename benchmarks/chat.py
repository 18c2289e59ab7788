"""Chat benchmark: time to first token and total latency through the whole stack, beside a
direct ``ollama`` client call to the same Ollama stand-in, in one run.

    uv run python benchmarks/chat.py [--token-delay 0.02] [--tokens 20] [--requests 40]

Starts the four services as processes on loopback (``bruno_testing.BrunoSystem``: the ONNX
embedding model, LanceDB in a temporary directory), ingests the demo corpus, and points
generation at the wire-level Ollama stand-in, which streams a fixed answer with a fixed delay
before every token. Then, at concurrency 1 and 16, it times:

- direct: ``ollama.AsyncClient.chat(stream=True)`` against the stand-in;
- edge: ``POST /api/v1/chat`` with ``stream: true`` (retrieval, prompt, generation over gRPC,
  SSE), time to the first ``token`` event and to the ``done`` event.

It prints p50 / p95 of both, their ratio and the absolute overhead the stack adds. This is a
benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from ollama import AsyncClient

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

MODEL = "llama3.2"
DEMO = Path(__file__).resolve().parents[1] / "demo"
QUESTIONS = [
    "Which GPU does the Ollama node have?",
    "How do I restore the LanceDB volume?",
    "How often does Velero take backups?",
    "Where does Pi-hole forward the cluster domain?",
]


@dataclass(frozen=True)
class Timing:
    ttft: float
    total: float
    retrieval: float = 0.0  # the edge's own retrieval_ms (history, rewrite, search), in seconds


async def direct_call(client: AsyncClient, question: str) -> Timing:
    started = time.perf_counter()
    first: float | None = None
    stream = await client.chat(
        model=MODEL, messages=[{"role": "user", "content": question}], stream=True
    )
    async for part in stream:
        if first is None and part.message.content:
            first = time.perf_counter()
    end = time.perf_counter()
    return Timing((first or end) - started, end - started)


async def edge_call(client: httpx.AsyncClient, question: str) -> Timing:
    started = time.perf_counter()
    first: float | None = None
    body = {"message": question, "stream": True}
    retrieval = 0.0
    done = False
    async with client.stream("POST", "/api/v1/chat", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("event: token"):
                first = time.perf_counter()
            elif line.startswith("event: done"):
                done = True
            elif done and line.startswith("data:"):
                retrieval = json.loads(line.removeprefix("data:"))["timings_ms"]["retrieval_ms"]
                done = False
            elif line.startswith("event: error"):
                raise RuntimeError("the edge answered with an error event")
    end = time.perf_counter()
    return Timing((first or end) - started, end - started, retrieval / 1000)


async def run(
    call: Callable[[str], Awaitable[Timing]], *, concurrency: int, requests: int
) -> list[Timing]:
    queue = list(range(requests))
    timings: list[Timing] = []

    async def worker() -> None:
        while queue:
            n = queue.pop()
            timings.append(await call(QUESTIONS[n % len(QUESTIONS)]))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def measure(system: BrunoSystem, ollama_url: str, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    # One client per path, kept for the run: connection set-up is not what is measured.
    ollama = AsyncClient(host=ollama_url)
    async with httpx.AsyncClient(base_url=system.edge_url, timeout=120, limits=limits) as client:
        for path in sorted(DEMO.glob("*.md")):
            doc = {"id": path.name, "title": path.stem, "text": path.read_text()}
            (await client.post("/api/v1/documents", json=doc)).raise_for_status()
        # Warm both paths (model load, first connections, LanceDB caches).
        await run(lambda q: edge_call(client, q), concurrency=2, requests=8)
        await run(lambda q: direct_call(ollama, q), concurrency=2, requests=8)

        print(
            f"\nstand-in: {args.tokens} tokens, {ms(args.token_delay)} ms before each token; "
            f"{args.requests} requests per row\n"
        )
        print(
            "| concurrency | path | TTFT p50 | TTFT p95 | total p50 | total p95 | retrieval p50 |"
        )
        print("|---|---|---|---|---|---|---|")
        summary = []
        for concurrency in (1, 16):
            requests = args.requests if concurrency == 1 else max(args.requests, 4 * concurrency)
            direct = await run(
                lambda q: direct_call(ollama, q), concurrency=concurrency, requests=requests
            )
            edge = await run(
                lambda q: edge_call(client, q), concurrency=concurrency, requests=requests
            )
            for name, timings in (("direct ollama", direct), ("edge (full stack)", edge)):
                ttft = [t.ttft for t in timings]
                total = [t.total for t in timings]
                retrieval = ms(pct([t.retrieval for t in timings], 0.5)) if timings is edge else "-"
                print(
                    f"| {concurrency} | {name} | {ms(pct(ttft, 0.5))} | {ms(pct(ttft, 0.95))} | "
                    f"{ms(pct(total, 0.5))} | {ms(pct(total, 0.95))} | {retrieval} |"
                )
            d50 = statistics.median(t.ttft for t in direct)
            e50 = statistics.median(t.ttft for t in edge)
            dt50 = statistics.median(t.total for t in direct)
            et50 = statistics.median(t.total for t in edge)
            summary.append((concurrency, e50 - d50, e50 / d50, et50 - dt50, et50 / dt50))
        print("\n| concurrency | TTFT overhead p50 | TTFT ratio | total overhead | total ratio |")
        print("|---|---|---|---|---|")
        for concurrency, dttft, rttft, dtotal, rtotal in summary:
            print(
                f"| {concurrency} | +{ms(dttft)} ms | {rttft:.2f}x | +{ms(dtotal)} ms | "
                f"{rtotal:.2f}x |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    print(
        f"# bench-chat {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    reply = " ".join(f"word{n}" for n in range(args.tokens - 1)) + " [1]."
    standin = OllamaStandIn(models=[MODEL], token_delay=args.token_delay, reply=reply)
    with InBackground(standin) as ollama, tempfile.TemporaryDirectory() as workdir:
        # The questions repeat (four of them), so the query-vector cache would answer all but
        # the first embedding of each: off, so every chat pays for embedding its question.
        env = {"BRUNO_LOG_LEVEL": "WARNING", "BRUNO_QUERY_CACHE_SIZE": "0"}
        with BrunoSystem(Path(workdir), ollama_host=ollama.url, env=env) as system:
            asyncio.run(measure(system, ollama.url, args))


if __name__ == "__main__":
    main()
