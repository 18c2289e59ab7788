"""Ingest jobs from the command line: submit documents as a job, follow one to its end (a
progress bar on a terminal, a line per change otherwise), list recent ones, cancel one.

    job = await submit_documents(client, "homelab", bodies)
    job = await watch(client, job["id"], out, err)      # once it has ended
    await list_jobs(client, out)
    await cancel(client, job["id"], out)

Leaving a watch (Ctrl-C) leaves the job running: it belongs to the knowledge base, not to
this process, and ``bruno jobs watch ID`` follows it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TextIO

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
)

from bruno_cli.connection import api_path, call, expect_json

#: How often a command following a job asks how it is.
POLL_SECONDS = 0.5
RUNNING = ("queued", "running")
# A job's documents are sent in one request; these keep it within the edge's body limit
# (BRUNO_MAX_UPLOAD_BYTES, 64 MiB by default) and its 1,000 documents.
MAX_JOB_DOCUMENTS = 1000
MAX_JOB_BYTES = 48 * 1024 * 1024


async def submit_documents(
    client: httpx.AsyncClient, collection: str, documents: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Submit ``documents`` (bodies of ``POST /api/v1/documents``) as one job; the job."""
    response = await call(
        client,
        "POST",
        api_path("ingest-jobs", "documents"),
        json={"collection": collection, "documents": list(documents)},
        timeout=httpx.Timeout(600.0, connect=5.0),
    )
    return expect_json(response, "id", "state", "documents")


async def submit_urls(
    client: httpx.AsyncClient, collection: str, urls: Sequence[str]
) -> dict[str, Any]:
    """Submit ``urls`` as one URL job (the server fetches them); the job."""
    response = await call(
        client,
        "POST",
        api_path("ingest-jobs"),
        json={"collection": collection, "urls": list(urls)},
    )
    return expect_json(response, "id", "state", "documents")


async def get_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return expect_json(await call(client, "GET", api_path("ingest-jobs", job_id)), "id", "state")


async def watch(
    client: httpx.AsyncClient, job_id: str, out: TextIO, err: TextIO, *, plain: bool = False
) -> dict[str, Any]:
    """Follow the job to its end: a progress bar (documents and chunks, rate, time left) on
    a terminal unless ``plain``, else a line on ``out`` whenever its counts change (with the
    rate and the time left while it runs); then each failed document's error on ``out``. The
    job as it ended."""
    job = await get_job(client, job_id)
    bar: Progress | None = None
    if err.isatty() and not plain:
        bar = Progress(
            TextColumn("job {task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[chunks]} chunks, {task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.1f} docs/s"),
            TextColumn("{task.fields[left]}"),
            console=Console(file=err),
            transient=True,
        )
        task = bar.add_task(
            "job",
            total=job["documents"]["total"],
            job=job_id[:8],
            chunks=0,
            failed=0,
            rate=0.0,
            left="",
        )
        bar.start()
    started, first = time.monotonic(), sum(_accounted(job))
    seen: tuple[int, int] | None = None
    try:
        while True:
            counts = _accounted(job)
            rate = (sum(counts) - first) / max(time.monotonic() - started, 1e-3)
            if bar is not None:
                bar.update(
                    task,
                    completed=sum(counts),
                    chunks=job["chunks_written"],
                    failed=counts[1],
                    rate=rate,
                    left=_time_left(job, rate),
                )
            elif counts != seen:
                print(_line(job, rate), file=out, flush=True)
            seen = counts
            if job["state"] not in RUNNING:
                break
            await asyncio.sleep(POLL_SECONDS)
            job = await get_job(client, job_id)
    except asyncio.CancelledError:  # Ctrl-C: the job goes on without us
        print(f"bruno: job {job_id} goes on; follow it with: bruno jobs watch {job_id}", file=err)
        raise
    finally:
        if bar is not None:
            bar.stop()
    for error in job["errors"]:
        print(f"{'failed':<9} {error['document_id']}: {error['message']}", file=out)
    ended = f"job {job['id']} {job['state']}: {_counts(job)}"
    if job.get("reason"):
        ended += f" ({job['reason']})"
    print(ended, file=out)
    return job


async def watch_quietly(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job once it has ended, followed without a word."""
    job = await get_job(client, job_id)
    while job["state"] in RUNNING:
        await asyncio.sleep(POLL_SECONDS)
        job = await get_job(client, job_id)
    return job


async def list_jobs(client: httpx.AsyncClient, out: TextIO, *, limit: int = 20) -> int:
    """The key's recent jobs, newest first, one a line."""
    response = await call(client, "GET", api_path("ingest-jobs"), params={"limit": limit})
    for job in expect_json(response, "jobs")["jobs"]:
        print(
            f"{job['id']}  {job['kind']:<7} {job['collection']:<20} {job['state']:<9} "
            f"{_counts(job)}  {job['created_at']}",
            file=out,
        )
    return 0


async def cancel(client: httpx.AsyncClient, job_id: str, out: TextIO) -> int:
    """Ask a job to stop: a queued one ends at once, a running one after the documents in
    flight (committed whole); what it committed stays."""
    response = await call(client, "DELETE", api_path("ingest-jobs", job_id))
    job = expect_json(response, "id", "state", "documents")
    if job["state"] in RUNNING:
        print(
            f"job {job_id} stops after the documents in flight; "
            f"follow it with: bruno jobs watch {job_id}",
            file=out,
        )
    else:
        print(f"job {job_id} {job['state']}: {_counts(job)}", file=out)
    return 0


def failed(job: dict[str, Any]) -> bool:
    """Whether the job lost any document (or ended without finishing them)."""
    return job["state"] != "succeeded" or bool(job["documents"]["failed"])


def _accounted(job: dict[str, Any]) -> tuple[int, int]:
    return job["documents"]["done"], job["documents"]["failed"]


def _counts(job: dict[str, Any]) -> str:
    documents = job["documents"]
    return (
        f"{documents['done']}/{documents['total']} documents, {documents['failed']} failed, "
        f"{job['chunks_written']} chunks"
    )


def _line(job: dict[str, Any], rate: float) -> str:
    """The job's counts; while it runs and moves, the rate and the time left too."""
    line = f"job {job['id']} {job['state']}: {_counts(job)}"
    if left := _time_left(job, rate):
        line += f", {rate:.2f} documents/s, {left}"
    return line


def _time_left(job: dict[str, Any], rate: float) -> str:
    """ "about 2 min 05 s left" at ``rate`` documents a second while the job runs and moves;
    empty otherwise. The bar and the plain lines both say it, so they agree."""
    if job["state"] not in RUNNING or rate <= 0:
        return ""
    documents = job["documents"]
    left = (documents["total"] - documents["done"] - documents["failed"]) / rate
    return f"about {_duration(left)} left"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    if not minutes:
        return f"{seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"
