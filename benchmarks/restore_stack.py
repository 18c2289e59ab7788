"""The stack the per-request benchmarks (``overhead.py``, ``chat_hops.py``, ``request_cpu.py``)
measure: the four services as processes on loopback (``bruno_testing.BrunoSystem``), one API key
with a rate limit too high to refuse anything (so the key check and the limiter run but never
shed), generation pointed at an Ollama stand-in, and one short document about restoring a
backup, which every question finds.

    parser = argparse.ArgumentParser()
    add_setting_option(parser)
    args = parser.parse_args()
    with InBackground(OllamaStandIn(models=[MODEL])) as ollama, TemporaryDirectory() as tmp:
        with restore_stack(Path(tmp), ollama.url, settings(args)) as system:
            ...  # POST /api/v1/search with KEY, asking QUERY
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from bruno_testing.system import BrunoSystem

MODEL = "llama3.2"
KEY = "bench-restore-stack-key"
DOCUMENT = (
    "Velero backs up the LanceDB volume every night at 02:00 and keeps fourteen daily "
    "snapshots. To restore, scale retrieval to zero, run velero restore create from the "
    "latest backup, wait for the init container to roll tables back to their newest "
    "complete version, then scale retrieval up again."
)
QUERY = "how do I restore the LanceDB volume from a backup?"
#: Words of DOCUMENT: a question naming two of them still finds it.
TOPICS = ["backup", "restore", "volume", "snapshot", "retrieval", "velero", "night", "table"]


def add_setting_option(parser: argparse.ArgumentParser) -> None:
    """``--setting BRUNO_NAME=VALUE`` (repeatable): a setting for every service of the stack."""
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="BRUNO_NAME=VALUE",
        help="a setting passed to every service of the stack (repeatable), e.g. "
        "BRUNO_EMBEDDING_ONNX_MODEL=all-MiniLM-L6-v2-int8",
    )


def settings(args: argparse.Namespace) -> dict[str, str]:
    """The ``--setting`` options given, by name."""
    return {name: value for name, _, value in (s.partition("=") for s in args.setting)}


def pids(system: BrunoSystem) -> dict[str, int]:
    """Each service's process id, by service name."""
    return {name: process.pid for name, process in system.processes.items()}


@contextmanager
def restore_stack(
    workdir: Path, ollama_url: str, env: Mapping[str, str] | None = None
) -> Iterator[BrunoSystem]:
    """The four services in ``workdir`` holding DOCUMENT, generation asking ``ollama_url``;
    ``env`` adds to (or overrides) the stack's settings."""
    stack_env = {
        "BRUNO_LOG_LEVEL": "WARNING",
        "BRUNO_API_KEYS": KEY,
        # Checked on every request, never reached: the limiter's cost without its refusals.
        "BRUNO_RATE_LIMIT": "100000/second",
        **(env or {}),
    }
    with BrunoSystem(workdir, ollama_host=ollama_url, env=stack_env) as system:
        document = {"id": "restore.md", "title": "Restore", "text": DOCUMENT}
        httpx.post(
            f"{system.edge_url}/api/v1/documents",
            json=document,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ).raise_for_status()
        yield system


def distinct_question(n: int) -> str:
    """A question no other call asks (so no cache answers it) that still finds DOCUMENT, so a
    chat asks the model instead of answering "I don't know" by itself."""
    return f"How does Velero {TOPICS[n % len(TOPICS)]} the LanceDB volume? (ticket {n})"
