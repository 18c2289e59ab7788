"""Chat benchmark: time to first token and total latency through the whole stack, beside a
direct ``ollama`` client call to the same Ollama stand-in, in one run.

    uv run python benchmarks/chat.py [--token-delay 0.02] [--tokens 20] [--requests 40]
    uv run python benchmarks/chat.py --under-ingest [--ingesters 4] [--requests 40]

Starts the four services as processes on loopback (``bruno_testing.BrunoSystem``: the ONNX
embedding model, LanceDB in a temporary directory), ingests the demo corpus, and points
generation at the wire-level Ollama stand-in, which streams a fixed answer with a fixed delay
before every token. Then, at concurrency 1 and 16, it times:

- direct: ``ollama.AsyncClient.chat(stream=True)`` against the stand-in;
- edge: ``POST /api/v1/chat`` with ``stream: true`` (retrieval, prompt, generation over gRPC,
  SSE), time to the first ``token`` event and to the ``done`` event.

It prints p50 / p95 of both, their ratio and the absolute overhead the stack adds.

With ``--under-ingest`` it times instead one person chatting (concurrency 1, streamed, time
to the first ``token`` event), first on an idle system, then while ``--ingesters`` clients
keep ingesting large generated documents into another collection as fast as the edge takes
them; it prints both, their ratio, the ingest's rate meanwhile and the embedding service's
queue waits per priority (``bruno_queue_wait_seconds``). This is a benchmark, not a test: it
asserts nothing. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from machine import header
from ollama import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port

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


async def ingest_demo_and_warm(client: httpx.AsyncClient) -> None:
    for path in sorted(DEMO.glob("*.md")):
        doc = {"id": path.name, "title": path.stem, "text": path.read_text()}
        (await client.post("/api/v1/documents", json=doc)).raise_for_status()
    # Warm the path (model load, first connections, LanceDB caches).
    await run(lambda q: edge_call(client, q), concurrency=2, requests=8)


def bulk_document(number: int, words: int, vocabulary: list[str]) -> dict[str, str]:
    """A generated document of about ``words`` words, in paragraphs of sentences."""
    rng = random.Random(number)  # noqa: S311 - filler text, not secrets
    paragraphs: list[str] = []
    while sum(len(p.split()) for p in paragraphs) < words:
        sentences = [
            " ".join(rng.choices(vocabulary, k=rng.randint(8, 20))).capitalize() + "."
            for _ in range(rng.randint(3, 6))
        ]
        paragraphs.append(" ".join(sentences))
    return {"id": f"bulk-{number}", "title": f"Bulk {number}", "text": "\n\n".join(paragraphs)}


@dataclass
class Ingest:
    """Clients ingesting generated documents into the ``bulk`` collection until stopped."""

    client: httpx.AsyncClient
    words: int
    documents: int = 0
    chunks: int = 0
    refused: int = 0
    failed: int = 0

    async def keep_ingesting(self, stop: asyncio.Event, first: int, step: int) -> None:
        vocabulary = sorted(
            {
                w.strip(".,:;()[]`*#").lower()
                for p in DEMO.glob("*.md")
                for w in p.read_text().split()
            }
            - {""}
        )
        number = first
        while not stop.is_set():
            doc = {**bulk_document(number, self.words, vocabulary), "collection": "bulk"}
            response = await self.client.post("/api/v1/documents", json=doc)
            if response.status_code in (429, 503):  # shed: wait as told, as a client would
                self.refused += 1
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.is_error:  # counted, not fatal: the chats are what is measured
                self.failed += 1
                continue
            self.documents += 1
            self.chunks += response.json()["chunks"]
            number += step


async def queue_waits(metrics_url: str) -> dict[str, tuple[float, float]]:
    """The embedding queue's (requests, mean wait) per priority, from its metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(metrics_url)).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "bruno_queue_wait_seconds":
            continue
        for sample in family.samples:
            priority = sample.labels.get("priority", "")
            if sample.name.endswith("_sum"):
                sums[priority] = sample.value
            elif sample.name.endswith("_count"):
                counts[priority] = sample.value
    return {p: (counts[p], sums.get(p, 0.0) / counts[p] if counts[p] else 0.0) for p in counts}


