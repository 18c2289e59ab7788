"""``bruno``: feed documents to a running edge and ask it questions, over the REST API.

    bruno ingest docs/ notes/runbook.md --collection homelab
    bruno ask "How do I restore a Velero backup?"
    bruno collections
    bruno reindex homelab

``ingest`` is an incremental sync: a file whose text matches what the collection already holds
is not sent again (nothing is embedded), new and changed files are sent a few at a time, and
the documents a previous sync of the same folder created whose files are gone are deleted
(``--no-delete`` keeps them). Files that would share a document id fail the run before anything
is sent. A folder that cannot be read fails the run too: the files that could be read are still
sent, but nothing is deleted. A progress bar shows on a terminal; a summary line ends the run.

The URL comes from ``--url`` (default http://127.0.0.1:8080), the key from ``--api-key`` or
``BRUNO_API_KEY``. Exit status: 0 on success, 1 when any file, folder or request failed, 2 on
usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bruno_core import LimitExceeded
from bruno_edge.extract import SUFFIXES, UnreadableDocument, UnsupportedMediaType, extract

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_CONCURRENCY = 8
# Documents a folder sync creates carry this metadata key, valued with the folder's path; a
# later sync of the same folder deletes only those whose file is gone.
SYNC_ROOT_KEY = "bruno_sync_root"
_TIMEOUT = httpx.Timeout(150.0, connect=5.0)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._:/-]+")
_MAX_ID_CHARS = 200
_PAGE = 500

__all__ = [
    "SUFFIXES",
    "CliError",
    "FoundFiles",
    "check_unique_ids",
    "document_id_for",
    "find_files",
    "read_document",
    "run",
]


class CliError(Exception):
    """A failure to report on stderr with exit status 1."""


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


# --- reading files ------------------------------------------------------------------------


def document_id_for(relative: Path) -> str:
    """A stable document id from a path relative to what was named on the command line."""
    safe = _UNSAFE_ID_CHARS.sub("-", relative.as_posix()).strip("/")
    return safe[-_MAX_ID_CHARS:] if len(safe) > _MAX_ID_CHARS else safe


@dataclass(frozen=True)
class FoundFiles:
    """The files found and the folders that could not be read (their files are missing)."""

    files: list[SourceFile]
    unreadable: list[str]


def find_files(paths: Sequence[Path]) -> FoundFiles:
    """The ingestible files under ``paths``, ids relative to each named path (stable
    wherever the command runs from)."""
    found: list[SourceFile] = []
    unreadable: list[str] = []

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
            found.extend(
                SourceFile(path, document_id_for(path.relative_to(root)), sync_root)
                for path in sorted(walked)
                if path.suffix.lower() in SUFFIXES and path.is_file()
            )
        else:
            raise CliError(f"{root}: no such file or directory")
    return FoundFiles(found, unreadable)


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
    return Document(title=extracted.title, text=extracted.text)


def content_hash(text: str) -> str:
    """The hash retrieval keeps per document (sha256 of the text), to skip unchanged files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- talking to the edge ------------------------------------------------------------------


def _problem_detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return f"{response.status_code} {body.get('title', '')}: {body['detail']}".strip()
    return f"{response.status_code} {response.reason_phrase}"


