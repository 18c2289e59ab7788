"""The canary's pre-rollout gate against the real system: the golden questions pass while the
demo corpus is indexed, and fail (CLI exit 1, webhook 412) once an expected document is gone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_cli import run as bruno
from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port

ROOT = Path(__file__).resolve().parents[2]
CANARY = ROOT / "k8s" / "components" / "canary"
GATE = CANARY / "golden_gate.py"
QUESTIONS = CANARY / "golden-questions.json"


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GATE), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrunoSystem]:
    with (
        InBackground(OllamaStandIn(models=["llama3.2"])) as ollama,
        BrunoSystem(tmp_path_factory.mktemp("golden"), ollama_host=ollama.url) as running,
    ):
        status = asyncio.run(bruno(["ingest", "--url", running.edge_url, str(ROOT / "demo")]))
        assert status == 0
        yield running


@pytest.fixture(scope="module")
def webhook(system: BrunoSystem) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(GATE),
            "serve",
            f"--port={port}",
            f"--questions={QUESTIONS}",
            f"--default-url={system.edge_url}",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def flagger_call(webhook: str, edge_url: str) -> httpx.Response:
    payload = {
        "name": "edge",
        "namespace": "agent-bruno",
        "phase": "Progressing",
        "metadata": {"url": edge_url},
    }
    return httpx.post(webhook, json=payload, timeout=300)


def test_the_golden_set_passes_then_fails_once_a_document_is_gone(
    system: BrunoSystem, webhook: str
) -> None:
    passing = gate("check", "--url", system.edge_url, "--questions", str(QUESTIONS))
    assert passing.returncode == 0, passing.stdout
    assert json.loads(passing.stdout)["passed"] is True
    assert flagger_call(webhook, system.edge_url).status_code == 200

    deleted = httpx.delete(f"{system.edge_url}/api/v1/documents/backups-and-restore.md")
    assert deleted.status_code in (200, 204), deleted.text

    failing = gate("check", "--url", system.edge_url, "--questions", str(QUESTIONS))
    assert failing.returncode == 1
    (failure,) = json.loads(failing.stdout)["failed"]
    assert "Velero" in failure["question"]
    assert "backups-and-restore.md" not in failure["cited"]
    refused = flagger_call(webhook, system.edge_url)
    assert refused.status_code == 412
    assert refused.json()["failed"][0]["question"] == failure["question"]


def test_an_unreachable_canary_fails_the_gate(tmp_path: Path) -> None:
    result = gate(
        "check", "--url", f"http://127.0.0.1:{free_port()}", "--questions", str(QUESTIONS)
    )
    assert result.returncode == 1
    assert "no answer" in result.stdout


def test_a_malformed_question_set_is_refused_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "questions.json"
    bad.write_text(json.dumps([{"question": "where?", "expect_any": []}]))
    result = gate("check", "--url", "http://127.0.0.1:1", "--questions", str(bad))
    assert result.returncode == 2
    assert "question 1 needs a question and expect_any ids" in result.stderr
