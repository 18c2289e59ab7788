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
from bruno_cli.ingest import DEFAULT_CONCURRENCY, ingest
from bruno_cli.jobs import failed, list_jobs, watch


def _concurrency(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return number


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        default=os.environ.get("BRUNO_URL") or DEFAULT_URL,
        help=f"the edge's URL (default: the BRUNO_URL environment variable, else {DEFAULT_URL})",
    )
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
        help="sync .md/.txt/.rst/.html/.pdf/.docx files into a collection, one document each",
    )
    ingest_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
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
    jobs_commands = jobs_parser.add_subparsers(dest="jobs_command")
    watch_parser = jobs_commands.add_parser(
        "watch", parents=[connection], help="follow a job to its end"
    )
    watch_parser.add_argument("job_id", metavar="ID")
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
                    args.paths,
                    collection=args.collection,
                    concurrency=args.concurrency,
                    delete=not args.no_delete,
                    out=out,
                    err=err,
                    wait=not args.no_wait,
                )
            if args.command == "jobs" and args.jobs_command == "watch":
                return 1 if failed(await watch(client, args.job_id, out, err)) else 0
            if args.command == "jobs":
                return await list_jobs(client, out)
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
