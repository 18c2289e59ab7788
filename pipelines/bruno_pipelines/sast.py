"""Static analysis with Semgrep: the committed ruleset gates, the registry's packs advise.

    uv run --package bruno-pipelines python -m bruno_pipelines.sast     # what `make sast` runs

The gate is the ruleset in ``sast/rules`` (each rule with its own test cases beside it), run
offline and the same way on a laptop, in ``.ci/run`` and in the pipeline's ``sast`` stage:
findings of :data:`FAILING_SEVERITIES` fail, and every finding is written as SARIF for GitHub
code scanning. Where the network allows (GitHub Actions, ``ci.py --sast-registry-packs``) the
registry's :data:`REGISTRY_PACKS` run as well, into a second SARIF file; they inform code
scanning but never fail the stage, because nothing offline could show in advance what they find.

Semgrep is pinned by ``sast/uv.lock``, a uv project of its own: Semgrep pins OpenTelemetry
versions the services' lock cannot share. A finding that is not a problem is suppressed where it
is, with the reason on the line above::

    # Only an integer this loop computes reaches the filter text.
    # nosemgrep: bruno-lancedb-filter-from-interpolated-text
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import dagger

from .checks import WORKDIR, python_toolchain

__all__ = [
    "FAILING_SEVERITIES",
    "REGISTRY_PACKS",
    "REGISTRY_SARIF",
    "RULES_DIR",
    "SARIF",
    "SARIF_DIR",
    "SEMGREP_PROJECT",
    "gate_command",
    "main",
    "registry_command",
    "rule_tests_command",
    "sast",
]

SEMGREP_PROJECT = "sast"
RULES_DIR = "sast/rules"
# Semgrep's severities are INFO, WARNING and ERROR; the gate fails at WARNING and above.
FAILING_SEVERITIES: tuple[str, ...] = ("WARNING", "ERROR")
REGISTRY_PACKS: tuple[str, ...] = ("p/python", "p/security-audit")
SARIF_DIR = "build/sast"
SARIF = f"{SARIF_DIR}/semgrep.sarif"
REGISTRY_SARIF = f"{SARIF_DIR}/semgrep-registry.sarif"
# Offline and private: no metrics, no version check (either would wait on the network).
SEMGREP_ENV = {"SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
_OFFLINE = ("--metrics=off", "--disable-version-check")


def _semgrep(*args: str) -> list[str]:
    return ["uv", "run", "--frozen", "--project", SEMGREP_PROJECT, "semgrep", *args]


def rule_tests_command() -> list[str]:
    """Every rule against its test cases: ``# ruleid:`` lines must match, ``# ok:`` must not."""
    return _semgrep("scan", "--test", *_OFFLINE, RULES_DIR)


def gate_command(sarif: str = SARIF) -> list[str]:
    """The committed ruleset over the repository (.semgrepignore says what is left out);
    exits 1 on a finding of a failing severity."""
    severities = [f"--severity={severity}" for severity in FAILING_SEVERITIES]
    return _semgrep(
        "scan",
        "--config",
        RULES_DIR,
        *_OFFLINE,
        "--no-rewrite-rule-ids",
        "--error",
        *severities,
        f"--sarif-output={sarif}",
    )


def registry_command(sarif: str = REGISTRY_SARIF) -> list[str]:
    """The registry's packs (needs semgrep.dev); reports, never fails on a finding."""
    packs = [arg for pack in REGISTRY_PACKS for arg in ("--config", pack)]
    return _semgrep("scan", *packs, *_OFFLINE, "--quiet", f"--sarif-output={sarif}")


def sast(
    client: dagger.Client, src: dagger.Directory, *, registry_packs: bool = False
) -> dagger.Container:
    """The repository with Semgrep synced from sast/uv.lock, after the rule tests, the registry
    scan (when asked) and the gate; the gate's exit code is the last one, and the SARIF files
    are in ``/src/build/sast`` whatever it found."""
    manifests = src.filter(
        include=[f"{SEMGREP_PROJECT}/pyproject.toml", f"{SEMGREP_PROJECT}/uv.lock"]
    )
    ctr = (
        python_toolchain(client)
        .with_workdir(WORKDIR)
        .with_directory(WORKDIR, manifests)
        .with_exec(["uv", "sync", "--frozen", "--project", SEMGREP_PROJECT])
        .with_directory(WORKDIR, src)
        .with_directory(f"{WORKDIR}/{SARIF_DIR}", client.directory())
    )
    for name, value in SEMGREP_ENV.items():
        ctr = ctr.with_env_variable(name, value)
    ctr = ctr.with_exec(rule_tests_command())
    if registry_packs:
        ctr = ctr.with_exec(registry_command(), expect=dagger.ReturnType.ANY)
    return ctr.with_exec(gate_command(), expect=dagger.ReturnType.ANY)


def main(argv: Sequence[str] | None = None, *, repo: Path | None = None) -> int:
    """`make sast`: the rule tests, then the gate; 0 when both pass."""
    root = repo or Path.cwd()
    if argv:
        print(f"usage: python -m bruno_pipelines.sast (no arguments; got {' '.join(argv)})")
        return 2
    (root / SARIF_DIR).mkdir(parents=True, exist_ok=True)
    # Without VIRTUAL_ENV: uv would warn that the workspace's venv is not sast/.venv.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | SEMGREP_ENV
    for command in (rule_tests_command(), gate_command()):
        print("$ " + " ".join(command), file=sys.stderr, flush=True)
        code = subprocess.run(command, cwd=root, env=env, check=False).returncode  # noqa: S603
        if code != 0:
            return code
    print(
        f"sast: no finding at {' or '.join(FAILING_SEVERITIES)}; SARIF in {SARIF}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
