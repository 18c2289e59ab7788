import re
import tomllib
from pathlib import Path

import pytest

from bruno_pipelines import PYTHON_IMAGE, TYPED_TREES, UV_VERSION, checks, source
from bruno_pipelines.checks import UV_CACHE_DIR, UV_CACHE_VOLUME, WORKDIR, lint
from bruno_pipelines.coverage import COVERAGE_DIR
from bruno_pipelines.offline import Call, Query, capture, offline_client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lint_query() -> Query:
    client = offline_client()
    return capture(lint(client, source(client, REPO)))


@pytest.fixture
def test_query() -> Query:
    client = offline_client()
    return capture(checks.test(client, source(client, REPO)))


def test_lint_runs_ruff_rules_and_formatting_over_the_repository(lint_query: Query) -> None:
    execs = lint_query.execs()

    assert ["uv", "run", "ruff", "check", "."] in execs
    assert ["uv", "run", "ruff", "format", "--check", "."] in execs


def test_lint_runs_mypy_strict_on_every_typed_tree(lint_query: Query) -> None:
    mypy_runs = [e[2:] for e in lint_query.execs() if e[:3] == ["uv", "run", "mypy"]]

    assert mypy_runs == [["mypy", "--strict", tree] for tree in TYPED_TREES]


def test_typed_trees_cover_every_workspace_member() -> None:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = [
        manifest.parent.relative_to(REPO).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for manifest in REPO.glob(f"{pattern}/pyproject.toml")
    ]

    assert members
    for member in members:
        assert any(tree == member or tree.startswith(member + "/") for tree in TYPED_TREES), member
    for tree in TYPED_TREES:
        assert (REPO / tree).is_dir(), tree


def test_the_pipeline_type_checks_the_same_trees_as_make_lint() -> None:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^TYPED_DIRS := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert match is not None
    assert set(match.group(1).replace("\\\n", " ").split()) == set(TYPED_TREES)


def test_tests_run_under_coverage_with_the_uv_cache_volume_mounted(test_query: Query) -> None:
    (mount,) = test_query.find("withMountedCache")
    cache = mount.args["cache"]

    assert mount.args["path"] == UV_CACHE_DIR
    assert isinstance(cache, Query)
    assert cache.find("cacheVolume")[0].args["key"] == UV_CACHE_VOLUME
    # What `make coverage` runs: the suite, the reports, the floors.
    assert test_query.execs()[-1] == ["uv", "run", "python", "-m", "bruno_pipelines.coverage"]
    assert "$(RUN) python -m bruno_pipelines.coverage" in (REPO / "Makefile").read_text()


def test_the_test_stage_keeps_its_reports_when_it_fails(test_query: Query) -> None:
    # The verdict is read from the exit code after the reports are exported (cli._test),
    # so the run may end non-zero without failing the container before the export.
    (run,) = test_query.find("withExec")[-1:]
    (report_dir,) = [c for c in test_query.find("withDirectory") if c.args["path"] != WORKDIR]

    assert run.args["expect"] == "ANY"
    assert report_dir.args["path"] == f"{WORKDIR}/{COVERAGE_DIR}"
    # Mounted before anything installs, so every sync reuses the cache.
    fields = test_query.fields()
    first_sync = next(i for i, call in enumerate(test_query.calls) if _is_exec(call, "uv", "sync"))
    assert fields.index("withMountedCache") < first_sync


def test_checks_install_exactly_what_uv_lock_says(test_query: Query, lint_query: Query) -> None:
    for query in (test_query, lint_query):
        syncs = [e for e in query.execs() if e[:2] == ["uv", "sync"]]
        assert syncs
        assert all("--frozen" in s and "--all-packages" in s for s in syncs)
        env = {c.args["name"]: c.args["value"] for c in query.find("withEnvVariable")}
        assert env["UV_FROZEN"] == "1"  # `uv run` must not re-lock either
        assert env["UV_PYTHON_DOWNLOADS"] == "never"


def test_dependencies_are_installed_before_sources_are_copied(test_query: Query) -> None:
    calls = test_query.calls
    copies = [
        i for i, c in enumerate(calls) if c.field == "withDirectory" and c.args["path"] == WORKDIR
    ]
    deps_sync = next(i for i, c in enumerate(calls) if _is_exec(c, "--no-install-workspace"))

    manifests, full = (calls[i].args["source"] for i in copies)
    assert isinstance(manifests, Query)
    assert isinstance(full, Query)
    (filtered,) = manifests.find("filter")
    include = filtered.args["include"]
    assert isinstance(include, list)
    assert "uv.lock" in include
    assert "**/pyproject.toml" in include
    assert not full.find("filter")
    assert copies[0] < deps_sync < copies[1]


def test_checks_run_on_the_python_image_that_ships_with_pinned_uv(test_query: Query) -> None:
    assert test_query.find("from")[0].args["address"] == PYTHON_IMAGE
    assert ["pip", "install", "--no-cache-dir", f"uv=={UV_VERSION}"] in test_query.execs()


def _is_exec(call: Call, *words: str) -> bool:
    if call.field != "withExec":
        return False
    args = call.args["args"]
    assert isinstance(args, list)
    return all(word in args for word in words)
