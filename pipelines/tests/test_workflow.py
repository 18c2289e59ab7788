"""The GitHub Actions workflows run the same pipeline, least-privileged and pinned."""

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from bruno_pipelines import UV_VERSION
from bruno_pipelines.coverage import COVERAGE_DIR
from bruno_pipelines.sast import REGISTRY_SARIF, SARIF

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


def _steps(action: str, steps: list[dict[str, Any]] = STEPS) -> list[dict[str, Any]]:
    return [s for s in steps if str(s.get("uses", "")).startswith(action + "@")]


def _runs_uv(job: dict[str, Any]) -> bool:
    return any("uv run" in str(s.get("run", "")) or ("uses" in s and "dagger" in s["uses"])
               for s in job["steps"])  # fmt: skip


def _locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(str(p["version"]) for p in lock["package"] if p["name"] == package)


def test_expected_workflows_exist() -> None:
    assert [p.name for p in ALL_WORKFLOWS] == [
        "cd.yml",
        "ci.yml",
        "dora.yml",
        "notify.yml",
        "security.yml",
    ]


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
    assert '--overlay prod --tag "$version" --revision "$SHA" --commit' in script
    assert job["steps"][-1]["env"]["SHA"] == "${{ github.event.workflow_run.head_sha }}"
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

    assert uses_lines or workflow.name == "notify.yml"  # notify runs no action at all
    for line in uses_lines:
        assert re.fullmatch(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


@pytest.mark.parametrize("workflow", ["ci.yml", "security.yml"])
def test_dagger_engine_matches_the_locked_sdk(workflow: str) -> None:
    dagger_steps = [
        step["with"]
        for job in _load(workflow)["jobs"].values()
        for step in _steps("dagger/dagger-for-github", job["steps"])
    ]
    assert dagger_steps
    for dagger_step in dagger_steps:
        assert dagger_step["version"] == _locked_version("dagger-io")
    assert _locked_version("dagger-io") == metadata.version("dagger-io")


def test_ci_runs_the_same_pipeline_script_as_a_contributor() -> None:
    dagger_step = _step("dagger/dagger-for-github")["with"]

    assert dagger_step["verb"] == "run"
    # Every stage, and the registry's Semgrep packs, which only the runner can reach.
    assert dagger_step["args"] == f"{PIPELINE} --sast-registry-packs"
    assert (REPO / "pipelines" / "ci.py").is_file()


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_uv_on_the_runner_is_the_version_the_images_use(workflow: Path) -> None:
    jobs = [job for job in yaml.safe_load(workflow.read_text())["jobs"].values() if _runs_uv(job)]
    for job in jobs:
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


# --- what the pipeline leaves behind: SARIF, coverage, notices, DORA ---------------------------


def test_semgrep_results_reach_code_scanning_from_a_job_that_runs_no_pull_request_code() -> None:
    kept = _step("actions/upload-artifact")
    sast_upload = next(s for s in _steps("actions/upload-artifact") if s["with"]["name"] == "sast")
    job = DOC["jobs"]["code-scanning"]
    uploads = _steps("github/codeql-action/upload-sarif", job["steps"])

    assert kept["if"] == "${{ !cancelled() }}"  # a failing gate still hands its findings on
    assert sast_upload["if"] == "${{ !cancelled() }}"
    assert sast_upload["with"]["path"] == str(Path(SARIF).parent / "*.sarif")
    assert job["needs"] == "pipeline"
    assert "!cancelled()" in job["if"]
    assert job["permissions"] == {"contents": "read", "security-events": "write", "actions": "read"}
    assert not any("run" in step for step in job["steps"])  # it runs nothing of the checkout
    assert [u["with"]["sarif_file"] for u in uploads] == [SARIF, REGISTRY_SARIF]
    assert len({u["with"]["category"] for u in uploads}) == 2


def test_the_coverage_report_is_kept_and_summarised_even_when_a_floor_fails() -> None:
    summary = next(s for s in STEPS if "GITHUB_STEP_SUMMARY" in str(s.get("run", "")))
    kept = next(s for s in _steps("actions/upload-artifact") if s["with"]["name"] == "coverage")

    assert summary["run"] == f'cat {COVERAGE_DIR}/summary.md >> "$GITHUB_STEP_SUMMARY"'
    assert summary["if"].startswith("${{ !cancelled()")
    assert kept["if"] == "${{ !cancelled() }}"
    assert f"{COVERAGE_DIR}/coverage.xml" in kept["with"]["path"].split()


NOTIFY = _load("notify.yml")
NOTIFY_STEP: dict[str, Any] = NOTIFY["jobs"]["failure"]["steps"][-1]


def test_a_failed_run_off_pull_requests_notifies_through_the_webhook_secret() -> None:
    others = sorted(_load(p.name)["name"] for p in ALL_WORKFLOWS if p.name != "notify.yml")
    triggers = _triggers(NOTIFY)["workflow_run"]
    job = NOTIFY["jobs"]["failure"]

    assert sorted(triggers["workflows"]) == sorted(n for n in others if n != "dora")
    assert triggers["types"] == ["completed"]
    assert "conclusion == 'failure'" in job["if"]
    assert "event != 'pull_request'" in job["if"]
    assert NOTIFY["permissions"] == {}
    assert NOTIFY_STEP["env"]["WEBHOOK_URL"] == "${{ secrets.DEPLOY_NOTIFY_WEBHOOK_URL }}"
    assert "${{" not in NOTIFY_STEP["run"]


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(
            {"type": self.headers["Content-Type"], **json.loads(self.rfile.read(length))}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _run_notice(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The step's own script, run by bash with `python3` being this interpreter.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    path = f"{bin_dir}:{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", NOTIFY_STEP["run"]],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_notice_names_the_workflow_branch_commit_and_run(tmp_path: Path) -> None:
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook",
        "WORKFLOW": "cd",
        "BRANCH": "main",
        "SHA": "0123456789abcdef0123456789abcdef01234567",
        "RUN_URL": "https://github.com/agent-bruno/agent-bruno/actions/runs/1",
    }
    try:
        result = _run_notice(env, tmp_path)
    finally:
        server.shutdown()
        server.server_close()

    assert result.returncode == 0, result.stderr
    ((notice),) = _Webhook.received
    text = "Agent Bruno: cd failed on main (0123456789ab): " + env["RUN_URL"]
    assert notice == {"type": "application/json", "text": text, "content": text}


def test_without_the_secret_the_notice_is_skipped_and_says_so(tmp_path: Path) -> None:
    result = _run_notice({"WEBHOOK_URL": ""}, tmp_path)

    assert result.returncode == 0
    assert "DEPLOY_NOTIFY_WEBHOOK_URL is not set" in result.stdout


def test_dora_measures_prod_from_the_whole_history_read_only() -> None:
    doc = _load("dora.yml")
    job = doc["jobs"]["measure"]
    measure = next(s for s in job["steps"] if "pipelines/dora.py" in str(s.get("run", "")))

    assert set(_triggers(doc)) == {"schedule", "workflow_dispatch"}
    assert doc["permissions"] == {"contents": "read"}
    assert _step("actions/checkout", job["steps"])["with"]["fetch-depth"] == 0
    assert "--overlay prod" in measure["run"]
    assert measure["env"]["PUSHGATEWAY_URL"] == "${{ secrets.DORA_PUSHGATEWAY_URL }}"
    assert (REPO / "pipelines" / "dora.py").is_file()
