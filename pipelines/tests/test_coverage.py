"""Coverage per package against its floor: real coverage.py reports of a small workspace."""

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from bruno_pipelines.coverage import (
    COVERAGE_DIR,
    PackageCoverage,
    by_package,
    floors,
    main,
    markdown,
    problems,
    workspace_members,
)

REPO = Path(__file__).resolve().parents[2]


def _workspace(root: Path, floor: dict[str, float]) -> Path:
    """Two members, ``pkgs/a`` (fully run) and ``pkgs/b`` (half run), measured for real."""
    floors_toml = "\n".join(f'"{name}" = {value}' for name, value in floor.items())
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [tool.uv.workspace]
            members = ["pkgs/*"]

            [tool.bruno.coverage-floors]
            """)
        + floors_toml
        + "\n"
    )
    sources = {
        "a": "def double(x):\n    return 2 * x\n",
        "b": "def sign(x):\n    if x < 0:\n        return -1\n    return 1\n",
    }
    for name, code in sources.items():
        member = root / "pkgs" / name
        (member / "src" / f"mod_{name}").mkdir(parents=True)
        (member / "pyproject.toml").write_text(f'[project]\nname = "pkg-{name}"\n')
        (member / "src" / f"mod_{name}" / "__init__.py").write_text(code)
    script = "import mod_a, mod_b\nmod_a.double(2)\nmod_b.sign(3)\n"
    (root / "run.py").write_text(script)
    env_path = f"{root / 'pkgs/a/src'}:{root / 'pkgs/b/src'}"
    for argv in (
        ["run", "--branch", "--source=mod_a,mod_b", "run.py"],
        ["json", "-o", "coverage.json"],
    ):
        subprocess.run(
            [sys.executable, "-m", "coverage", *argv],
            cwd=root,
            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
    return root / "coverage.json"


def test_figures_are_summed_per_workspace_package_with_branches(tmp_path: Path) -> None:
    report = _workspace(tmp_path, {})

    coverage = by_package(json.loads(report.read_text()), workspace_members(tmp_path))

    assert coverage["pkg-a"] == PackageCoverage("pkg-a", 2, 2, 0, 0)
    # sign(3): 3 of 4 statements, 1 of 2 branches (x < 0 never true) → 4 of 6.
    assert coverage["pkg-b"] == PackageCoverage("pkg-b", 4, 3, 2, 1)
    assert coverage["pkg-b"].percent == pytest.approx(100 * 4 / 6)


def test_a_package_below_its_floor_fails_and_says_by_how_much(tmp_path: Path) -> None:
    report = _workspace(tmp_path, {"pkg-a": 100, "pkg-b": 70})

    code = main(["--report", str(report)], repo=tmp_path)

    assert code == 1
    summary = (tmp_path / COVERAGE_DIR / "summary.md").read_text()
    assert "| pkg-b | 66.7% | 70% | 3/4 | 1/2 | ❌ |" in summary
    assert "| pkg-a | 100.0% | 100% | 2/2 | 0/0 | ✅ |" in summary


def test_figures_at_or_above_every_floor_pass(tmp_path: Path) -> None:
    report = _workspace(tmp_path, {"pkg-a": 100, "pkg-b": 66})

    assert main(["--report", str(report)], repo=tmp_path) == 0


def test_a_measured_package_without_a_floor_and_a_stale_floor_both_fail() -> None:
    measured = {"pkg-a": PackageCoverage("pkg-a", 10, 10)}

    found = problems(measured, {"pkg-old": 50})

    assert found == [
        "pkg-a: measured (100.0%) but has no floor in [tool.bruno.coverage-floors]",
        "pkg-old: has a floor but no measured code",
    ]


def test_a_file_outside_every_package_is_an_error_not_dropped() -> None:
    report = {"files": {"elsewhere/x.py": {"summary": {"num_statements": 1, "covered_lines": 1}}}}

    with pytest.raises(ValueError, match=r"elsewhere/x\.py belongs to no workspace package"):
        by_package(report, {"pkgs/a": "pkg-a"})


def test_the_summary_is_a_markdown_table_for_the_job_summary() -> None:
    table = markdown({"pkg-a": PackageCoverage("pkg-a", 4, 3, 2, 1)}, {})

    assert table.splitlines()[2:] == [
        "| package | coverage | floor | statements | branches | |",
        "|---|---:|---:|---:|---:|---|",
        "| pkg-a | 66.7% | - | 3/4 | 1/2 | ❌ |",
    ]


def test_every_package_of_this_repository_with_code_has_a_floor() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    measured = {
        package.replace("_", "-") for package in config["tool"]["coverage"]["run"]["source_pkgs"]
    }

    assert set(floors(REPO)) == measured
    assert set(floors(REPO)) <= set(workspace_members(REPO).values())
    assert all(50 <= floor <= 100 for floor in floors(REPO).values())


def test_a_run_that_writes_no_report_fails_instead_of_judging_an_old_one(tmp_path: Path) -> None:
    old = _workspace(tmp_path, {"pkg-a": 0, "pkg-b": 0})  # figures that would pass
    (tmp_path / COVERAGE_DIR).mkdir(parents=True)
    old.rename(tmp_path / COVERAGE_DIR / "coverage.json")
    (tmp_path / "test_broken.py").write_text("import not_a_module\n")  # pytest cannot collect

    code = main([], repo=tmp_path)

    assert code != 0
    assert not (tmp_path / COVERAGE_DIR / "coverage.json").exists()
