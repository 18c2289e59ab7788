"""``bruno``: feed documents to a running edge and ask it questions, over the REST API.

    bruno ingest docs/ notes/runbook.md --collection homelab
    bruno ask "How do I restore a Velero backup?"

The URL comes from ``--url`` (default http://127.0.0.1:8080), the key from ``--api-key`` or
``BRUNO_API_KEY``. Exit status: 0 on success, 1 when any file or request failed, 2 on usage
errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TextIO

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".html", ".htm"})
_TIMEOUT = httpx.Timeout(150.0, connect=5.0)
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._:/-]+")
_MAX_ID_CHARS = 200
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


class CliError(Exception):
    """A failure to report on stderr with exit status 1."""


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest and the id it is stored under."""

    path: Path
    document_id: str


@dataclass(frozen=True)
class Document:
    title: str
    text: str


# --- reading files ------------------------------------------------------------------------


def document_id_for(relative: Path) -> str:
    """A stable document id from a path relative to what was named on the command line."""
    safe = _UNSAFE_ID_CHARS.sub("-", relative.as_posix()).strip("/")
    return safe[-_MAX_ID_CHARS:] if len(safe) > _MAX_ID_CHARS else safe


def find_files(paths: Sequence[Path]) -> list[SourceFile]:
    """The ingestible files under ``paths``, ids relative to each named path (stable
    wherever the command runs from)."""
    found: list[SourceFile] = []
    for root in paths:
        if root.is_file():
            found.append(SourceFile(root, document_id_for(Path(root.name))))
        elif root.is_dir():
            found.extend(
                SourceFile(path, document_id_for(path.relative_to(root)))
                for path in sorted(root.rglob("*"))
                if path.is_file() and path.suffix.lower() in SUFFIXES
            )
        else:
            raise CliError(f"{root}: no such file or directory")
    return found


class _HtmlText(HTMLParser):
    """Visible text and title of an HTML page (scripts and styles dropped)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self.heading = ""
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag in {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "pre", "section"}:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        current = self._stack[-1] if self._stack else ""
        if current in {"script", "style"}:
            return
        if current == "title":
            self.title += data
            return
        if current == "h1" and not self.heading:
            self.heading = data.strip()
        self.parts.append(data)


def read_document(path: Path) -> Document:
    """The text and title of ``path`` (first heading, else the file name)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CliError("not UTF-8 text") from error
    except OSError as error:
        raise CliError(error.strerror or str(error)) from error
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        parser = _HtmlText()
        parser.feed(raw)
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
        return Document(title=parser.title.strip() or parser.heading or path.name, text=text)
    lines = raw.splitlines()
    title = _rst_title(lines) if suffix == ".rst" else _markdown_title(lines)
    return Document(title=title or path.name, text=raw)


def _markdown_title(lines: Sequence[str]) -> str:
    in_code = False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        elif not in_code and (match := _MD_HEADING.match(line)):
            return match["title"]
    return ""


def _rst_title(lines: Sequence[str]) -> str:
    for above, line, below in zip(["", *lines], lines, [*lines[1:], ""], strict=True):
        text = line.strip()
        underlined = bool(_RST_UNDERLINE.match(below)) and not _RST_UNDERLINE.match(line)
        if text and underlined and (len(below.strip()) >= len(text) or _RST_UNDERLINE.match(above)):
            return text
    return ""


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


async def ingest(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, out: TextIO
) -> int:
    files = find_files(args.paths)
    if not files:
        raise CliError("no .md, .txt, .rst or .html files found")
    outcomes: Counter[str] = Counter()
    async with _client(args, transport) as client:
        for source in files:
            outcome, note = await _ingest_one(client, source, args.collection)
            outcomes[outcome] += 1
            print(f"{outcome:<9} {source.document_id}{note}", file=out)
    print(_summary(len(files), outcomes), file=out)
    return 1 if outcomes["failed"] else 0


async def _ingest_one(
    client: httpx.AsyncClient, source: SourceFile, collection: str
) -> tuple[str, str]:
    try:
        document = read_document(source.path)
    except CliError as error:
        return "failed", f": {error}"
    if not document.text.strip():
        return "skipped", " (empty)"
    body = {
        "id": source.document_id,
        "title": document.title[:500],
        "source": source.path.as_posix()[:2000],
        "text": document.text,
        "collection": collection,
    }
    try:
        response = await client.post("/api/v1/documents", json=body)
    except httpx.TransportError as error:
        raise CliError(f"cannot reach {client.base_url}: {error}") from error
    if response.status_code not in (200, 201):
        return "failed", f": {_problem_detail(response)}"
    result = response.json()
    return str(result["status"]), f" ({result['chunks']} chunks)"


def _summary(total: int, outcomes: Counter[str]) -> str:
    parts = [f"{outcomes[name]} {name}" for name in ("created", "replaced", "unchanged")]
    parts += [f"{outcomes[name]} {name}" for name in ("skipped", "failed") if outcomes[name]]
    return f"{total} file{'s' if total != 1 else ''}: " + ", ".join(parts)


async def ask(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, out: TextIO
) -> int:
    body: dict[str, Any] = {"message": args.question, "collection": args.collection}
    if args.top_k is not None:
        body["top_k"] = args.top_k
    body["stream"] = False
    async with _client(args, transport) as client:
        try:
            response = await client.post("/api/v1/chat", json=body)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach {client.base_url}: {error}") from error
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


# --- entry point --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=DEFAULT_URL, help=f"edge URL (default {DEFAULT_URL})")
    common.add_argument(
        "--api-key",
        default=os.environ.get("BRUNO_API_KEY"),
        help="API key (default: the BRUNO_API_KEY environment variable)",
    )
    common.add_argument("--collection", default="default", help="collection (default: default)")

    parser = argparse.ArgumentParser(prog="bruno", description="Talk to an Agent Bruno edge.")
    commands = parser.add_subparsers(dest="command", required=True)
    ingest_parser = commands.add_parser(
        "ingest", parents=[common], help="ingest .md/.txt/.rst/.html files, one document each"
    )
    ingest_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ask_parser = commands.add_parser("ask", parents=[common], help="ask a question")
    ask_parser.add_argument("question")
    ask_parser.add_argument("--top-k", type=int, default=None, help="passages to retrieve")
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
    try:
        if args.command == "ingest":
            return await ingest(args, transport, out)
        return await ask(args, transport, out)
    except CliError as error:
        print(f"bruno: {error}", file=err or sys.stderr)
        return 1


def main() -> None:
    raise SystemExit(asyncio.run(run(sys.argv[1:])))
