"""The GitHub Actions workflow runs the same pipeline, least-privileged and pinned."""

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from bruno_pipelines import UV_VERSION

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
TEXT = WORKFLOW.read_text()
DOC: dict[Any, Any] = yaml.safe_load(TEXT)
STEPS: list[dict[str, Any]] = DOC["jobs"]["pipeline"]["steps"]


def _step(action: str) -> dict[str, Any]:
    return next(s for s in STEPS if str(s.get("uses", "")).startswith(action + "@"))


def _locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(str(p["version"]) for p in lock["package"] if p["name"] == package)


def test_runs_on_pull_requests_and_pushes_to_main() -> None:
    triggers = DOC["on"] if "on" in DOC else DOC[True]  # YAML 1.1 reads a bare `on` as true

    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]


def test_token_can_only_read_the_repository() -> None:
    assert DOC["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in DOC["jobs"].values())
    assert _step("actions/checkout")["with"]["persist-credentials"] is False


def test_a_new_push_cancels_the_running_pull_request_build_only() -> None:
    concurrency = DOC["concurrency"]

    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_every_action_is_pinned_to_a_full_commit_sha_naming_its_release() -> None:
    uses_lines = [line.strip() for line in TEXT.splitlines() if "uses:" in line]

    assert uses_lines
    for line in uses_lines:
        assert re.fullmatch(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


def test_dagger_engine_matches_the_locked_sdk() -> None:
    dagger_step = _step("dagger/dagger-for-github")["with"]

    assert dagger_step["version"] == _locked_version("dagger-io") == metadata.version("dagger-io")


def test_ci_runs_the_same_pipeline_script_as_a_contributor() -> None:
    dagger_step = _step("dagger/dagger-for-github")["with"]

    assert dagger_step["verb"] == "run"
    assert dagger_step["args"] == "uv run --locked --package bruno-pipelines python pipelines/ci.py"
    assert (REPO / "pipelines" / "ci.py").is_file()


def test_uv_on_the_runner_is_the_version_the_images_use() -> None:
    assert _step("astral-sh/setup-uv")["with"]["version"] == UV_VERSION


def test_actionlint_finds_nothing_wrong() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    if not actionlint.exists():
        pytest.fail("actionlint is in the root dev group: run `uv sync --all-packages`")

    result = subprocess.run(
        [str(actionlint), "-no-color", "-shellcheck=", "-pyflakes=", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
