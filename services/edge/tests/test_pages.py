"""Links to the page of a passage: only where the source can be opened at a page."""

from __future__ import annotations

import pytest

from bruno_edge.pages import page_label, page_link


@pytest.mark.parametrize(
    ("source", "link"),
    [
        ("ups-manual.pdf", "ups-manual.pdf#page=12"),
        ("/srv/docs/Router Manual.pdf", "/srv/docs/Router Manual.pdf#page=12"),
        ("https://example.org/ups.pdf", "https://example.org/ups.pdf#page=12"),
        ("file:///srv/docs/ups.pdf", "file:///srv/docs/ups.pdf#page=12"),
    ],
)
def test_a_url_or_path_links_to_the_page(source: str, link: str) -> None:
    assert page_link(source, 12) == link


@pytest.mark.parametrize(
    ("source", "page"),
    [
        ("ups-manual.pdf", None),  # no page: nothing to open
        ("", 3),  # no source
        ("https://example.org/ups.pdf#chapter-2", 3),  # a fragment already
        ("mailto:ops@example.org", 3),  # a scheme no viewer opens at a page
    ],
)
def test_no_link_where_the_page_cannot_be_opened(source: str, page: int | None) -> None:
    assert page_link(source, page) is None


def test_a_label_names_the_page_when_there_is_one() -> None:
    assert page_label("manual.pdf", 12) == "manual.pdf, p. 12"
    assert page_label("manual.md", None) == "manual.md"
