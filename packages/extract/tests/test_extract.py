"""Extraction of text files (bruno_extract): HTML as visible text with Markdown headings, titles,
kinds by suffix or media type."""

from __future__ import annotations

import pytest

from bruno_extract import Segment, UnreadableDocument, extract, html_document, kind_of


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


def test_a_text_file_is_one_segment_without_a_page() -> None:
    document = extract("runbook.md", b"# Disk full\n\nDelete snapshots.\n")

    assert document.title == "Disk full"
    assert document.segments == (Segment(text=document.text, start=0),)


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/pdf", ".pdf"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"),
    ],
)
def test_a_pdf_or_docx_without_a_suffix_is_known_by_its_media_type(
    content_type: str, kind: str
) -> None:
    assert kind_of("manual", content_type) == kind


def test_a_file_that_is_not_utf8_is_refused_with_its_reason() -> None:
    with pytest.raises(UnreadableDocument) as refused:
        extract("notes.txt", b"\xff\xfe\x00bad")

    assert refused.value.reason == "not-utf8"
    assert refused.value.detail == "'notes.txt' is not UTF-8 text"