def minus(
    after: dict[str, tuple[float, float]], before: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Requests and mean wait between two readings of :func:`queue_waits`."""
    result = {}
    for priority, (count, mean) in after.items():
        count0, mean0 = before.get(priority, (0.0, 0.0))
        n = count - count0
        result[priority] = (n, (count * mean - count0 * mean0) / n if n else 0.0)
    return result


async def measure_under_ingest(
    system: BrunoSystem, metrics_url: str, args: argparse.Namespace
) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=system.edge_url, timeout=300, limits=limits) as client:
        await ingest_demo_and_warm(client)
        chat = lambda q: edge_call(client, q)  # noqa: E731 - a one-line binding
        idle_waits = await queue_waits(metrics_url)
        idle = await run(chat, concurrency=1, requests=args.requests)
        idle_waits = minus(await queue_waits(metrics_url), idle_waits)

        ingest = Ingest(client, words=args.bulk_words)
        stop = asyncio.Event()
        ingesters = [
            asyncio.create_task(ingest.keep_ingesting(stop, first=i, step=args.ingesters))
            for i in range(args.ingesters)
        ]
        await asyncio.sleep(5)  # the ingest under way at full rate
        before = (ingest.documents, ingest.chunks, time.perf_counter())
        busy_waits = await queue_waits(metrics_url)
        busy = await run(chat, concurrency=1, requests=args.requests)
        busy_waits = minus(await queue_waits(metrics_url), busy_waits)
        seconds = time.perf_counter() - before[2]
        documents, chunks = ingest.documents - before[0], ingest.chunks - before[1]
        stop.set()
        await asyncio.gather(*ingesters)

    print(
        f"\nstand-in: {args.tokens} tokens, {ms(args.token_delay)} ms before each token; "
        f"{args.requests} chats one after another per row; ingest: {args.ingesters} clients, "
        f"generated documents of ~{args.bulk_words} words into another collection\n"
    )
    print(
        "| system | TTFT p50 | TTFT p95 | total p50 | total p95 | retrieval p50 "
        "| query embeddings (mean wait) | document embeddings (mean wait) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, timings, waits in (("idle", idle, idle_waits), ("ingesting", busy, busy_waits)):
        ttft = [t.ttft for t in timings]
        total = [t.total for t in timings]
        q = waits.get("interactive", (0.0, 0.0))
        d = waits.get("background", (0.0, 0.0))
        print(
            f"| {name} | {ms(pct(ttft, 0.5))} | {ms(pct(ttft, 0.95))} | {ms(pct(total, 0.5))} | "
            f"{ms(pct(total, 0.95))} | {ms(pct([t.retrieval for t in timings], 0.5))} | "
            f"{q[0]:.0f} ({ms(q[1])} ms) | {d[0]:.0f} ({ms(d[1])} ms) |"
        )
    ratio50 = pct([t.ttft for t in busy], 0.5) / pct([t.ttft for t in idle], 0.5)
    ratio95 = pct([t.ttft for t in busy], 0.95) / pct([t.ttft for t in idle], 0.95)
    print(
        f"\nTTFT while ingesting / idle: p50 {ratio50:.2f}x, p95 {ratio95:.2f}x; ingest meanwhile: "
        f"{documents / seconds:.1f} documents/s, {chunks / seconds:.1f} chunks/s "
        f"({ingest.refused} refusals waited out, {ingest.failed} failed)"
    )


async def measure(system: BrunoSystem, ollama_url: str, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    # One client per path, kept for the run: connection set-up is not what is measured.
    ollama = AsyncClient(host=ollama_url)
    async with httpx.AsyncClient(base_url=system.edge_url, timeout=120, limits=limits) as client:
        await ingest_demo_and_warm(client)
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
    parser.add_argument(
        "--under-ingest", action="store_true", help="chat idle and while a large ingest runs"
    )
    parser.add_argument("--ingesters", type=int, default=4, help="clients ingesting at once")
    parser.add_argument("--bulk-words", type=int, default=1500, help="words per ingested document")
    args = parser.parse_args()
    print(header("bench-chat"))
    reply = " ".join(f"word{n}" for n in range(args.tokens - 1)) + " [1]."
    standin = OllamaStandIn(models=[MODEL], token_delay=args.token_delay, reply=reply)
    with InBackground(standin) as ollama, tempfile.TemporaryDirectory() as workdir:
        # The questions repeat (four of them), so the query-vector cache would answer all but
        # the first embedding of each: off, so every chat pays for embedding its question.
        metrics_port = free_port()
        env = {
            "BRUNO_LOG_LEVEL": "WARNING",
            "BRUNO_QUERY_CACHE_SIZE": "0",
            # Sixteen chats of one caller at once are the measure, not a caller to hold back
            # (a slot is freed just after the client has read its stream's end, hence twice).
            "BRUNO_CONCURRENT_CHATS": "32",
            # The stand-in answers any number of chats at once, as the direct calls ask it.
            "BRUNO_OLLAMA_PARALLEL": "16",
            "BRUNO_EMBEDDING_METRICS_PORT": str(metrics_port),
        }
        with BrunoSystem(Path(workdir), ollama_host=ollama.url, env=env) as system:
            if args.under_ingest:
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                asyncio.run(measure_under_ingest(system, metrics_url, args))
            else:
                asyncio.run(measure(system, ollama.url, args))


if __name__ == "__main__":
    main()
