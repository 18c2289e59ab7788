"""The structure of a PDF's text, rebuilt from its lines as Markdown: headings (lines set
larger than the body text, levels by size), paragraphs (lines closer than a paragraph gap),
list items (a bullet, or a number after a line that did not wrap) and tables (two or more rows
whose cells stand apart by wide gaps).

    document = markdown_document(lines, title="", fallback_title="manual.pdf")

The lines come from ``_pdf.py`` in the order the page draws them; one segment per page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from bruno_extract._document import Document

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
_NUMBERED = re.compile(r"^(\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
# PDFium's mark for a hyphen it found at the end of a line.
_BREAK_HYPHEN = "\x02"


@dataclass(slots=True)
class Line:
    """One line of a page as PDFium drew it."""

    page: int
    cells: list[str]
    size: float  # font size of its first word, in points
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
    lines: list[Line] = field(default_factory=list)
    level: int = 0


def markdown_document(lines: list[Line], title: str, *, fallback_title: str) -> Document:
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


def _body_size(lines: list[Line]) -> float:
    """The font size most of the text is set in."""
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[_rounded(line.size)] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _heading_levels(lines: list[Line], body_size: float) -> dict[float, int]:
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


def _blocks(lines: list[Line], levels: dict[float, int]) -> list[_Block]:
    blocks: list[_Block] = []
    previous: Line | None = None
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


def _column_key(line: Line) -> tuple[int, int]:
    """Lines of one column of a page start at about the same place."""
    return line.page, round(line.left / (_COLUMN_EMS * max(line.size, 1.0)))


def _column_edges(lines: list[Line]) -> dict[tuple[int, int], float]:
    """Where the lines of each column of each page end at the furthest."""
    edges: dict[tuple[int, int], float] = {}
    for line in lines:
        key = _column_key(line)
        edges[key] = max(edges.get(key, 0.0), line.right)
    return edges


def _wraps_onto(previous: Line, line: Line, edges: dict[tuple[int, int], float]) -> bool:
    """Whether ``line`` holds text that wrapped from ``previous``: its first word would not
    have fitted at the end of ``previous`` (an estimate: half an em a character)."""
    edge = edges.get(_column_key(previous), previous.right)
    first_word = len(line.text.split(" ", 1)[0]) + 1
    return previous.right + first_word * 0.5 * max(line.size, 1.0) >= edge


def _kind(line: Line, level: int, wrapped: bool) -> str:
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


def _continues(block: _Block, kind: str, level: int, line: Line, drop: float) -> bool:
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