def _client(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    return httpx.AsyncClient(
        base_url=args.url, headers=headers, timeout=_TIMEOUT, transport=transport
    )


async def _call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError as error:
        raise CliError(f"cannot reach {client.base_url}: {error}") from error


async def _stored_documents(client: httpx.AsyncClient, collection: str) -> dict[str, Any]:
    """Every document of ``collection`` by id, as the listing describes it."""
    stored: dict[str, Any] = {}
    cursor = ""
    while True:
        params = {"collection": collection, "limit": _PAGE}
        if cursor:
            params["cursor"] = cursor
        response = await _call(client, "GET", "/api/v1/documents", params=params)
        if response.status_code == 404:
            return stored  # a collection not created yet holds nothing
        if response.status_code != 200:
            raise CliError(f"cannot list collection {collection!r}: {_problem_detail(response)}")
        page = response.json()
        stored.update((doc["document_id"], doc) for doc in page["documents"])
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return stored


class _Reporter:
    """Per-file lines on ``out`` and, on a terminal, a progress bar on ``err``."""

    def __init__(self, out: TextIO, err: TextIO, total: int) -> None:
        self.out = out
        self.outcomes: Counter[str] = Counter()
        self.progress: Progress | None = None
        if err.isatty():
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
    args: argparse.Namespace,
    transport: httpx.AsyncBaseTransport | None,
    out: TextIO,
    err: TextIO,
) -> int:
    found = find_files(args.paths)
    files = found.files
    check_unique_ids(files)
    for problem in found.unreadable:
        print(f"bruno: cannot read {problem}", file=err)
    if not files:
        raise CliError("no .md, .txt, .rst or .html files found")
    async with _client(args, transport) as client:
        stored = await _stored_documents(client, args.collection)
        reporter = _Reporter(out, err, len(files))
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one(source: SourceFile) -> None:
            async with semaphore:
                outcome, note = await _ingest_one(client, source, args.collection, stored)
            reporter.report(outcome, source.document_id, note)

        try:
            await asyncio.gather(*(one(source) for source in files))
            # A file in a folder that could not be read is not gone: delete nothing.
            if not args.no_delete and not found.unreadable:
                await _delete_removed(client, files, stored, args.collection, reporter)
        finally:
            reporter.close()
    print(_summary(len(files), reporter.outcomes), file=out)
    if found.unreadable:
        kept = "" if args.no_delete else "; no documents were deleted"
        print(f"bruno: {len(found.unreadable)} folder(s) could not be read{kept}", file=err)
        return 1
    return 1 if reporter.outcomes["failed"] else 0


async def _ingest_one(
    client: httpx.AsyncClient, source: SourceFile, collection: str, stored: dict[str, Any]
) -> tuple[str, str]:
    try:
        document = read_document(source.path)
    except CliError as error:
        return "failed", f": {error}"
    if not document.text.strip():
        return "skipped", " (empty)"
    known = stored.get(source.document_id)
    if known is not None and known.get("content_hash") == content_hash(document.text):
        return "unchanged", f" ({known.get('chunks', 0)} chunks)"
    body = {
        "id": source.document_id,
        "title": document.title[:500],
        "source": source.path.as_posix()[:2000],
        "text": document.text,
        "collection": collection,
        "metadata": {SYNC_ROOT_KEY: source.sync_root} if source.sync_root else {},
    }
    response = await _call(client, "POST", "/api/v1/documents", json=body)
    if response.status_code not in (200, 201):
        return "failed", f": {_problem_detail(response)}"
    result = response.json()
    return str(result["status"]), f" ({result['chunks']} chunks)"


async def _delete_removed(
    client: httpx.AsyncClient,
    files: list[SourceFile],
    stored: dict[str, Any],
    collection: str,
    reporter: _Reporter,
) -> None:
    """Delete what an earlier sync of the same folders created whose file is gone."""
    roots = {source.sync_root for source in files if source.sync_root}
    present = {source.document_id for source in files}
    for document_id, summary in sorted(stored.items()):
        root = (summary.get("metadata") or {}).get(SYNC_ROOT_KEY)
        if root not in roots or document_id in present:
            continue
        url = f"/api/v1/documents/{quote(document_id, safe='/')}"
        response = await _call(client, "DELETE", url, params={"collection": collection})
        if response.status_code in (204, 404):
            reporter.report("deleted", document_id)
        else:
            reporter.report("failed", document_id, f": {_problem_detail(response)}")


def _summary(total: int, outcomes: Counter[str]) -> str:
    parts = [f"{outcomes[name]} {name}" for name in ("created", "replaced", "unchanged")]
    parts += [
        f"{outcomes[name]} {name}" for name in ("deleted", "skipped", "failed") if outcomes[name]
    ]
    return f"{total} file{'s' if total != 1 else ''}: " + ", ".join(parts)


