"""Branch coverage per workspace package, against a floor per package.

    uv run python -m bruno_pipelines.coverage         # what `make coverage` runs

Runs the whole pytest suite under coverage (configured in the root pyproject.toml: branch
coverage of the workspace's packages, the services' own processes included), writes
``build/coverage/`` (``coverage.xml``, ``coverage.json`` and ``summary.md``, the table the
GitHub Actions job summary shows), prints the table, and fails when a package's figure is below
its floor in ``[tool.bruno.coverage-floors]`` of the root pyproject.toml. The pipeline's test
stage runs exactly this.

A floor is a package's figure on the day it was set, less a small margin, so code added
meanwhile does not fail it; raise it as coverage rises. A package that has measured code and no
floor fails too, so a new package cannot slip in unmeasured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COVERAGE_DIR",
    "FLOORS_TABLE",
    "PackageCoverage",
    "by_package",
    "floors",
    "main",
    "markdown",
    "problems",
    "pytest_command",
    "workspace_members",
]

COVERAGE_DIR = "build/coverage"
FLOORS_TABLE = ("tool", "bruno", "coverage-floors")


@dataclass(frozen=True, slots=True)
class PackageCoverage:
    """One package's totals, counted as coverage.py counts them."""

    package: str
    statements: int = 0
    covered_statements: int = 0
    branches: int = 0
    covered_branches: int = 0

    @property
    def percent(self) -> float:
        """Covered statements and branches over all of them, as coverage.py's total."""
        total = self.statements + self.branches
        covered = self.covered_statements + self.covered_branches
        return 100.0 * covered / total if total else 100.0


def pytest_command(python: str = sys.executable) -> list[str]:
    """The whole suite with coverage; reports as XML (Cobertura) and JSON, none on the terminal."""
    return [
        python,
        "-m",
        "pytest",
        "-q",
        "--cov",
        "--cov-report=",
        f"--cov-report=xml:{COVERAGE_DIR}/coverage.xml",
        f"--cov-report=json:{COVERAGE_DIR}/coverage.json",
    ]


def workspace_members(repo: Path) -> dict[str, str]:
    """Member directory (relative, POSIX) → package name, from the root pyproject.toml."""
    root = tomllib.loads((repo / "pyproject.toml").read_text())
    found: dict[str, str] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for manifest in sorted(repo.glob(f"{pattern}/pyproject.toml")):
            name = tomllib.loads(manifest.read_text())["project"]["name"]
            found[manifest.parent.relative_to(repo).as_posix()] = name
    return found


def by_package(
    report: Mapping[str, object], members: Mapping[str, str]
) -> dict[str, PackageCoverage]:
    """The totals of coverage.py's JSON report per package; files outside every package (none
    are measured, see ``source_pkgs``) are an error rather than silently dropped."""
    files = report.get("files")
    if not isinstance(files, Mapping):
        msg = "not a coverage.py JSON report: no `files`"
        raise ValueError(msg)
    totals: dict[str, PackageCoverage] = {}
    for path, data in files.items():
        package = _owner(str(path), members)
        summary = data["summary"]
        before = totals.get(package, PackageCoverage(package))
        totals[package] = PackageCoverage(
            package,
            before.statements + int(summary["num_statements"]),
            before.covered_statements + int(summary["covered_lines"]),
            before.branches + int(summary.get("num_branches", 0)),
            before.covered_branches + int(summary.get("covered_branches", 0)),
        )
    return dict(sorted(totals.items()))


def _owner(path: str, members: Mapping[str, str]) -> str:
    posix = path.replace("\\", "/")
    for directory, package in members.items():
        if posix.startswith(directory + "/"):
            return package
    msg = f"{path} belongs to no workspace package"
    raise ValueError(msg)


def floors(repo: Path) -> dict[str, float]:
    """``[tool.bruno.coverage-floors]`` of the root pyproject.toml: package → percent."""
    table: object = tomllib.loads((repo / "pyproject.toml").read_text())
    for key in FLOORS_TABLE:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        msg = f"[{'.'.join(FLOORS_TABLE)}] must be a table of package = percent"
        raise TypeError(msg)
    return {str(name): float(value) for name, value in table.items()}


def problems(coverage: Mapping[str, PackageCoverage], floor: Mapping[str, float]) -> list[str]:
    """Why the figures fail: a package under its floor, measured without one, or a floor for a
    package that has no measured code (a rename would otherwise drop its floor unnoticed)."""
    found = [
        f"{name}: {measured.percent:.1f}% is below its floor of {floor[name]:g}%"
        for name, measured in coverage.items()
        if name in floor and measured.percent < floor[name]
    ]
    found += [
        f"{name}: measured ({measured.percent:.1f}%) but has no floor in [{'.'.join(FLOORS_TABLE)}]"
        for name, measured in coverage.items()
        if name not in floor
    ]
    found += [f"{name}: has a floor but no measured code" for name in floor if name not in coverage]
    return found


def markdown(coverage: Mapping[str, PackageCoverage], floor: Mapping[str, float]) -> str:
    """The table for the job summary: package, branch coverage, floor, verdict."""
    lines = [
        "### Branch coverage per package",
        "",
        "| package | coverage | floor | statements | branches | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, measured in coverage.items():
        limit = floor.get(name)
        ok = limit is not None and measured.percent >= limit
        lines.append(
            f"| {name} | {measured.percent:.1f}% | "
            f"{'-' if limit is None else f'{limit:g}%'} | "
            f"{measured.covered_statements}/{measured.statements} | "
            f"{measured.covered_branches}/{measured.branches} | {'✅' if ok else '❌'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, repo: Path | None = None) -> int:
    """Run the suite under coverage (or, with ``--report``, read a JSON report) and judge it:
    pytest's own code when tests failed, 1 when a floor is crossed, else 0."""
    parser = argparse.ArgumentParser(prog="coverage", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report", type=Path, help="judge this coverage.py JSON report; run no tests"
    )
    args = parser.parse_args(argv)
    root = (repo or Path.cwd()).resolve()
    out = root / COVERAGE_DIR
    tests_code = 0
    report_path: Path = args.report or out / "coverage.json"
    if args.report is None:
        out.mkdir(parents=True, exist_ok=True)
        # A report left by an earlier run must not be judged as this one's.
        for stale in ("coverage.json", "coverage.xml", "summary.md"):
            (out / stale).unlink(missing_ok=True)
        tests_code = subprocess.run(pytest_command(), cwd=root, check=False).returncode  # noqa: S603
        if not report_path.exists():
            print(f"coverage: pytest exited {tests_code} and wrote no report", file=sys.stderr)
            return tests_code or 1
    coverage = by_package(json.loads(report_path.read_text()), workspace_members(root))
    floor = floors(root)
    table = markdown(coverage, floor)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table)
    print(table)
    if tests_code:
        print(f"coverage: the tests failed (pytest exited {tests_code})", file=sys.stderr)
        return tests_code
    found = problems(coverage, floor)
    for problem in found:
        print(f"coverage: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
