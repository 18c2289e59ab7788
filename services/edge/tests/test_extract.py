"""HTML extraction (extract.py): visible text, headings as Markdown, titles."""

from __future__ import annotations

import pytest

from bruno_edge.extract import html_document


def test_a_head_left_open_still_ends_where_the_body_begins() -> None:
    # Leaving out </head> (and <body>) is valid HTML: the page's text must not vanish.
    page = "<html><head><title>Disks</title><body><h1>Disk full</h1><p>Delete snapshots."

    document = html_document(page, fallback_title="page.html")

    assert document.title == "Disks"
    assert document.text == "# Disk full\n\nDelete snapshots."


def test_a_heading_keeps_the_spaces_around_inline_elements_and_names_the_page() -> None:
    page = "<h1>Restore <em>Velero</em>\n backups</h1><p>Run it.</p>"

    document = html_document(page, fallback_title="page.html")

    assert document.title == "Restore Velero backups"
    assert document.text == "# Restore Velero backups\n\nRun it."


def test_scripts_styles_and_the_head_stay_out_of_the_text() -> None:
    page = (
        '<html><head><meta charset="utf-8"><script>var h = "<h1>no</h1>";</script>'
        "<style>h1 { color: red }</style></head>"
        "<body><p>One &amp; two</p><h2>Three <b>words</b></h2>four<noscript>no</noscript></body>"
    )

    document = html_document(page, fallback_title="page.html")

    assert document.text == "One & two\n\n## Three words\n\nfour"
    assert document.title == "page.html"


@pytest.mark.parametrize(
    ("junk", "text"),
    [("<a" * 100_000, "after"), ("</" * 100_000, "after"), ("<!--" + "-" * 100_000, "")],
)
def test_malformed_markup_is_read_once_and_what_follows_it_kept(junk: str, text: str) -> None:
    # Python's html.parser rescans such runs quadratically (tens of seconds for 200 KB);
    # libxml2 reads them once. Text after stray tag starts survives; an unclosed comment, as
    # in a browser, hides the rest.
    document = html_document(junk + "<p>after</p>", fallback_title="page.html")

    assert document.text == text
