"""The ``bruno`` command: arguments, the connection, and one line for any failure.

Exit status: 0 on success, 1 when any file, folder or request failed (said on stderr in one
line, never with a traceback), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import httpx

from bruno_cli.admin import collections, reindex
from bruno_cli.ask import ask
from bruno_cli.connection import DEFAULT_URL, CliError, connect
from bruno_cli.ingest import DEFAULT_CONCURRENCY, JOB_THRESHOLD, ingest
from bruno_cli.jobs import cancel, failed, list_jobs, watch
from bruno_core import InvalidInput
from bruno_core.contract import check_fetch_url

_URL_SCHEMES = ("http://", "https://")


def _concurrency(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return number


def _limit(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return number


def _path_or_url(value: str) -> Path | str:
    """A local path, or an http(s) URL (kept as text) for the edge to have fetched."""
    if value.lower().startswith(_URL_SCHEMES):
        try:
            return check_fetch_url(value)
        except InvalidInput as error:
            raise argparse.ArgumentTypeError(error.detail) from error
    return Path(value)


def _connection_options(*, defaults: bool) -> argparse.ArgumentParser:
    """``--url`` and ``--api-key``; without ``defaults`` for a subcommand's subcommand, whose
    defaults would otherwise replace what was given before it (``bruno jobs --url X watch``)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--url",
        default=os.environ.get("BRUNO_URL") or DEFAULT_URL if defaults else argparse.SUPPRESS,
        help=f"the edge's URL (default: the BRUNO_URL environment variable, else {DEFAULT_URL})",
    )
    options.add_argument(
        "--api-key",
        default=os.environ.get("BRUNO_API_KEY") if defaults else argparse.SUPPRESS,
        help="API key (default: the BRUNO_API_KEY environment variable)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    connection = _connection_options(defaults=True)
    plain = argparse.ArgumentParser(add_help=False)
    plain.add_argument(
        "--plain",
        action="store_true",
        help="a job's progress as lines, also on a terminal (they are, when not on one)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    common.add_argument("--collection", default="default", help="collection (default: default)")

    parser = argparse.ArgumentParser(prog="bruno", description="Talk to an Agent Bruno edge.")
    commands = parser.add_subparsers(dest="command", required=True)
    ingest_parser = commands.add_parser(
        "ingest",
        parents=[common, plain],
        help="sync .md/.txt/.rst/.html/.pdf/.docx files (or fetch URLs) into a collection",
        description=(
            "Sync files and folders into a collection, one document per file; from "
            f"{JOB_THRESHOLD} files on they go as ingest jobs, followed to their end. http(s) "
            "URLs among them go as one URL job: the server fetches them (public addresses "
            "only, unless its operator allowed more)."
        ),
    )
    ingest_parser.add_argument(
        "paths",
        nargs="+",
        type=_path_or_url,
        metavar="PATH|URL",
        help="files, folders and http(s) URLs",
    )
    ingest_parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=DEFAULT_CONCURRENCY,
        help=f"files sent at once (default {DEFAULT_CONCURRENCY})",
    )
    ingest_parser.add_argument(
        "--no-delete",
        action="store_true",
        help="keep documents whose file was removed from a synced folder",
    )
    ingest_parser.add_argument(
        "--no-wait",
        action="store_true",
        help="submit the files as ingest jobs and return; follow them with `bruno jobs watch`",
    )
    jobs_parser = commands.add_parser(
        "jobs", parents=[connection], help="list your recent ingest and reindex jobs"
    )
    jobs_parser.add_argument(
        "--limit", type=_limit, default=20, help="jobs listed, newest first (default 20)"
    )
    jobs_commands = jobs_parser.add_subparsers(dest="jobs_command")
    again = _connection_options(defaults=False)
    watch_parser = jobs_commands.add_parser(
        "watch",
        parents=[again, plain],
        help="follow a job to its end; exit 1 when any document failed or it did not succeed",
    )
    watch_parser.add_argument("job_id", metavar="ID")
    cancel_parser = jobs_commands.add_parser(
        "cancel", parents=[again], help="cancel a job (what it committed stays)"
    )
    cancel_parser.add_argument("job_id", metavar="ID")
    ask_parser = commands.add_parser(
        "ask", parents=[common], help="ask a question; the answer streams, its sources follow"
    )
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
        async with connect(args.url, args.api_key, transport) as client:
            if args.command == "ingest":
                return await ingest(
                    client,
                    [path for path in args.paths if isinstance(path, Path)],
                    urls=[url for url in args.paths if isinstance(url, str)],
                    collection=args.collection,
                    concurrency=args.concurrency,
                    delete=not args.no_delete,
                    out=out,
                    err=err,
                    wait=not args.no_wait,
                    plain=args.plain,
                )
            if args.command == "jobs" and args.jobs_command == "watch":
                job = await watch(client, args.job_id, out, err, plain=args.plain)
                return 1 if failed(job) else 0
            if args.command == "jobs" and args.jobs_command == "cancel":
                return await cancel(client, args.job_id, out)
            if args.command == "jobs":
                return await list_jobs(client, out, limit=args.limit)
            if args.command == "collections":
                return await collections(client, out)
            if args.command == "reindex":
                return await reindex(client, args.name, out)
            return await ask(
                client, args.question, collection=args.collection, top_k=args.top_k, out=out
            )
    except CliError as error:
        print(f"bruno: {error}", file=err)
        return 1


def main() -> None:
    try:
        raise SystemExit(asyncio.run(run(sys.argv[1:])))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
