"""DOCX extraction (bruno_extract/_docx.py) on real Word files written in the test."""

from __future__ import annotations

import io
import zipfile

import pytest

from bruno_core import LimitExceeded
from bruno_extract import ExtractionLimits, UnreadableDocument, extract
from bruno_testing.documents import DocxSection, docx_bytes

RUNBOOK = [
    DocxSection("Router runbook", paragraphs=["Keep the firmware current."]),
    DocxSection(
        "Setup", level=2, bullets=["Plug the WAN cable into port 1.", "Open the admin page."]
    ),
    DocxSection("Ports", level=3, table=[["Port", "Use"], ["22", "SSH"], ["443", "HTTPS"]]),
    DocxSection("Backups", level=2, paragraphs=["Export the configuration every Friday."]),
]


def test_each_section_is_a_segment_that_knows_its_heading_path() -> None:
    document = extract("runbook.docx", docx_bytes(RUNBOOK))

    assert [segment.section for segment in document.segments] == [
        "Router runbook",
        "Router runbook > Setup",
        "Router runbook > Setup > Ports",
        "Router runbook > Backups",
    ]
    assert all(segment.page is None for segment in document.segments)
    for segment in document.segments:
        assert document.text[segment.start : segment.end] == segment.text


def test_headings_lists_and_tables_become_markdown_in_body_order() -> None:
    document = extract("runbook.docx", docx_bytes(RUNBOOK))

    assert document.text == (
        "# Router runbook\n\nKeep the firmware current.\n\n"
        "## Setup\n\n- Plug the WAN cable into port 1.\n- Open the admin page.\n\n"
        "### Ports\n\n| Port | Use |\n| --- | --- |\n| 22 | SSH |\n| 443 | HTTPS |\n\n"
        "## Backups\n\nExport the configuration every Friday."
    )


def test_the_title_is_the_documents_own_else_its_first_top_heading() -> None:
    assert extract("a.docx", docx_bytes(RUNBOOK, title="Edge router")).title == "Edge router"
    assert extract("a.docx", docx_bytes(RUNBOOK)).title == "Router runbook"


def test_a_password_protected_or_old_word_file_is_refused_as_encrypted() -> None:
    # Office encrypts a .docx into an OLE compound file, the container .doc files use too.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

    with pytest.raises(UnreadableDocument) as refused:
        extract("locked.docx", ole)

    assert refused.value.reason == "encrypted"


def test_a_truncated_docx_is_refused_as_damaged_or_truncated() -> None:
    raw = docx_bytes(RUNBOOK)

    with pytest.raises(UnreadableDocument) as refused:
        extract("cut.docx", raw[: len(raw) - 100])

    assert refused.value.reason == "damaged"
    assert "damaged or truncated" in refused.value.detail


def test_a_zip_that_is_no_word_document_is_refused_as_damaged() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")

    with pytest.raises(UnreadableDocument) as refused:
        extract("fake.docx", buffer.getvalue())

    assert refused.value.reason == "damaged"
    assert refused.value.explanation == "is damaged: it is not a readable Word document"


def test_a_docx_that_unpacks_past_the_limit_is_refused_before_it_is_unpacked() -> None:
    limits = ExtractionLimits(max_unpacked_bytes=10_000)

    with pytest.raises(LimitExceeded, match=r"unpacks to \d+ bytes, more than the limit of 10000"):
        extract("big.docx", docx_bytes(RUNBOOK), limits=limits)


def test_reading_stops_once_the_text_outgrows_the_document_limit() -> None:
    with pytest.raises(LimitExceeded, match="more text than the document limit of 50 bytes"):
        extract("a.docx", docx_bytes(RUNBOOK), limits=ExtractionLimits(max_text_bytes=50))


def test_a_docx_without_text_is_refused_as_empty() -> None:
    raw = docx_bytes([DocxSection(" ", paragraphs=[" "])])

    with pytest.raises(UnreadableDocument) as refused:
        extract("blank.docx", raw)

    assert refused.value.reason == "empty"
