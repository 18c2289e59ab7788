"""A Word document's (DOCX) text as Markdown, one segment per section, through python-docx.

    document = docx_document(raw, filename="runbook.docx", limits=ExtractionLimits())
    [segment.section for segment in document.segments]   # ["", "Setup", "Setup > Cabling"]

Paragraphs, headings (the ``Heading N`` styles), list items (list styles or numbering) and
tables are read in body order. A DOCX has no pages until a word processor lays it out, so its
segments carry their section (heading path) instead. Headers, footers, footnotes, comments
and text boxes are left out.
"""

from __future__ import annotations

import io
import re
import time
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from bruno_core import LimitExceeded
from bruno_extract._document import Document, ExtractionLimits, UnreadableDocument

# Password-protected Office files (and the older .doc format) are OLE compound files, not zips.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^Heading (\d)$")


def docx_document(raw: bytes, *, filename: str, limits: ExtractionLimits) -> Document:
    """The text of a DOCX as Markdown, one segment per section.

    Raises UnreadableDocument (encrypted, damaged or truncated) or LimitExceeded (unpacks too
    large, text past ``limits.max_text_bytes``, slower than ``limits.max_seconds``).
    """
    deadline = time.monotonic() + limits.max_seconds
    word = _open(raw, filename, limits)
    sections = _Sections(filename, limits.max_text_bytes)
    title = (word.core_properties.title or "").strip()
    for part in word.iter_inner_content():
        if time.monotonic() > deadline:
            raise LimitExceeded(
                f"{filename[:200]!r} took longer than {limits.max_seconds:g} s to read"
            )
        if isinstance(part, Table):
            sections.add(_table(part))
            continue
        level = _heading_level(part)
        text = " ".join(part.text.split())
        if level and text:
            sections.open(level, text)
            title = title or (text if level == 1 else "")
        sections.add(_paragraph(part, level))
    document = Document.of_segments(title or filename, sections.parts())
    if not document.text.strip():
        raise UnreadableDocument(filename, "empty", "holds no text")
    return document


def _open(raw: bytes, filename: str, limits: ExtractionLimits) -> docx.document.Document:
    """The Word document in ``raw``, after the checks that need no unpacking."""
    if raw.startswith(_OLE_MAGIC):
        raise UnreadableDocument(
            filename,
            "encrypted",
            "is encrypted or in the old Word 97-2003 format: save it as a .docx without a password",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except zipfile.BadZipFile as error:
        # A zip's directory sits at its end: a cut-off upload loses it first.
        raise UnreadableDocument(
            filename, "damaged", "is damaged or truncated: it is not a readable DOCX (zip) file"
        ) from error
    # Refused from the zip's directory, before anything is unpacked (zipfile never reads
    # past an entry's declared size).
    if unpacked > limits.max_unpacked_bytes:
        raise LimitExceeded(
            f"{filename[:200]!r} unpacks to {unpacked} bytes, more than the limit of "
            f"{limits.max_unpacked_bytes}"
        )
    try:
        return docx.Document(io.BytesIO(raw))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as error:
        # KeyError: a part the package names is missing; ValueError: not a Word document.
        raise UnreadableDocument(
            filename, "damaged", "is damaged: it is not a readable Word document"
        ) from error
    except SyntaxError as error:  # lxml's XMLSyntaxError: a part is not well-formed XML
        raise UnreadableDocument(
            filename, "damaged", "is damaged: one of its parts is not well-formed XML"
        ) from error


class _Sections:
    """Markdown blocks gathered into one segment per section, within a text budget."""

    def __init__(self, filename: str, max_text_bytes: int) -> None:
        self._filename = filename
        self._max_text_bytes = max_text_bytes
        self._budget = max_text_bytes
        self._done: list[tuple[str, int | None, str]] = []
        self._blocks: list[str] = []
        self._path: list[tuple[int, str]] = []
        self._previous_item = False

    def open(self, level: int, heading: str) -> None:
        """Ends the current section; the next one is ``heading``, under its parents."""
        self._end()
        self._path = [(depth, name) for depth, name in self._path if depth < level]
        self._path.append((level, heading))

    def add(self, block: str) -> None:
        if not block:
            return
        self._budget -= len(block.encode("utf-8")) + 2
        if self._budget < 0:
            raise LimitExceeded(
                f"{self._filename[:200]!r} holds more text than the document limit of "
                f"{self._max_text_bytes} bytes"
            )
        # The items of one list stay on consecutive lines, as Markdown writes a list.
        item = block.startswith(("- ", "1. "))
        self._blocks.append(("\n" if item and self._previous_item else "\n\n") + block)
        self._previous_item = item

    def parts(self) -> list[tuple[str, int | None, str]]:
        """(text, page, section) of every section, for Document.of_segments."""
        self._end()
        return self._done

    def _end(self) -> None:
        if self._blocks:
            section = " > ".join(name for _, name in self._path)
            self._done.append(("".join(self._blocks).lstrip("\n"), None, section))
        self._blocks, self._previous_item = [], False


def _heading_level(paragraph: Paragraph) -> int:
    """1 to 6 for a heading (``Title`` counts as 1), else 0."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 1
    match = _HEADING_STYLE.match(name or "")
    return min(int(match[1]), 6) if match else 0


def _paragraph(paragraph: Paragraph, level: int) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    if level:
        return "#" * level + " " + " ".join(text.split())
    style = paragraph.style.name if paragraph.style is not None else ""
    properties = paragraph._p.pPr  # python-docx exposes numbering only here
    numbered = properties is not None and properties.numPr is not None
    if "Number" in (style or ""):
        return "1. " + text
    if numbered or (style or "").startswith("List"):
        return "- " + text
    return text


def _table(table: Table) -> str:
    """A table as Markdown rows, the first row as its header; a cell merged across columns
    appears once."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        seen: list[object] = []
        for cell in row.cells:
            if any(cell._tc is other for other in seen):  # a merged cell repeats
                continue
            seen.append(cell._tc)
            cells.append(" ".join(cell.text.split()).replace("|", "\\|"))
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    return "\n".join([lines[0], "|" + " --- |" * width, *lines[1:]])
