"""The GitHub Actions workflows run the same pipeline, least-privileged and pinned."""

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
WORKFLOWS_DIR = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS_DIR / "ci.yml"
ALL_WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
TEXT = WORKFLOW.read_text()
DOC: dict[Any, Any] = yaml.safe_load(TEXT)
STEPS: list[dict[str, Any]] = DOC["jobs"]["pipeline"]["steps"]
PIPELINE = "uv run --locked --package bruno-pipelines python pipelines/ci.py"


def _load(name: str) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    return doc


def _triggers(doc: dict[Any, Any]) -> dict[str, Any]:
    triggers: dict[str, Any] = doc["on"] if "on" in doc else doc[True]  # YAML 1.1: `on` is true
    return triggers


def _step(action: str, steps: list[dict[str, Any]] = STEPS) -> dict[str, Any]:
    return next(s for s in steps if str(s.get("uses", "")).startswith(action + "@"))


def _locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(str(p["version"]) for p in lock["package"] if p["name"] == package)


def test_expected_workflows_exist() -> None:
    assert [p.name for p in ALL_WORKFLOWS] == ["cd.yml", "ci.yml", "security.yml"]


def test_runs_on_pull_requests_pushes_to_main_and_version_tags() -> None:
    triggers = _triggers(DOC)

    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*"]


def test_checks_can_only_read_the_repository() -> None:
    assert DOC["permissions"] == {"contents": "read"}
    assert "permissions" not in DOC["jobs"]["pipeline"]
    assert _step("actions/checkout")["with"]["persist-credentials"] is False


def test_publish_runs_on_pushes_after_the_checks_with_package_write_only() -> None:
    job = DOC["jobs"]["publish"]
    step = _step("dagger/dagger-for-github", job["steps"])

    assert job["if"] == "github.event_name == 'push'"
    assert job["needs"] == "pipeline"
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    assert step["with"]["args"] == f"{PIPELINE} --only build,publish --publish"
    assert step["env"]["REGISTRY_PASSWORD"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "--publish" not in _step("dagger/dagger-for-github")["with"]["args"]


def test_cd_promotes_dev_after_a_successful_ci_run_on_main() -> None:
    doc = _load("cd.yml")
    job = doc["jobs"]["dev"]
    script = job["steps"][-1]["run"]

    assert _triggers(doc) == {"workflow_run": {"workflows": ["ci"], "types": ["completed"]}}
    assert doc["permissions"] == {}
    assert job["permissions"] == {"contents": "write"}
    assert "conclusion == 'success'" in job["if"]
    assert "head_branch == 'main'" in job["if"]
    assert "pipelines/deploy.py" in script
    assert '--overlay dev --tag "$SHA" --commit' in script
    assert job["steps"][-1]["env"]["SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_cd_proposes_prod_by_pull_request_on_a_version_tag() -> None:
    job = _load("cd.yml")["jobs"]["prod"]
    script = job["steps"][-1]["run"]

    assert "startsWith(github.event.workflow_run.head_branch, 'v')" in job["if"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert '--overlay prod --tag "$version" --commit' in script
    assert "gh pr create" in script


def test_security_scans_the_published_images_on_a_schedule_read_only() -> None:
    doc = _load("security.yml")
    step = _step("dagger/dagger-for-github", doc["jobs"]["scan"]["steps"])

    assert set(_triggers(doc)) == {"schedule", "workflow_dispatch"}
    assert doc["permissions"] == {"contents": "read", "packages": "read"}
    assert step["with"]["args"] == f"{PIPELINE} --only scan --scan-tag main"


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_has_a_concurrency_group(workflow: Path) -> None:
    assert yaml.safe_load(workflow.read_text())["concurrency"]["group"]


def test_a_new_push_cancels_the_running_pull_request_build_only() -> None:
    concurrency = DOC["concurrency"]

    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha_naming_its_release(workflow: Path) -> None:
    uses_lines = [line.strip() for line in workflow.read_text().splitlines() if "uses:" in line]

    assert uses_lines
    for line in uses_lines:
        assert re.fullmatch(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


@pytest.mark.parametrize("workflow", ["ci.yml", "security.yml"])
def test_dagger_engine_matches_the_locked_sdk(workflow: str) -> None:
    for job in _load(workflow)["jobs"].values():
        dagger_step = _step("dagger/dagger-for-github", job["steps"])["with"]
        assert dagger_step["version"] == _locked_version("dagger-io")
    assert _locked_version("dagger-io") == metadata.version("dagger-io")


def test_ci_runs_the_same_pipeline_script_as_a_contributor() -> None:
    dagger_step = _step("dagger/dagger-for-github")["with"]

    assert dagger_step["verb"] == "run"
    assert dagger_step["args"] == PIPELINE
    assert (REPO / "pipelines" / "ci.py").is_file()


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_uv_on_the_runner_is_the_version_the_images_use(workflow: Path) -> None:
    for job in yaml.safe_load(workflow.read_text())["jobs"].values():
        assert _step("astral-sh/setup-uv", job["steps"])["with"]["version"] == UV_VERSION


def _tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is in the root dev group: run `uv sync --all-packages`")
    return path


def test_workflows_match_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [
            str(_tool("check-jsonschema")),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, ALL_WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_nothing_wrong() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    if not actionlint.exists():
        pytest.fail("actionlint is in the root dev group: run `uv sync --all-packages`")

    result = subprocess.run(
        [str(actionlint), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, ALL_WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
