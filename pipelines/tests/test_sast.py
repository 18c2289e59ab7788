"""The sast stage and `make sast`: the committed Semgrep rules, their tests, the gate, SARIF.

The stage's query is read offline like the other stages'; the gate itself is run for real
(Semgrep from sast/uv.lock, offline) on small trees planted with findings.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bruno_pipelines import source
from bruno_pipelines.checks import PYTHON_IMAGE, WORKDIR
from bruno_pipelines.cli import STAGES, Options, StageContext, run_stages
from bruno_pipelines.images import ImageLabels
from bruno_pipelines.offline import Call, Query, capture, offline_client
from bruno_pipelines.sast import (
    FAILING_SEVERITIES,
    REGISTRY_PACKS,
    RULES_DIR,
    SARIF_DIR,
    SEMGREP_PROJECT,
    gate_command,
    registry_command,
    rule_tests_command,
    sast,
)

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / RULES_DIR).glob("*.yaml"))
RULES = [p for p in RULE_FILES if not p.name.endswith(".test.yaml")]


def _query(*, registry_packs: bool = False) -> Query:
    client = offline_client()
    return capture(sast(client, source(client, REPO), registry_packs=registry_packs))


def _execs(query: Query) -> list[Call]:
    return query.find("withExec")


# --- the stage, offline ------------------------------------------------------------------------


def test_sast_runs_the_locked_semgrep_rule_tests_then_the_gate_last() -> None:
    query = _query()
    execs = query.execs()

    assert query.find("from")[0].args["address"] == PYTHON_IMAGE
    assert execs[1] == ["uv", "sync", "--frozen", "--project", SEMGREP_PROJECT]
    assert execs[-2:] == [rule_tests_command(), gate_command()]
    # The gate's exit code is the container's last: the stage reads it after the export.
    assert _execs(query)[-1].args["expect"] == "ANY"
    assert _execs(query)[-2].args.get("expect", "SUCCESS") == "SUCCESS"  # a broken rule fails


def test_semgrep_is_installed_from_its_lock_before_the_sources_arrive() -> None:
    calls = _query().calls
    copies = [
        (i, c.args["source"]) for i, c in enumerate(calls)
        if c.field == "withDirectory" and c.args["path"] == WORKDIR
    ]  # fmt: skip
    execs = [(i, c.args["args"]) for i, c in enumerate(calls) if c.field == "withExec"]
    sync = next(i for i, argv in execs if isinstance(argv, list) and "sync" in argv)

    (first, lock), (second, _) = copies
    assert isinstance(lock, Query)
    assert lock.find("filter")[0].args["include"] == [
        f"{SEMGREP_PROJECT}/pyproject.toml",
        f"{SEMGREP_PROJECT}/uv.lock",
    ]
    assert first < sync < second


def test_the_gate_fails_at_the_threshold_offline_and_writes_sarif() -> None:
    gate = gate_command()
    env = {c.args["name"]: c.args["value"] for c in _query().find("withEnvVariable")}

    assert gate[:6] == ["uv", "run", "--frozen", "--project", SEMGREP_PROJECT, "semgrep"]
    assert gate[gate.index("--config") + 1] == RULES_DIR
    assert "--error" in gate
    assert [a.removeprefix("--severity=") for a in gate if a.startswith("--severity=")] == list(
        FAILING_SEVERITIES
    )
    assert {"--metrics=off", "--disable-version-check"} <= set(gate)
    assert f"--sarif-output={SARIF_DIR}/semgrep.sarif" in gate
    assert env["SEMGREP_SEND_METRICS"] == "off"
    assert not any(arg.startswith(("p/", "r/")) or arg == "auto" for arg in gate)


def test_registry_packs_run_only_when_asked_and_never_decide_the_stage() -> None:
    plain, with_packs = _query().execs(), _query(registry_packs=True)

    assert registry_command() not in plain
    (packs,) = [c for c in _execs(with_packs) if c.args["args"] == registry_command()]
    assert packs.args["expect"] == "ANY"
    assert with_packs.execs()[-1] == gate_command()  # still the verdict
    pairs = list(zip(registry_command(), registry_command()[1:], strict=False))
    assert [b for a, b in pairs if a == "--config"] == list(REGISTRY_PACKS)
    assert "--error" not in registry_command()


def test_ci_only_sast_runs_the_stage_and_a_stage_that_cannot_finish_fails() -> None:
    # As the scan stage's test does: offline, the await fails as a finding would.
    client = offline_client()
    options = Options(stages=["sast"], sast_registry_packs=True)
    ctx = StageContext(client, source(client, REPO), ImageLabels(), REPO, options)

    results = asyncio.run(run_stages(ctx, ["sast"], STAGES))

    (result,) = [r for r in results if r.result != "skipped"]
    assert (result.name, result.result) == ("sast", "failed")
    assert "EngineRequiredError" in result.error


# --- the rules and the gate, for real ----------------------------------------------------------


def _semgrep_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return env | {"SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_semgrep_env(), capture_output=True, text=True, check=False,
        timeout=300,
    )  # fmt: skip


def test_every_rule_has_matching_and_non_matching_test_cases() -> None:
    for rules in RULES:
        ids = [rule["id"] for rule in yaml.safe_load(rules.read_text())["rules"]]
        cases = [p for p in rules.parent.glob(f"{rules.stem}.*") if p != rules]
        assert len(cases) == 1, f"{rules.name}: one test-case file beside it"
        text = cases[0].read_text()
        for rule_id in ids:
            assert re.search(rf"\bruleid: {rule_id}\b", text), f"{rule_id}: no case it must match"
            assert re.search(rf"\bok: {rule_id}\b", text), f"{rule_id}: no case it must pass"


def test_the_rules_pass_their_own_test_cases() -> None:
    result = _run(rule_tests_command(), REPO)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tests passed" in result.stdout + result.stderr


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A tree the gate scans: the repository's sast project and .semgrepignore, plus files."""
    (tmp_path / SEMGREP_PROJECT).symlink_to(REPO / SEMGREP_PROJECT)
    shutil.copy(REPO / ".semgrepignore", tmp_path / ".semgrepignore")
    (tmp_path / "service.py").write_text("def search(table, col, lit, q):\n    return 1\n")
    return tmp_path


