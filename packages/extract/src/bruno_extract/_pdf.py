"""A PDF's lines page by page through PDFium (pypdfium2), then Markdown (``_layout.py``).

    document = pdf_document(raw, filename="manual.pdf", limits=ExtractionLimits())
    [(segment.page, segment.section) for segment in document.segments]

PDFium gives the text of a page in the order the page draws it, which keeps the columns of a
multi-column page apart, one line at a time; this module adds what the layout pass needs from
each line: the font size of its first word, its baseline, where it starts and ends, and its
cells (cut at gaps wider than a font size). docs/benchmarks.md says why PDFium over pypdf and
pdfminer.six, and how fast this is. A PDF without a text layer (a scan) is refused as such:
OCR is out of scope (docs/architecture.md).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from bruno_core import LimitExceeded
from bruno_extract._document import Document, ExtractionLimits, UnreadableDocument
from bruno_extract._layout import Line, markdown_document

# PDFium keeps global state and is not thread-safe: one document at a time in this process.
_PDFIUM_LOCK = threading.Lock()
# A gap between two words wider than this many font sizes separates table cells.
_CELL_GAP_EMS = 1.0
_FIRST_WORD = re.compile(r"\w")
# Producers leave these as titles when the author set none.
_PLACEHOLDER_TITLES = frozenset({"", "untitled", "(anonymous)", "(unspecified)"})
# Acrobat accepts an end-of-file marker anywhere in the last kilobyte.
_EOF_WINDOW = 1024


def pdf_document(raw: bytes, *, filename: str, limits: ExtractionLimits) -> Document:
    """The text of a PDF as Markdown, one segment per page with text.

    Raises UnreadableDocument (not a PDF, damaged, truncated, encrypted, no text layer) or
    LimitExceeded (too many pages, text past ``limits.max_text_bytes``, slower than
    ``limits.max_seconds``).
    """
    if b"%PDF-" not in raw[:_EOF_WINDOW]:
        raise UnreadableDocument(filename, "damaged", "is not a PDF file")
    # PDFium rebuilds what it can of a cut-off file; a truncated upload must fail whole.
    if b"%%EOF" not in raw[-_EOF_WINDOW:]:
        raise UnreadableDocument(
            filename, "truncated", "is truncated: it has no end-of-file marker"
        )
    with _PDFIUM_LOCK:
        title, lines = _read_lines(raw, filename, limits)
    if not any(line.text.strip() for line in lines):
        raise UnreadableDocument(
            filename,
            "no-text-layer",
            "has no text layer (a scanned document?): OCR is not supported, "
            "export it with its text or run it through OCR first",
        )
    return markdown_document(lines, title, fallback_title=filename)


def _read_lines(raw: bytes, filename: str, limits: ExtractionLimits) -> tuple[str, list[Line]]:
    deadline = time.monotonic() + limits.max_seconds
    try:
        pdf = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as error:
        if error.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise UnreadableDocument(
                filename, "encrypted", "is encrypted: remove its password and upload it again"
            ) from error
        raise UnreadableDocument(
            filename, "damaged", "is damaged: PDFium cannot read it"
        ) from error
    try:
        pages = len(pdf)
        if pages > limits.max_pages:
            raise LimitExceeded(
                f"{filename[:200]!r} has {pages} pages, more than the limit of {limits.max_pages}"
            )
        title = str(pdf.get_metadata_value("Title") or "").strip()
        lines: list[Line] = []
        text_bytes = 0
        for number in range(1, pages + 1):
            if time.monotonic() > deadline:
                raise LimitExceeded(
                    f"{filename[:200]!r} took longer than {limits.max_seconds:g} s to read "
                    f"(stopped at page {number} of {pages})"
                )
            page = pdf[number - 1]
            try:
                textpage = page.get_textpage()
                try:
                    page_lines = list(_page_lines(textpage, number))
                finally:
                    textpage.close()
            finally:
                page.close()
            text_bytes += sum(len(line.text.encode("utf-8")) + 1 for line in page_lines)
            if text_bytes > limits.max_text_bytes:
                raise LimitExceeded(
                    f"{filename[:200]!r} holds more text than the document limit of "
                    f"{limits.max_text_bytes} bytes"
                )
            lines.extend(page_lines)
    finally:
        pdf.close()
    # Word's PDF export names the source file ("Microsoft Word - manual.docx"): no title.
    placeholder = title.lower() in _PLACEHOLDER_TITLES or title.startswith("Microsoft Word - ")
    return ("" if placeholder else title), lines


def _page_lines(textpage: pdfium.PdfTextPage, page: int) -> Iterator[Line]:
    """The non-empty lines of a page with their font size, baseline and cells."""
    text = textpage.get_text_range()
    # Text and character indices line up unless a character lies outside the BMP (PDFium
    # counts UTF-16 units); then the lines come without geometry.
    aligned = len(text) == textpage.count_chars()
    offset = 0
    for raw_line in text.split("\r\n"):
        start, offset = offset, offset + len(raw_line) + 2
        stripped = raw_line.strip()
        if not stripped:
            continue
        if not aligned:
            yield Line(page, [" ".join(stripped.split())], size=0.0, baseline=0.0)
            continue
        # The size of its first word: a bullet is often set larger than the item's text.
        word = _FIRST_WORD.search(raw_line)
        first = start + (word.start() if word else len(raw_line) - len(raw_line.lstrip()))
        size = float(pdfium_c.FPDFText_GetFontSize(textpage.raw, first))
        last = start + len(raw_line.rstrip()) - 1
        yield Line(
            page,
            _cells(textpage, raw_line, start, size),
            size=size,
            baseline=_baseline(textpage, first),
            left=float(textpage.get_charbox(first)[0]),
            right=float(textpage.get_charbox(last)[2]),
        )


def _baseline(textpage: pdfium.PdfTextPage, index: int) -> float:
    x, y = pdfium_c.c_double(), pdfium_c.c_double()
    pdfium_c.FPDFText_GetCharOrigin(textpage.raw, index, x, y)
    return float(y.value)


def _cells(textpage: pdfium.PdfTextPage, line: str, start: int, size: float) -> list[str]:
    """The line cut at gaps wide enough to separate table cells; one cell for running text."""
    # PDFium draws one rectangle around a run of text without gaps: a line of one rectangle
    # is one cell, whatever its spaces, and its characters need no measuring.
    if textpage.count_rects(start, len(line)) <= 1:
        return [" ".join(line.split())]
    cells: list[str] = []
    cell_start = 0
    position = 0
    min_gap = _CELL_GAP_EMS * max(size, 1.0)
    for match in re.finditer(r" +", line):
        position = match.start()
        if position == 0 or match.end() == len(line):
            continue
        before = textpage.get_charbox(start + position - 1)
        after = textpage.get_charbox(start + match.end())
        if after[0] - before[2] > min_gap:
            cells.append(line[cell_start:position])
            cell_start = match.end()
    cells.append(line[cell_start:])
    return [" ".join(cell.split()) for cell in cells if cell.strip()]
