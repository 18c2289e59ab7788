"""``bruno ingest``: an incremental sync of files and folders into a collection.

A file whose text matches what the collection already holds is not sent again (nothing is
embedded), new and changed files are sent a few at a time, and the documents a previous sync of
the same folder created whose files are gone are deleted (``--no-delete`` keeps them). Only
those: a document is deleted when it carries this folder as its sync root *and* its id is one
this command makes for a file under a folder (no ``.`` or ``..`` segment, nothing but the
characters it writes), so a document planted with someone else's id or a path-like trick is
left alone. Files that would share a document id fail the run before anything is sent. A folder
that cannot be read fails the run too: the files that could be read are still sent, but nothing
is deleted. From :data:`JOB_THRESHOLD` files on, the files to send go as ingest jobs, which
``--no-wait`` leaves running (``bruno jobs watch ID`` follows one again). A progress bar shows
on a terminal; a summary line ends the run, which fails when any document did.

URLs (http and https) go as one URL job, the server fetching each page (``MAX_JOB_URLS`` at
most), followed like the file jobs; a URL is never deleted by a sync.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bruno_cli.connection import CliError, api_path, call, expect_json, failure, is_json
from bruno_cli.jobs import (
    MAX_JOB_BYTES,
    MAX_JOB_DOCUMENTS,
    failed,
    submit_documents,
    submit_urls,
    watch,
    watch_quietly,
)
from bruno_core import LimitExceeded
from bruno_core.contract import DOCUMENT_ID, MAX_JOB_URLS, content_hash, document_id_from_path
from bruno_extract import SUFFIXES, UnreadableDocument, UnsupportedMediaType, extract

DEFAULT_CONCURRENCY = 8
#: From this many files on, ``bruno ingest`` sends them as ingest jobs: one request for the
#: lot instead of one each, a job that survives a restart of the services, and progress the
#: server keeps (``bruno jobs watch``) rather than a long chain of requests.
JOB_THRESHOLD = 20
# Documents a folder sync creates carry this metadata key, valued with the folder's path; a
# later sync of the same folder deletes only those whose file is gone.
SYNC_ROOT_KEY = "bruno_sync_root"
_PAGE = 500


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest, the id it is stored under and the folder sync it belongs to."""

    path: Path
    document_id: str
    sync_root: str = ""  # empty for a file named on its own: never deleted by a sync


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    #: ``{"start", "page"}`` of each page of a PDF, so each chunk knows its page.
    segments: list[dict[str, int]]


@dataclass(frozen=True)
class FoundFiles:
    """The files found, the folders that could not be read (their files are missing), and
    the files of a folder that are not of a kind Bruno reads (relative to their folder)."""

    files: list[SourceFile]
    unreadable: list[str]
    unsupported: list[str]


# --- reading files ------------------------------------------------------------------------


def document_id_for(relative: Path) -> str:
    """A stable document id from a path relative to what was named on the command line."""
    return document_id_from_path(relative.as_posix())


def made_by_a_sync(document_id: str) -> bool:
    """Whether ``document_id`` could be one :func:`document_id_for` makes for a file in a
    folder: it follows the identifier rule (no empty, ``.`` or ``..`` segment)."""
    return DOCUMENT_ID.is_valid(document_id)


def find_files(paths: Sequence[Path]) -> FoundFiles:
    """The ingestible files under ``paths``, ids relative to each named path (stable
    wherever the command runs from)."""
    found: list[SourceFile] = []
    unreadable: list[str] = []
    unsupported: list[str] = []

    def cannot_read(error: OSError) -> None:
        unreadable.append(f"{error.filename}: {error.strerror or error}")

    for root in paths:
        if root.is_file():
            found.append(SourceFile(root, document_id_for(Path(root.name))))
        elif root.is_dir():
            sync_root = root.resolve().as_posix()[-1000:]
            # os.walk rather than Path.rglob: rglob silently skips a folder it cannot read, and
            # the documents of its files would then be deleted as if the files were gone.
            walked = (
                Path(folder, name)
                for folder, _, names in os.walk(root, onerror=cannot_read)
                for name in names
            )
            for path in sorted(walked):
                if not path.is_file():
                    continue
                relative = path.relative_to(root)
                if path.suffix.lower() in SUFFIXES:
                    found.append(SourceFile(path, document_id_for(relative), sync_root))
                else:
                    unsupported.append(relative.as_posix())
        else:
            raise CliError(f"{root}: no such file or directory")
    return FoundFiles(found, unreadable, unsupported)