def test_a_finding_fails_the_gate_and_is_in_the_sarif(planted: Path) -> None:
    (planted / "service.py").write_text(
        "def delete(table, document_id):\n    table.delete(f\"document_id = '{document_id}'\")\n"
    )

    result = _run(gate_command(sarif="out.sarif"), planted)

    assert result.returncode == 1, result.stdout + result.stderr
    sarif = json.loads((planted / "out.sarif").read_text())
    found = [
        (r["ruleId"], r["locations"][0]["physicalLocation"]) for r in sarif["runs"][0]["results"]
    ]
    assert [
        (rule, loc["artifactLocation"]["uri"], loc["region"]["startLine"]) for rule, loc in found
    ] == [("bruno-lancedb-filter-from-interpolated-text", "service.py", 2)]


def test_a_clean_tree_passes_and_tests_are_not_scanned(planted: Path) -> None:
    (planted / "tests").mkdir()
    (planted / "tests" / "test_service.py").write_text(
        'def test_delete(table, x):\n    table.delete(f"id = {x}")\n'
    )

    result = _run(gate_command(sarif="out.sarif"), planted)

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((planted / "out.sarif").read_text())["runs"][0]["results"] == []


def test_a_suppression_with_its_reason_above_it_passes(planted: Path) -> None:
    (planted / "service.py").write_text(
        "def drill(table, n: int):\n"
        "    # Only an integer this loop computes reaches the filter text.\n"
        "    # nosemgrep: bruno-lancedb-filter-from-interpolated-text\n"
        '    table.delete(f"id % 11 = {n % 11}")\n'
    )

    result = _run(gate_command(sarif="out.sarif"), planted)

    assert result.returncode == 0, result.stdout + result.stderr


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    paths = [REPO / name for name in listed if not name.startswith(f"{SEMGREP_PROJECT}/")]
    return [p for p in paths if p.suffix in {".py", ".yaml", ".yml", ".sh", ""} and p.is_file()]


def test_every_suppression_in_the_repository_says_why_on_the_line_above() -> None:
    for path in _tracked_text_files():
        lines = path.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines):
            if "nosemgrep" not in line or path.name == "test_sast.py":
                continue
            above = lines[number - 1].strip() if number else ""
            where = f"{path.relative_to(REPO)}:{number + 1}"
            assert line.strip().startswith("# nosemgrep:"), f"{where}: a line of its own"
            assert above.startswith("#"), f"{where}: no reason above"
            assert "nosemgrep" not in above, f"{where}: no reason above"
