"""PDF extraction (bruno_extract/_pdf.py) on real PDFs written in the test: pages, structure,
refusals."""

from __future__ import annotations

import re

import pytest

from bruno_core import LimitExceeded
from bruno_extract import Document, ExtractionLimits, UnreadableDocument, extract
from bruno_testing.documents import PdfPage, pdf_bytes

MANUAL = [
    PdfPage(
        heading="Installation",
        paragraphs=["Place the UPS on a flat surface, away from radiators and direct sun."],
        bullets=["Connect the battery lead.", "Hold the power button for three seconds."],
    ),
    PdfPage(
        heading="Specifications",
        subheading="Runtime",
        paragraphs=["At half load the runtime is fourteen minutes."],
        table=[["Model", "Output", "Runtime"], ["UPS 1500", "900 W", "14 min"]],
    ),
    PdfPage(heading="Battery care", paragraphs=["Replace the battery every three years."]),
]


@pytest.fixture(scope="module")
def manual() -> Document:
    return extract("manual.pdf", pdf_bytes(MANUAL, title="UPS 1500 manual"))


def test_each_page_is_a_segment_that_knows_its_page_and_its_place_in_the_text(
    manual: Document,
) -> None:
    assert [segment.page for segment in manual.segments] == [1, 2, 3]
    for segment in manual.segments:
        assert manual.text[segment.start : segment.end] == segment.text
    second = manual.segments[1]
    assert "runtime is fourteen minutes" in second.text
    assert "fourteen" not in manual.segments[0].text + manual.segments[2].text
    assert manual.segment_at(manual.text.index("fourteen minutes")) == second


def test_headings_set_larger_than_the_text_become_markdown_headings_and_sections(
    manual: Document,
) -> None:
    assert manual.segments[1].text.startswith("# Specifications\n\n## Runtime\n\n")
    assert [segment.section for segment in manual.segments] == [
        "Installation",
        "Specifications",
        "Battery care",
    ]


def test_a_table_keeps_each_row_on_one_markdown_line(manual: Document) -> None:
    assert (
        "| Model | Output | Runtime |\n| --- | --- | --- |\n| UPS 1500 | 900 W | 14 min |"
        in manual.segments[1].text
    )


def test_bullets_become_a_markdown_list_and_paragraphs_one_line_each(manual: Document) -> None:
    assert manual.segments[0].text == (
        "# Installation\n\n"
        "Place the UPS on a flat surface, away from radiators and direct sun.\n\n"
        "- Connect the battery lead.\n"
        "- Hold the power button for three seconds."
    )


def test_the_title_is_the_documents_own_else_its_first_heading_else_the_file_name() -> None:
    page = PdfPage(heading="Wiring", paragraphs=["Use shielded cable."])
    untitled = extract("wiring.pdf", pdf_bytes([page]))
    bare = extract("notes.pdf", pdf_bytes([PdfPage(paragraphs=["Just text."])]))

    assert untitled.title == "Wiring"
    assert bare.title == "notes.pdf"
    assert extract("m.pdf", pdf_bytes(MANUAL, title="UPS 1500 manual")).title == "UPS 1500 manual"


def test_two_columns_are_read_one_after_the_other_not_across() -> None:
    # Long enough to fill the left column and go on at the top of the right one.
    first = " ".join(f"Router fact {n}." for n in range(200))
    second = " ".join(f"Switch fact {n}." for n in range(100))
    raw = pdf_bytes([PdfPage(heading="Network", paragraphs=[first, second], columns=2)])

    document = extract("network.pdf", raw)

    facts = re.findall(r"(Router|Switch) fact (\d+)", document.text)
    assert facts == [("Router", str(n)) for n in range(200)] + [
        ("Switch", str(n)) for n in range(100)
    ]
    assert [segment.page for segment in document.segments] == [1]


def test_a_scanned_page_among_text_pages_is_left_out_and_later_pages_keep_their_numbers() -> None:
    pages = [MANUAL[0], PdfPage(scan=True, paragraphs=["Receipt: 42 EUR"]), MANUAL[2]]

    document = extract("mixed.pdf", pdf_bytes(pages))

    assert [segment.page for segment in document.segments] == [1, 3]


def test_a_pdf_without_a_text_layer_is_refused_as_a_scan() -> None:
    raw = pdf_bytes([PdfPage(scan=True, paragraphs=["Receipt: 42 EUR"])])

    with pytest.raises(UnreadableDocument) as refused:
        extract("receipt.pdf", raw)

    assert refused.value.reason == "no-text-layer"
    assert "'receipt.pdf' has no text layer" in refused.value.detail
    assert "OCR" in refused.value.detail


def test_a_password_protected_pdf_is_refused_as_encrypted() -> None:
    raw = pdf_bytes(MANUAL, password="hunter2")

    with pytest.raises(UnreadableDocument) as refused:
        extract("locked.pdf", raw)

    assert refused.value.reason == "encrypted"
    assert "encrypted" in refused.value.detail


def test_a_pdf_with_only_an_owner_password_is_read() -> None:
    # Permissions without a user password: every reader opens it, and so do we.
    import io

    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer, encrypt=StandardEncryption("", ownerPassword="owner", canCopy=0))
    canvas.drawString(72, 720, "Readable despite restrictions.")
    canvas.showPage()
    canvas.save()

    assert extract("restricted.pdf", buffer.getvalue()).text == "Readable despite restrictions."


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_a_truncated_pdf_is_refused_as_truncated_even_when_pdfium_could_patch_it(
    keep: float,
) -> None:
    raw = pdf_bytes(MANUAL)

    with pytest.raises(UnreadableDocument) as refused:
        extract("cut.pdf", raw[: int(len(raw) * keep)])

    assert refused.value.reason == "truncated"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "is damaged"),
        (b"PK\x03\x04 a zip named .pdf %%EOF", "is not a PDF file"),
    ],
)
def test_a_damaged_pdf_or_another_kind_of_file_is_refused_as_damaged(
    raw: bytes, detail: str
) -> None:
    with pytest.raises(UnreadableDocument) as refused:
        extract("broken.pdf", raw)

    assert refused.value.reason == "damaged"
    assert detail in refused.value.detail


def test_a_pdf_with_more_pages_than_the_limit_is_refused_before_its_text_is_read() -> None:
    with pytest.raises(LimitExceeded, match="has 3 pages, more than the limit of 2"):
        extract("manual.pdf", pdf_bytes(MANUAL), limits=ExtractionLimits(max_pages=2))


def test_reading_stops_once_the_text_outgrows_the_document_limit() -> None:
    with pytest.raises(LimitExceeded, match="more text than the document limit of 100 bytes"):
        extract("manual.pdf", pdf_bytes(MANUAL), limits=ExtractionLimits(max_text_bytes=100))


def test_reading_stops_when_its_time_is_up() -> None:
    with pytest.raises(LimitExceeded, match=r"took longer than 0 s to read \(stopped at page 1"):
        extract("manual.pdf", pdf_bytes(MANUAL), limits=ExtractionLimits(max_seconds=0))
