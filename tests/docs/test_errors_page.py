"""docs/errors.md explains every problem type the code can emit, where its ``type`` URL points."""

from __future__ import annotations

import re
from pathlib import Path

import bruno_edge.app
import bruno_embedding
import bruno_generation.server
import bruno_retrieval.server
from bruno_core.errors import BrunoError, NotFound

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "errors.md"
# Every service's errors are defined by the time these are imported.
SERVICES = (bruno_edge.app, bruno_embedding, bruno_generation.server, bruno_retrieval.server)


def every_error() -> set[type[BrunoError]]:
    found: set[type[BrunoError]] = set()
    todo = [BrunoError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return found


def sections() -> dict[str, str]:
    """GitHub's anchor of each ``##`` heading -> the text under it."""
    parts = re.split(r"^## (.+)$", PAGE.read_text(), flags=re.MULTILINE)
    anchors = (
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in parts[1::2]
    )
    return dict(zip(anchors, parts[2::2], strict=True))


def test_the_type_urls_point_at_this_page() -> None:
    url = NotFound("x").problem()["type"]

    assert url.endswith("/blob/main/docs/errors.md#not-found")


def test_every_problem_type_the_code_can_emit_has_a_section_stating_its_status() -> None:
    documented = sections()
    for cls in every_error():
        assert cls.slug in documented, f"{cls.__qualname__}: no section #{cls.slug}"
        assert str(cls.http_status) in documented[cls.slug], cls.__qualname__
        if cls.__module__ == "bruno_core.errors":
            assert f"`{cls.grpc_code.name}`" in documented[cls.slug], cls.__qualname__


def test_every_section_is_a_type_the_code_emits() -> None:
    assert set(sections()) == {cls.slug for cls in every_error()}
