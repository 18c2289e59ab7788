"""The pipeline's own environment (`uv run --package bruno-pipelines`) stays small: no hatch
and no httpx2 (hatch pulls httpx2, which the issue reports breaks dagger-io's connection)."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = tomllib.loads((REPO / "uv.lock").read_text())
PACKAGES = {p["name"]: p for p in LOCK["package"]}


def _closure(name: str) -> set[str]:
    """Every package installed with ``name``, following extras (gql[httpx])."""
    seen: set[tuple[str, str]] = set()
    todo = [(name, "")]
    while todo:
        current, extra = todo.pop()
        if (current, extra) in seen:
            continue
        seen.add((current, extra))
        package = PACKAGES[current]
        deps = package.get("optional-dependencies", {}).get(extra, []) if extra else []
        for dep in [*package.get("dependencies", []), *deps]:
            todo += [(dep["name"], "")] + [(dep["name"], e) for e in dep.get("extra", [])]
    return {name for name, _ in seen}


def test_pipeline_environment_has_dagger_and_httpx_but_not_hatch_or_httpx2() -> None:
    closure = _closure("bruno-pipelines")

    assert {"dagger-io", "httpx", "anyio", "pyyaml"} <= closure
    assert "hatch" not in closure
    assert "httpx2" not in closure
