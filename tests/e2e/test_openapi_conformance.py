"""The edge answers as its OpenAPI document says, checked by schemathesis against the four real
services over real HTTP: every operation of ``/openapi.json`` (``/api/v1``, ``/v1`` and the
probes), valid and invalid requests, with and without a key, undocumented methods and event
streams. No server error, no undocumented status or content type, no body or header that breaks
its schema; the run's bounds, seed and the few documented exceptions are in
``schemathesis.toml`` beside this file.

``/mcp`` is not in the run: it is JSON-RPC over streamable HTTP (a session, then methods named
in the body), which OpenAPI cannot describe; ``test_mcp.py`` drives it with the MCP SDK.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "e2e-conformance-key"
DOC = {
    "id": "runbooks/velero",
    "title": "Velero",
    "source": "runbooks/velero.md",
    "text": "# Backups\n\nVelero backs up the cluster every night to the MinIO bucket.",
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrunoSystem]:
    env = {
        "BRUNO_API_KEYS": KEY,
        # Schemathesis sends well over a thousand requests, some with wrong keys on purpose: with
        # the rate limits on, which requests meet a 429 would depend on the machine's speed.
        "BRUNO_RATE_LIMIT": "",
        "BRUNO_AUTH_FAILURE_LIMIT": "",
    }
    with (
        InBackground(OllamaStandIn(models=["llama3.2"])) as ollama,
        BrunoSystem(
            tmp_path_factory.mktemp("conformance"), ollama_host=ollama.url, env=env
        ) as running,
    ):
        auth = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=running.edge_url, timeout=60, headers=auth) as client:
            # Something to find, so searches and chats answer from passages too.
            assert client.post("/api/v1/documents", json=DOC).status_code in (200, 201)
        yield running


def conformance_run(system: BrunoSystem, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` against the live edge with ``schemathesis.toml``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{system.edge_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {KEY}",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(300)
def test_the_edge_answers_as_its_openapi_document_says(system: BrunoSystem, tmp_path: Path) -> None:
    document = httpx.get(f"{system.edge_url}/openapi.json", timeout=30).json()
    operations = sum(len(methods) for methods in document["paths"].values())

    run = conformance_run(system, tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Tested: {operations}" in run.stdout, run.stdout  # every operation, none skipped
