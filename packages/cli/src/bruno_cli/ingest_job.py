"""``bruno ingest`` as an ingestion job: when a set of files is large enough to need one, the
checks made before anything is sent, the batches, and following the jobs to their end.

A file sent in a request of its own rides on that request's deadline (the edge's 30 s): a
1.5 MB Markdown file, about 1,200 chunks, outlives it and is answered with a 504 although it
commits later. A job has no such deadline, survives the command going away (``--no-wait``,
Ctrl-C, a closed laptop) and can be followed again (``bruno jobs watch``). So a set goes to a
job when it is large: more than :data:`JOB_FILES` files, more than :data:`JOB_BYTES` in all, or
one file over :data:`JOB_FILE_BYTES` (about 800 chunks of text: what the embedding service gets
through well inside that deadline on a small machine). A small set stays one request per file:
each file's outcome at once, and unchanged files not even sent.

The job route names each document by its file name alone (as the upload route does), where a
file-by-file sync names it by its path under the folder: the two agree for the files at the top
of a folder and for files named on their own. A large set with files in subfolders therefore
stays file by file unless ``--job`` asks for a job (then two files of one name are refused
before anything is sent), so switching ways never stores a document twice under two ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from bruno_cli import jobs
from bruno_cli.connection import CliError
from bruno_core.contract import document_id_from_path
from bruno_edge.config import EdgeSettings
from bruno_edge.extract import BINARY_SUFFIXES

if TYPE_CHECKING:
    from bruno_cli.ingest import SourceFile

MIB = 1024 * 1024
#: More files than this go to a job (the upload route takes 32 at a time, too).
JOB_FILES = 32
#: More bytes than this, in all, go to a job.
JOB_BYTES = 4 * MIB
#: A file larger than this goes to a job.
JOB_FILE_BYTES = 1 * MIB
# One job's request stays under half the edge's default body limit (BRUNO_MAX_UPLOAD_BYTES,
# 64 MiB) and within its count of files; a larger set is sent as several jobs, one after another.
_BATCH_BYTES = 32 * MIB
_BATCH_FILES = 1000
# The edge's default limits per file: a larger one would have it refuse the whole job, so it
# is skipped here and said so. An edge configured lower answers 413, which is reported.
_LIMITS = EdgeSettings.model_fields
MAX_TEXT_BYTES: int = _LIMITS["max_document_bytes"].default
MAX_BINARY_BYTES: int = _LIMITS["max_file_bytes"].default


def job_document_id(source: SourceFile) -> str:
    """The id the job route gives the file: its file name's."""
    return document_id_from_path(source.path.name, keep_end=False)


def is_large(files: Sequence[SourceFile]) -> bool:
    """Whether the set is more than requests of one file each should carry."""
    sizes = [_size(source) for source in files]
    return len(files) > JOB_FILES or sum(sizes) > JOB_BYTES or max(sizes) > JOB_FILE_BYTES


def in_subfolders(files: Sequence[SourceFile]) -> int:
    """How many of ``files`` a job would store under another id than a sync does."""
    return sum(job_document_id(source) != source.document_id for source in files)


def _size(source: SourceFile) -> int:
    try:
        return source.path.stat().st_size
    except OSError:
        return 0  # unreadable: said when it is read


@dataclass(frozen=True)
class Prepared:
    """The files to send, and those skipped with the reason (``counts`` when it fails the run)."""

    files: list[tuple[str, bytes]]
    skipped: list[tuple[str, str, bool]]


def prepare(files: Sequence[SourceFile]) -> Prepared:
    """Each file's bytes, or why it is skipped: unreadable, too large, empty. Two files that
    would be one document fail the run before anything is sent."""
    by_id: dict[str, list[str]] = {}
    for source in files:
        by_id.setdefault(job_document_id(source), []).append(str(source.path))
    shared = {doc_id: paths for doc_id, paths in by_id.items() if len(paths) > 1}
    if shared:
        raise CliError(
            "a job names each document by its file name, and these files share one; nothing "
            "was sent:\n"
            + "\n".join(f"  {doc_id!r}: {', '.join(paths)}" for doc_id, paths in shared.items())
            + "\nleave out --job to sync them file by file"
        )
    sent: list[tuple[str, bytes]] = []
    skipped: list[tuple[str, str, bool]] = []
    for source in files:
        name = str(source.path)
        binary = source.path.suffix.lower() in BINARY_SUFFIXES
        limit = MAX_BINARY_BYTES if binary else MAX_TEXT_BYTES
        if _size(source) > limit:
            skipped.append((name, f"too large: over the edge's limit of {limit} bytes", True))
            continue
        try:
            content = source.path.read_bytes()
        except OSError as error:
            skipped.append((name, f"unreadable: {error.strerror or error}", True))
            continue
        if not binary and not content.strip():
            skipped.append((name, "empty", False))
            continue
        sent.append((source.path.name, content))
    return Prepared(sent, skipped)


def batches(files: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """``files`` in runs that one job request carries."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    for name, content in files:
        if batch and (len(batch) == _BATCH_FILES or size + len(content) > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((name, content))
        size += len(content)
    if batch:
        yield batch


async def ingest_as_jobs(
    client: httpx.AsyncClient,
    files: Sequence[SourceFile],
    *,
    collection: str,
    wait: bool,
    plain: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Send ``files`` as one job (or several, see :func:`batches`) and follow each to its end,
    unless ``wait`` is false; the exit status."""
    prepared = prepare(files)
    for name, reason, _ in prepared.skipped:
        print(f"skipped   {name} ({reason})", file=out)
    failed_here = any(counts for _, _, counts in prepared.skipped)
    if not prepared.files:
        print("nothing to send", file=out)
        return 1 if failed_here else 0
    submitted: list[dict[str, Any]] = []
    for batch in batches(prepared.files):
        job = await jobs.submit(client, batch, collection)
        submitted.append(job)
        print(
            f"job {job['id']}: {job['documents']['total']} documents into {collection}",
            file=out,
            flush=True,
        )
    if not wait:
        for job in submitted:
            print(f"follow it with: bruno jobs watch {job['id']}", file=out)
        return 1 if failed_here else 0
    status = 1 if failed_here else 0
    for job in submitted:
        finished = await jobs.follow(client, job["id"], plain=plain, out=out, err=err)
        status = max(status, jobs.report(finished, out))
    return status
