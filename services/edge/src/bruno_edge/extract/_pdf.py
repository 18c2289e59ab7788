"""A PDF's text page by page through PDFium (pypdfium2), with its structure rebuilt as Markdown.

    document = pdf_document(raw, filename="manual.pdf", limits=ExtractionLimits())
    [(segment.page, segment.section) for segment in document.segments]

PDFium gives the text of a page in the order the page draws it, which keeps the columns of a
multi-column page apart, one line at a time. From each line's font size and baseline (and the
gaps between its words) this module rebuilds what a PDF only shows: headings (lines set larger
than the body text), paragraphs (lines closer than a paragraph gap), list items (lines opening
with a bullet) and tables (rows whose cells stand apart by wide gaps). docs/benchmarks.md says
why PDFium over pypdf and pdfminer.six, and how fast this is.

A PDF without a text layer (a scan) is refused as such: OCR is out of scope (docs/architecture.md).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from bruno_core import LimitExceeded
from bruno_edge.extract._document import Document, ExtractionLimits, UnreadableDocument

# PDFium keeps global state and is not thread-safe: one document at a time in this process.
_PDFIUM_LOCK = threading.Lock()
# A gap between two words wider than this many font sizes separates table cells.
_CELL_GAP_EMS = 1.0
# Baselines further apart than this many font sizes start a new paragraph.
_PARAGRAPH_GAP_EMS = 1.45
# Rows of a table further apart than this many font sizes are two tables.
_ROW_GAP_EMS = 3.0
# Lines starting within this many font sizes of each other are of one column.
_COLUMN_EMS = 3.0
# A line set this much larger than the body text is a heading (when it is short).
_HEADING_SCALE = 1.15
_MAX_HEADING_CHARS = 150
_MAX_HEADING_LEVELS = 4
# Bullets, dashes (en, em, hyphen) and the private-use bullets of the Symbol and Wingdings fonts.
_BULLETS = frozenset("•◦▪▫‣∙●○■□\u2013\u2014-*\uf0b7\uf0a7")
_FIRST_WORD = re.compile(r"\w")
_NUMBERED = re.compile(r"^(\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
# Producers leave these as titles when the author set none.
_PLACEHOLDER_TITLES = frozenset({"", "untitled", "(anonymous)", "(unspecified)", "microsoft word"})
_BREAK_HYPHEN = "\x02"
# Acrobat accepts an end-of-file marker anywhere in the last kilobyte.
_EOF_WINDOW = 1024


@dataclass(slots=True)
class _Line:
    """One line of a page as PDFium drew it."""

    page: int
    cells: list[str]
    size: float  # font size of its first character, in points
    baseline: float
    left: float = 0.0  # where its first character starts
    right: float = 0.0  # where its last character ends

    @property
    def text(self) -> str:
        return " ".join(self.cells)


@dataclass
class _Block:
    """A Markdown block being built: a heading, a paragraph, a list item or a table."""

    kind: str  # "heading", "paragraph", "item", "table"
    page: int
    lines: list[_Line] = field(default_factory=list)
    level: int = 0


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
    return _markdown(lines, title, fallback_title=filename)


def _read_lines(raw: bytes, filename: str, limits: ExtractionLimits) -> tuple[str, list[_Line]]:
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
        lines: list[_Line] = []
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


def _page_lines(textpage: pdfium.PdfTextPage, page: int) -> Iterator[_Line]:
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
            yield _Line(page, [" ".join(stripped.split())], size=0.0, baseline=0.0)
            continue
        # The size of its first word: a bullet is often set larger than the item's text.
        word = _FIRST_WORD.search(raw_line)
        first = start + (word.start() if word else len(raw_line) - len(raw_line.lstrip()))
        size = float(pdfium_c.FPDFText_GetFontSize(textpage.raw, first))
        last = start + len(raw_line.rstrip()) - 1
        yield _Line(
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


def _markdown(lines: list[_Line], title: str, *, fallback_title: str) -> Document:
    body_size = _body_size(lines)
    heading_levels = _heading_levels(lines, body_size)
    blocks = _blocks(lines, heading_levels)
    first_heading = next((b for b in blocks if b.kind == "heading"), None)
    if not title and first_heading is not None:
        title = _block_text(first_heading)
    parts: list[tuple[str, int | None, str]] = []
    path: list[tuple[int, str]] = []
    page_text = ""
    page, section = blocks[0].page if blocks else 1, ""
    previous_kind = ""
    for block in blocks:
        if block.page != page:
            parts.append((page_text, page, section))
            page_text, page, previous_kind = "", block.page, ""
            section = " > ".join(text for _, text in path)
        if block.kind == "heading":
            path = [(level, text) for level, text in path if level < block.level]
            path.append((block.level, _block_text(block)))
            if not page_text:
                section = " > ".join(text for _, text in path)
        # The items of one list stay on consecutive lines, as Markdown writes a list.
        separator = "\n" if previous_kind == block.kind == "item" else "\n\n"
        page_text = f"{page_text}{separator}{_render(block)}" if page_text else _render(block)
        previous_kind = block.kind
    parts.append((page_text, page, section))
    return Document.of_segments(title or fallback_title, parts)


def _body_size(lines: list[_Line]) -> float:
    """The font size most of the text is set in."""
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[_rounded(line.size)] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _heading_levels(lines: list[_Line], body_size: float) -> dict[float, int]:
    """Heading level by font size: the largest heading size is level 1."""
    if body_size <= 0:
        return {}
    sizes = {
        _rounded(line.size)
        for line in lines
        if line.size >= body_size * _HEADING_SCALE and len(line.text) <= _MAX_HEADING_CHARS
    }
    ranked = sorted(sizes, reverse=True)
    return {size: min(rank + 1, _MAX_HEADING_LEVELS) for rank, size in enumerate(ranked)}


def _blocks(lines: list[_Line], levels: dict[float, int]) -> list[_Block]:
    blocks: list[_Block] = []
    previous: _Line | None = None
    edges = _column_edges(lines)
    for line in lines:
        short = len(line.text) <= _MAX_HEADING_CHARS
        level = levels.get(_rounded(line.size), 0) if short else 0
        current = blocks[-1] if blocks else None
        wrapped = previous is not None and _wraps_onto(previous, line, edges)
        kind = _kind(line, level, wrapped)
        if (
            current is not None
            and previous is not None
            and current.page == line.page
            and abs(previous.size - line.size) < 0.5
            and _continues(current, kind, level, line, previous.baseline - line.baseline)
        ):
            current.lines.append(line)
        else:
            blocks.append(_Block(kind=kind, page=line.page, lines=[line], level=level))
        previous = line
    return [_as_table_or_text(block) for block in blocks]


def _column_key(line: _Line) -> tuple[int, int]:
    """Lines of one column of a page start at about the same place."""
    return line.page, round(line.left / (_COLUMN_EMS * max(line.size, 1.0)))


def _column_edges(lines: list[_Line]) -> dict[tuple[int, int], float]:
    """Where the lines of each column of each page end at the furthest."""
    edges: dict[tuple[int, int], float] = {}
    for line in lines:
        key = _column_key(line)
        edges[key] = max(edges.get(key, 0.0), line.right)
    return edges


def _wraps_onto(previous: _Line, line: _Line, edges: dict[tuple[int, int], float]) -> bool:
    """Whether ``line`` holds text that wrapped from ``previous``: its first word would not
    have fitted at the end of ``previous`` (an estimate: half an em a character)."""
    edge = edges.get(_column_key(previous), previous.right)
    first_word = len(line.text.split(" ", 1)[0]) + 1
    return previous.right + first_word * 0.5 * max(line.size, 1.0) >= edge


def _kind(line: _Line, level: int, wrapped: bool) -> str:
    if level:
        return "heading"
    marker = line.text[:1]
    # "13. Router" or "- and" may be a sentence wrapped onto this line; a bullet glyph not.
    may_be_wrapped = marker in "-*" or marker not in _BULLETS
    if (marker in _BULLETS or _NUMBERED.match(line.text)) and not (wrapped and may_be_wrapped):
        return "item"
    if len(line.cells) > 1:
        return "table"
    return "paragraph"


def _continues(block: _Block, kind: str, level: int, line: _Line, drop: float) -> bool:
    """Whether ``line`` (of ``kind``, heading ``level``, ``drop`` points below the line before
    it) goes on ``block`` rather than opening a new one."""
    size = max(line.size, 1.0)
    if block.kind == "table":
        # Table rows are padded: further apart than the lines of a paragraph.
        same_width = len(line.cells) == len(block.lines[0].cells)
        return kind == "table" and same_width and 0 <= drop <= _ROW_GAP_EMS * size
    if not 0 <= drop <= _PARAGRAPH_GAP_EMS * size:
        return False
    if block.kind == "heading":
        return kind == "heading" and level == block.level  # a heading wrapped over lines
    # A wrapped paragraph or list item goes on with plain lines; a new item opens a new block.
    return kind == "paragraph"


def _as_table_or_text(block: _Block) -> _Block:
    """A lone row with wide gaps is no table (a running header, a label and its value)."""
    if block.kind == "table" and len(block.lines) < 2:
        block.kind = "paragraph"
    return block


def _render(block: _Block) -> str:
    if block.kind == "heading":
        return "#" * block.level + " " + _block_text(block)
    if block.kind == "table":
        rows = [
            "| " + " | ".join(line.cells).replace(_BREAK_HYPHEN, "-") + " |" for line in block.lines
        ]
        rule = "|" + " --- |" * len(block.lines[0].cells)
        return "\n".join([rows[0], rule, *rows[1:]])
    text = _block_text(block)
    if block.kind == "item":
        marker = text[:1]
        if marker in _BULLETS:
            text = "- " + text[1:].lstrip()
    return text


def _block_text(block: _Block) -> str:
    return _join_lines(line.text for line in block.lines)


def _join_lines(lines: Iterator[str]) -> str:
    """The lines of a paragraph as one line; a word broken at a line's end is joined again
    (PDFium marks a hyphen it found there with U+0002)."""
    joined = ""
    for line in lines:
        if joined.endswith(_BREAK_HYPHEN):
            joined = joined[:-1] + line
        elif joined.endswith("-") and line[:1].islower():
            joined += line
        else:
            joined = f"{joined} {line}" if joined else line
    return joined.replace(_BREAK_HYPHEN, "-")


def _rounded(size: float) -> float:
    """A font size to the half point: sizes of one style differ in rounding."""
    return round(size * 2) / 2
