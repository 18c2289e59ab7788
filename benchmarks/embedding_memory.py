"""Embedding memory benchmark: resident memory of the embedding service idle, at peak and after
an ingest, for ingests of several sizes, with one ONNX Runtime thread and with the default.

    uv run python benchmarks/embedding_memory.py [--texts 32,256,1000] [--threads 1,0]

For each thread setting and each ingest size the real embedding service (bundled ONNX
all-MiniLM-L6-v2 int8) starts as a fresh process (``python -m bruno_embedding``, configured
only through ``BRUNO_*``), so every peak is that ingest's own. The texts are ~1,400-character
windows of Cranfield abstracts (about 300 word pieces, more than the 256 the model reads: the
widest model calls there are). They are sent the way the retrieval service sends document
chunks: requests of the server's ``max_batch_size`` texts, two in flight.

Memory is read from ``/proc/<pid>/status``: idle = ``VmRSS`` once the service answers its
health check, peak = ``VmHWM`` (the high-water mark) after the ingest, after = ``VmRSS`` one
second after the last answer. Throughput is texts per second over the whole ingest.

This is a benchmark, not a test: it prints a table and asserts nothing. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core.grpc_client import check_health
from bruno_testing.system import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"
TEXT_CHARS = 1_400
IN_FLIGHT = 2  # as the retrieval service's embedding client sends document batches
SETTLE_SECONDS = 1.0
MIB = 1024 * 1024


def cranfield_windows(directory: Path, count: int) -> list[str]:
    """``count`` texts of about ``TEXT_CHARS`` characters cut from the Cranfield abstracts at
    word boundaries (the corpus is reused from its start when it runs out)."""
    raw = (directory / "cran.all.1400").read_text(encoding="utf-8", errors="replace")
    words = re.sub(r"^\.[A-Z].*$", "", raw, flags=re.M).split()
    texts: list[str] = []
    position = 0
    while len(texts) < count:
        window: list[str] = []
        size = 0
        while size < TEXT_CHARS:
            word = words[position % len(words)]
            window.append(word)
            size += len(word) + 1
            position += 1
        texts.append(" ".join(window))
    return texts


def memory_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of a process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / MIB
    return fields


def start_service(address: str, threads: int | None, workdir: Path) -> subprocess.Popen[bytes]:
    """The embedding service as ``make run`` starts it, listening on ``address``."""
    env = {**os.environ, "BRUNO_EMBEDDING_LISTEN_ADDR": address, "BRUNO_LOG_LEVEL": "WARNING"}
    env.pop("BRUNO_EMBEDDING_THREADS", None)
    if threads is not None:
        env["BRUNO_EMBEDDING_THREADS"] = str(threads)
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


async def ingest(address: str, texts: list[str], batch: int | None = None) -> float:
    """Embeds ``texts`` in requests of ``batch`` texts (the server's batch size by default),
    ``IN_FLIGHT`` at once; returns the seconds it took."""
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 * MIB)]
    ) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        size = batch or (await stub.Info(embedding_pb2.InfoRequest())).max_batch_size
        batches = [texts[start : start + size] for start in range(0, len(texts), size)]
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def one(batch: list[str]) -> None:
            async with semaphore:
                request = embedding_pb2.EmbedRequest(
                    texts=batch, input_type=embedding_pb2.INPUT_TYPE_DOCUMENT
                )
                response = await stub.Embed(request, timeout=600)
                if len(response.vectors) != len(batch):
                    raise RuntimeError("a vector is missing")

        started = time.perf_counter()
        await asyncio.gather(*(one(batch) for batch in batches))
        return time.perf_counter() - started


async def measure(texts: list[str], threads: int | None, workdir: Path) -> dict[str, float]:
    """One fresh service, one ingest of ``texts``: idle, peak and after MiB, and texts/s."""
    address = f"127.0.0.1:{free_port()}"
    process = start_service(address, threads, workdir)
    try:
        async with asyncio.timeout(120):
            await wait_serving(address, process)
        idle = memory_mib(process.pid)["VmRSS"]
        seconds = await ingest(address, texts)
        peak = memory_mib(process.pid)["VmHWM"]
        await asyncio.sleep(SETTLE_SECONDS)
        after = memory_mib(process.pid)["VmRSS"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"idle": idle, "peak": peak, "after": after, "rate": len(texts) / seconds}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--texts", default="32,256,1000", help="ingest sizes, comma-separated")
    parser.add_argument(
        "--threads",
        default="1,default",
        help="BRUNO_EMBEDDING_THREADS values, comma-separated ('default': unset)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.texts.split(",")]
    thread_settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    texts = cranfield_windows(args.cranfield, max(sizes))
    print(
        f"# make bench-embedding-memory — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; texts of ~{TEXT_CHARS} characters "
        f"(mean {sum(map(len, texts)) / len(texts):.0f})\n"
    )
    print("| `BRUNO_EMBEDDING_THREADS` | texts | idle MiB | peak MiB | after MiB | texts/s |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bruno-bench-") as tmp:
        for threads in thread_settings:
            for size in sizes:
                got = await measure(texts[:size], threads, Path(tmp))
                print(
                    f"| {threads if threads is not None else 'unset'} | {size:,} "
                    f"| {got['idle']:.0f} | {got['peak']:.0f} | {got['after']:.0f} "
                    f"| {got['rate']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main())
