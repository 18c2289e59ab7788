"""Embedding ingest benchmark: document chunks per second and CPU per chunk of the embedding
service, for several ONNX Runtime thread settings side by side in one run.

    uv run python benchmarks/embedding_ingest.py [--threads 0,1] [--chunks 192] [--batch 32]
        [--rounds 10]

The Cranfield abstracts (shared/data/cranfield) are cut by the retrieval service's own chunker
at its defaults (200 estimated tokens, 20 overlap), as an ingest cuts a document. One real
embedding service (``python -m bruno_embedding``, the default ONNX model) starts per
``BRUNO_EMBEDDING_THREADS`` value, all at once; each stays idle while another works (its idle
workers do not spin), so the rounds alternate between them, in turns that swap each round, and
a noisy minute of the shared machine lands on every setting alike. A round sends each service
``--chunks`` chunks not sent before, ``INPUT_TYPE_DOCUMENT``, in requests of ``--batch``
texts, two in flight, as the retrieval service sends an ingest's chunks.

It prints each round's chunks/s and the service process's CPU milliseconds per chunk (user +
system, ``/proc/<pid>/stat``), then the medians per setting and the median over rounds of each
setting's chunks/s divided by the first setting's in the same round (short rounds, many of
them, make that ratio the steadiest number when other work shares the machine). A benchmark,
not a test: it asserts nothing. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedding_memory import DEFAULT_CRANFIELD, start_service, wait_serving
from embedding_memory import ingest as send_documents
from machine import cpu_seconds, footer, header

from bruno_retrieval.chunking import DEFAULT_OVERLAP_TOKENS, DEFAULT_SIZE_TOKENS, chunk_text
from bruno_testing.system import free_port


def cranfield_chunks(directory: Path) -> list[str]:
    """Every Cranfield abstract (``.W``) cut as an ingest cuts a document."""
    raw = (directory / "cran.all.1400").read_text(encoding="utf-8", errors="replace")
    chunks: list[str] = []
    for document in re.split(r"^\.I \d+\s*$", raw, flags=re.M):
        _, _, abstract = document.partition("\n.W\n")
        for chunk in chunk_text(
            abstract, size_tokens=DEFAULT_SIZE_TOKENS, overlap_tokens=DEFAULT_OVERLAP_TOKENS
        ):
            chunks.append(chunk.text)
    return chunks


@dataclass
class Service:
    threads: str
    address: str
    process: subprocess.Popen[bytes]


def start(threads: str, workdir: Path) -> Service:
    """An embedding service with ``BRUNO_EMBEDDING_THREADS=threads``, its log in a folder of its
    own under ``workdir``."""
    address = f"127.0.0.1:{free_port()}"
    logs = workdir / f"threads-{threads}"
    logs.mkdir()
    return Service(threads, address, start_service(address, int(threads), logs))


async def ingest(service: Service, chunks: list[str], batch: int) -> tuple[float, float]:
    """Embeds ``chunks`` in requests of ``batch`` texts, as the retrieval service sends them:
    chunks per second, and the service's CPU milliseconds per chunk."""
    pid = {"embedding": service.process.pid}
    cpu_before = cpu_seconds(pid)["embedding"]
    seconds = await send_documents(service.address, chunks, batch)
    cpu = cpu_seconds(pid)["embedding"] - cpu_before
    return len(chunks) / seconds, cpu * 1000 / len(chunks)


async def run(services: list[Service], chunks: list[str], args: argparse.Namespace) -> None:
    for service in services:
        async with asyncio.timeout(120):
            await wait_serving(service.address, service.process)
        await ingest(service, chunks[: args.batch], args.batch)  # warm: the model's first runs
    results: dict[str, list[tuple[float, float]]] = {s.threads: [] for s in services}
    print("\n| round | `BRUNO_EMBEDDING_THREADS` | chunks/s | CPU ms per chunk |")
    print("|---|---|---:|---:|")
    at = args.batch
    for number in range(1, args.rounds + 1):
        turn = services if number % 2 else services[::-1]
        for service in turn:
            part = [chunks[(at + i) % len(chunks)] for i in range(args.chunks)]
            at += args.chunks
            rate, cpu = await ingest(service, part, args.batch)
            results[service.threads].append((rate, cpu))
            print(f"| {number} | {service.threads} | {rate:.1f} | {cpu:.2f} |", flush=True)
    first = services[0].threads
    print(
        "\n| `BRUNO_EMBEDDING_THREADS` | chunks/s (median) | CPU ms per chunk (median) "
        f"| chunks/s ÷ threads={first}'s, same round (median) |"
    )
    print("|---|---:|---:|---:|")
    for threads, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        # Each round's two turns ran a minute apart at most: their ratio is far less noisy
        # on a shared machine than either rate.
        paired = statistics.median(
            r / base for (r, _), (base, _) in zip(rows, results[first], strict=True)
        )
        print(f"| {threads} | {rate:.1f} | {cpu:.2f} | {paired:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--threads", default="0,1", help="BRUNO_EMBEDDING_THREADS values")
    parser.add_argument("--chunks", type=int, default=192, help="chunks per service per round")
    parser.add_argument("--batch", type=int, default=32, help="texts per Embed request")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    chunks = cranfield_chunks(args.cranfield)
    mean = sum(map(len, chunks)) / len(chunks)
    print(header("embedding ingest"))
    print(f"{len(chunks)} Cranfield chunks, mean {mean:.0f} characters; {args.batch} per request")
    with tempfile.TemporaryDirectory(prefix="bruno-bench-") as tmp:
        services = [start(threads, Path(tmp)) for threads in args.threads.split(",")]
        try:
            asyncio.run(run(services, chunks, args))
        finally:
            for service in services:
                service.process.terminate()
                service.process.wait(timeout=30)
    print(footer())


if __name__ == "__main__":
    main()
