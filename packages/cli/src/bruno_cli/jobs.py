"""``bruno jobs``: the edge's ingestion jobs (``/api/v1/ingest-jobs``) from the command line —
list the recent ones, follow one to its end, cancel one.

    bruno jobs                 # the key's recent jobs, newest first
    bruno jobs watch 5f0c…     # progress until it ends; exit 1 when it failed or was cancelled
    bruno jobs cancel 5f0c…

Following a job polls it; the progress shows as a bar on a terminal (see
:mod:`bruno_cli.job_progress`) and as plain lines otherwise. Leaving a watch (Ctrl-C) leaves the
job running: it belongs to the knowledge base, not to this process.
"""

from __future__ import annotations

import asyncio
from typing import Any, TextIO

import httpx

from bruno_cli.connection import api_path, call, expect_json
from bruno_cli.job_progress import progress_for

JOBS = "ingest-jobs"
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: Seconds between two looks at a running job.
POLL_SECONDS = 0.5
_JOB_KEYS = ("id", "state", "documents", "chunks_written", "errors")
# Reading every file of a large upload and handing it to retrieval takes a while (the edge
# allows itself ten minutes); the files are read once sent, so no read timeout applies.
_SUBMIT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)


async def submit(
    client: httpx.AsyncClient, files: list[tuple[str, bytes]], collection: str
) -> dict[str, Any]:
    """Start a job that ingests ``files`` (name, content) into ``collection``; the job."""
    response = await call(
        client,
        "POST",
        api_path(JOBS),
        params={"collection": collection},
        files=[("files", (name, content)) for name, content in files],
        timeout=_SUBMIT_TIMEOUT,
    )
    return expect_json(response, *_JOB_KEYS)


async def get(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return expect_json(await call(client, "GET", api_path(JOBS, job_id)), *_JOB_KEYS)


async def follow(
    client: httpx.AsyncClient, job_id: str, *, plain: bool, out: TextIO, err: TextIO
) -> dict[str, Any]:
    """Poll the job until it ends, showing its progress; the finished job.

    The same job is shown on ``out`` (plain lines) or ``err`` (a terminal's bar), never both:
    output that is piped stays a log of lines.
    """
    job = await get(client, job_id)
    try:
        with progress_for(job, plain=plain, out=out, err=err) as progress:
            while job["state"] not in FINISHED:
                await asyncio.sleep(POLL_SECONDS)
                job = await get(client, job_id)
                progress.update(job)
    except asyncio.CancelledError:  # Ctrl-C: the job goes on without us
        print(f"bruno: job {job_id} goes on; follow it with: bruno jobs watch {job_id}", file=err)
        raise
    return job


def report(job: dict[str, Any], out: TextIO) -> int:
    """The finished job's failed documents and a summary line; the exit status: 0 only when
    it succeeded."""
    for error in job["errors"]:
        name = error.get("source") or error.get("document_id")
        print(f"failed    {name}: {error['message']}", file=out)
    documents = job["documents"]
    summary = (
        f"job {job['id']} {job['state']}: {documents['done']} of {documents['total']} documents "
        f"ingested, {documents['failed']} failed, {job['chunks_written']} chunks written"
    )
    if job.get("reason"):
        summary += f" ({job['reason']})"
    print(summary, file=out)
    return 0 if job["state"] == "succeeded" else 1


async def list_jobs(client: httpx.AsyncClient, *, limit: int, out: TextIO) -> int:
    """The key's most recent jobs, one line each, newest first."""
    response = await call(client, "GET", api_path(JOBS), params={"limit": limit})
    jobs = expect_json(response, "jobs")["jobs"]
    if not jobs:
        print("no jobs", file=out)
    for job in jobs:
        documents = job["documents"]
        print(
            f"{job['id']}  {job['kind']:<7} {job['state']:<9} {job['collection']:<24} "
            f"{documents['done']}/{documents['total']} documents, {documents['failed']} failed, "
            f"{job['chunks_written']} chunks  {job['created_at']}",
            file=out,
        )
    return 0


async def watch(
    client: httpx.AsyncClient, job_id: str, *, plain: bool, out: TextIO, err: TextIO
) -> int:
    """Follow a job to its end; the exit status of :func:`report`."""
    return report(await follow(client, job_id, plain=plain, out=out, err=err), out)


async def cancel(client: httpx.AsyncClient, job_id: str, out: TextIO) -> int:
    """Ask a job to stop; a running one stops after the documents in flight."""
    response = await call(client, "DELETE", api_path(JOBS, job_id))
    job = expect_json(response, *_JOB_KEYS)
    if job["state"] in FINISHED:
        print(f"job {job_id} {job['state']}", file=out)
    else:
        print(
            f"job {job_id} stops after the documents in flight; "
            f"follow it with: bruno jobs watch {job_id}",
            file=out,
        )
    return 0