async def ask(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, out: TextIO
) -> int:
    body: dict[str, Any] = {"message": args.question, "collection": args.collection}
    if args.top_k is not None:
        body["top_k"] = args.top_k
    body["stream"] = False
    async with _client(args, transport) as client:
        response = await _call(client, "POST", "/api/v1/chat", json=body)
    if response.status_code != 200:
        raise CliError(_problem_detail(response))
    answer = response.json()
    print(answer["answer"].strip(), file=out)
    if answer.get("fallback"):
        print("\n(no language model answered: this is the extractive fallback)", file=out)
    if answer["citations"]:
        print("\nSources:", file=out)
        for marker, citation in enumerate(answer["citations"], start=1):
            print(f"[{marker}] {citation['title'] or citation['document_id']}", end="", file=out)
            print(f" ({citation['source']})" if citation["source"] else "", file=out)
    return 0


async def collections(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, out: TextIO
) -> int:
    async with _client(args, transport) as client:
        response = await _call(client, "GET", "/api/v1/collections")
    if response.status_code != 200:
        raise CliError(_problem_detail(response))
    for item in response.json()["collections"]:
        print(
            f"{item['name']:<24} {item['documents']:>7} documents {item['chunks']:>9} chunks  "
            f"{item['embedding_model'] or '(model not recorded)'} ({item['dimension']}d)",
            file=out,
        )
    return 0


async def reindex(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, out: TextIO
) -> int:
    async with _client(args, transport) as client:
        # Re-embedding a whole collection takes as long as ingesting it did.
        response = await _call(
            client,
            "POST",
            f"/api/v1/collections/{quote(args.name, safe='')}/reindex",
            timeout=httpx.Timeout(None, connect=5.0),
        )
    if response.status_code != 200:
        raise CliError(_problem_detail(response))
    result = response.json()
    info = result["collection"]
    print(
        f"reindexed {info['name']}: {info['documents']} documents, {info['chunks']} chunks, "
        f"{result['previous_model'] or '(model not recorded)'} -> {info['embedding_model']}",
        file=out,
    )
    return 0


# --- entry point --------------------------------------------------------------------------


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return number


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", default=DEFAULT_URL, help=f"edge URL (default {DEFAULT_URL})")
    connection.add_argument(
        "--api-key",
        default=os.environ.get("BRUNO_API_KEY"),
        help="API key (default: the BRUNO_API_KEY environment variable)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    common.add_argument("--collection", default="default", help="collection (default: default)")

    parser = argparse.ArgumentParser(prog="bruno", description="Talk to an Agent Bruno edge.")
    commands = parser.add_subparsers(dest="command", required=True)
    ingest_parser = commands.add_parser(
        "ingest",
        parents=[common],
        help="sync .md/.txt/.rst/.html files into a collection, one document each",
    )
    ingest_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest_parser.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"files sent at once (default {DEFAULT_CONCURRENCY})",
    )
    ingest_parser.add_argument(
        "--no-delete",
        action="store_true",
        help="keep documents whose file was removed from a synced folder",
    )
    ask_parser = commands.add_parser("ask", parents=[common], help="ask a question")
    ask_parser.add_argument("question")
    ask_parser.add_argument("--top-k", type=int, default=None, help="passages to retrieve")
    commands.add_parser("collections", parents=[connection], help="list the collections")
    reindex_parser = commands.add_parser(
        "reindex",
        parents=[connection],
        help="re-embed a collection with the embedding service's current model",
    )
    reindex_parser.add_argument("name", metavar="COLLECTION")
    return parser


async def run(
    argv: Sequence[str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the ``bruno`` command line; ``transport`` lets tests speak to an app in-process."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.command == "ingest":
            return await ingest(args, transport, out, err)
        if args.command == "collections":
            return await collections(args, transport, out)
        if args.command == "reindex":
            return await reindex(args, transport, out)
        return await ask(args, transport, out)
    except CliError as error:
        print(f"bruno: {error}", file=err)
        return 1


def main() -> None:
    raise SystemExit(asyncio.run(run(sys.argv[1:])))