def check_unique_ids(files: Sequence[SourceFile]) -> None:
    """Fail when different files would be stored under one id: each sync would silently
    replace one with the other."""
    by_id: dict[str, dict[Path, Path]] = {}
    for source in files:
        # Keyed by the resolved path: the same file named twice is not a collision.
        by_id.setdefault(source.document_id, {}).setdefault(source.path.resolve(), source.path)
    collisions = [
        f"  {document_id!r}: " + ", ".join(str(path) for path in paths.values())
        for document_id, paths in by_id.items()
        if len(paths) > 1
    ]
    if collisions:
        raise CliError(
            "these files would be stored under the same document id, nothing was ingested:\n"
            + "\n".join(collisions)
            + "\nrename one of each, or ingest them into different collections (--collection)"
        )


def read_document(path: Path) -> Document:
    """The text and title of ``path`` (first heading, else the file name)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CliError(error.strerror or str(error)) from error
    try:
        extracted = extract(path.name, raw)
    except UnreadableDocument as error:
        raise CliError(error.explanation.removeprefix("is ")) from error
    except (UnsupportedMediaType, LimitExceeded) as error:
        raise CliError(error.detail) from error
    segments = [
        {"start": segment.start, "page": segment.page}
        for segment in extracted.segments
        if segment.page is not None
    ]
    return Document(title=extracted.title, text=extracted.text, segments=segments)


# --- syncing ------------------------------------------------------------------------------


async def _stored_documents(client: httpx.AsyncClient, collection: str) -> dict[str, Any]:
    """Every document of ``collection`` by id, as the listing describes it."""
    stored: dict[str, Any] = {}
    cursor = ""
    while True:
        params: dict[str, str | int] = {"collection": collection, "limit": _PAGE}
        if cursor:
            params["cursor"] = cursor
        response = await call(client, "GET", api_path("documents"), params=params)
        if response.status_code == 404 and is_json(response):
            return stored  # a collection not created yet holds nothing
        page = expect_json(response, "documents")
        stored.update((doc["document_id"], doc) for doc in page["documents"])
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return stored


class _Reporter:
    """Per-file lines on ``out`` and, on a terminal, a progress bar on ``err`` (jobs have
    their own: ``bar=False``)."""

    def __init__(self, out: TextIO, err: TextIO, total: int, *, bar: bool = True) -> None:
        self.out = out
        self.err = err
        self.outcomes: Counter[str] = Counter()
        self.progress: Progress | None = None
        if bar and err.isatty():
            self.progress = Progress(
                TextColumn("ingesting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=err),
                transient=True,
            )
            self.task = self.progress.add_task("ingest", total=total)
            self.progress.start()

    def report(self, outcome: str, document_id: str, note: str = "") -> None:
        self.outcomes[outcome] += 1
        print(f"{outcome:<9} {document_id}{note}", file=self.out)
        if self.progress is not None and outcome != "deleted":
            self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


async def ingest(
    client: httpx.AsyncClient,
    paths: Sequence[Path],
    *,
    collection: str,
    concurrency: int,
    delete: bool,
    out: TextIO,
    err: TextIO,
    wait: bool = True,
    plain: bool = False,
    urls: Sequence[str] = (),
) -> int:
    """Sync ``paths`` into ``collection`` and have ``urls`` fetched into it; the exit status.
    From :data:`JOB_THRESHOLD` files on (or when not waiting) the files to send go as ingest
    jobs, the URLs always as one job, followed to their end unless ``wait`` is false
    (``plain``: their progress as lines, even on a terminal)."""
    if len(urls) > MAX_JOB_URLS:
        raise CliError(f"at most {MAX_JOB_URLS} URLs at a time ({len(urls)} given)")
    status = 0
    if urls:
        status = await _ingest_urls(client, urls, collection, out, err, wait=wait, plain=plain)
    if paths:
        synced = await _sync(
            client, paths, collection, concurrency, delete, out, err, wait=wait, plain=plain
        )
        status = max(status, synced)
    return status


async def _sync(
    client: httpx.AsyncClient,
    paths: Sequence[Path],
    collection: str,
    concurrency: int,
    delete: bool,
    out: TextIO,
    err: TextIO,
    *,
    wait: bool,
    plain: bool,
) -> int:
    found = find_files(paths)
    files = found.files
    check_unique_ids(files)
    for problem in found.unreadable:
        print(f"bruno: cannot read {problem}", file=err)
    for name in found.unsupported:
        suffix = PurePosixPath(name).suffix or "no suffix"
        print(f"{'skipped':<9} {name} (not a kind Bruno reads: {suffix})", file=out)
    if not files:
        raise CliError("no .md, .txt, .rst, .html, .pdf or .docx files found")
    stored = await _stored_documents(client, collection)
    as_jobs = len(files) >= JOB_THRESHOLD or not wait
    reporter = _Reporter(out, err, len(files), bar=not as_jobs)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(source: SourceFile) -> None:
        async with semaphore:
            outcome, note = await _ingest_one(client, source, collection, stored)
        reporter.report(outcome, source.document_id, note)

    try:
        if as_jobs:
            await _ingest_as_jobs(
                client, files, collection, stored, reporter, wait=wait, plain=plain, err=err
            )
        else:
            await asyncio.gather(*(one(source) for source in files))
        # A file in a folder that could not be read is not gone: delete nothing.
        if delete and not found.unreadable:
            await _delete_removed(client, files, stored, collection, reporter)
    finally:
        reporter.close()
    print(_summary(len(files), reporter.outcomes), file=out)
    if found.unreadable:
        kept = "; no documents were deleted" if delete else ""
        print(f"bruno: {len(found.unreadable)} folder(s) could not be read{kept}", file=err)
        return 1
    return 1 if reporter.outcomes["failed"] else 0


def _prepare(
    source: SourceFile, collection: str, stored: dict[str, Any]
) -> tuple[str, str] | dict[str, Any]:
    """The body to send for ``source``, or the outcome and note of a file not to send (it
    cannot be read, is empty, or the collection holds its text already)."""
    try:
        document = read_document(source.path)
    except CliError as error:
        return "failed", f": {error}"
    if not document.text.strip():
        return "skipped", " (empty)"
    known = stored.get(source.document_id)
    if known is not None and known.get("content_hash") == content_hash(document.text):
        return "unchanged", f" ({known.get('chunks', 0)} chunks)"
    body: dict[str, Any] = {
        "id": source.document_id,
        "title": document.title[:500],
        "source": source.path.as_posix()[:2000],
        "text": document.text,
        "collection": collection,
        "metadata": {SYNC_ROOT_KEY: source.sync_root} if source.sync_root else {},
    }
    if document.segments:
        body["segments"] = document.segments
    return body


async def _ingest_one(
    client: httpx.AsyncClient, source: SourceFile, collection: str, stored: dict[str, Any]
) -> tuple[str, str]:
    body = _prepare(source, collection, stored)
    if isinstance(body, tuple):
        return body
    response = await call(client, "POST", api_path("documents"), json=body)
    if response.status_code == 401:
        raise failure(response)  # every other file would fail the same way
    try:
        result = expect_json(response, "status")
    except CliError as error:
        return "failed", f": {error}"
    if response.status_code == 202:  # outlasted the edge's wait, or waits for a reindex: a job
        job = await watch_quietly(client, result["id"])
        if failed(job):
            return "failed", f": {job['errors'][0]['message'] if job['errors'] else job['state']}"
        return "ingested", f" ({job['chunks_written']} chunks, as job {job['id']})"
    return str(result["status"]), f" ({result['chunks']} chunks)"


async def _ingest_as_jobs(
    client: httpx.AsyncClient,
    files: Sequence[SourceFile],
    collection: str,
    stored: dict[str, Any],
    reporter: _Reporter,
    *,
    wait: bool,
    plain: bool,
    err: TextIO,
) -> None:
    """Send the files that need it as ingest jobs (as few as the edge's limits allow) and,
    when ``wait``, follow each to its end, reporting its documents."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for source in files:
        body = _prepare(source, collection, stored)
        if isinstance(body, tuple):
            reporter.report(body[0], source.document_id, body[1])
            continue
        body_bytes = len(body["text"].encode()) + 1024
        if batches[-1] and (
            len(batches[-1]) >= MAX_JOB_DOCUMENTS or size + body_bytes > MAX_JOB_BYTES
        ):
            batches.append([])
            size = 0
        batches[-1].append(body)
        size += body_bytes
    submitted = [await submit_documents(client, collection, batch) for batch in batches if batch]
    for job in submitted:
        print(f"job {job['id']} queued: {job['documents']['total']} documents", file=reporter.out)
    if not wait:
        for job in submitted:
            print(f"follow it with: bruno jobs watch {job['id']}", file=reporter.out)
        reporter.outcomes["queued"] += sum(job["documents"]["total"] for job in submitted)
        return
    for job in submitted:
        ended = await watch(client, job["id"], reporter.out, err, plain=plain)
        reporter.outcomes["ingested"] += ended["documents"]["done"]
        reporter.outcomes["failed"] += ended["documents"]["failed"]
        if ended["state"] in ("cancelled", "failed") and not ended["documents"]["failed"]:
            reporter.outcomes["failed"] += 1  # stopped before its documents: count it once


async def _ingest_urls(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    collection: str,
    out: TextIO,
    err: TextIO,
    *,
    wait: bool,
    plain: bool,
) -> int:
    """Submit ``urls`` as one URL job and, when ``wait``, follow it; 1 when any failed."""
    job = await submit_urls(client, collection, urls)
    print(f"job {job['id']} queued: {job['documents']['total']} URLs", file=out)
    if not wait:
        print(f"follow it with: bruno jobs watch {job['id']}", file=out)
        return 0
    ended = await watch(client, job["id"], out, err, plain=plain)  # prints each failure
    done, failures = ended["documents"]["done"], ended["documents"]["failed"]
    print(
        f"{len(urls)} URL{'s' if len(urls) != 1 else ''}: {done} ingested, {failures} failed",
        file=out,
    )
    return 1 if failed(ended) else 0


def removed_documents(files: Sequence[SourceFile], stored: dict[str, Any]) -> list[str]:
    """The ids of documents that a sync of these folders created and whose file is gone."""
    roots = {source.sync_root for source in files if source.sync_root}
    present = {source.document_id for source in files}
    return [
        document_id
        for document_id, summary in sorted(stored.items())
        if (summary.get("metadata") or {}).get(SYNC_ROOT_KEY) in roots
        and document_id not in present
        and made_by_a_sync(document_id)
    ]


async def _delete_removed(
    client: httpx.AsyncClient,
    files: list[SourceFile],
    stored: dict[str, Any],
    collection: str,
    reporter: _Reporter,
) -> None:
    for document_id in removed_documents(files, stored):
        url = api_path("documents", document_id)
        response = await call(client, "DELETE", url, params={"collection": collection})
        if response.status_code == 204 or (response.status_code == 404 and is_json(response)):
            reporter.report("deleted", document_id)  # a 404: someone deleted it already
        else:
            reporter.report("failed", document_id, f": {failure(response)}")


def _summary(total: int, outcomes: Counter[str]) -> str:
    parts = [f"{outcomes[name]} {name}" for name in ("created", "replaced", "unchanged")]
    parts += [
        f"{outcomes[name]} {name}"
        for name in ("ingested", "queued", "deleted", "skipped", "failed")
        if outcomes[name]
    ]
    return f"{total} file{'s' if total != 1 else ''}: " + ", ".join(parts)
