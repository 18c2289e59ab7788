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
from bruno_edge.extract._document import Document, ExtractionLimits, UnreadableDocument

# Password-protected Office files (and the older .doc format) are OLE compound files, not zips.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^Heading (\d)$")


def docx_document(raw: bytes, *, filename: str, limits: ExtractionLimits) -> Document:
    """The text of a DOCX as Markdown, one segment per section.

    Raises UnreadableDocument (encrypted, damaged or truncated) or LimitExceeded (unpacks too
    large, text past ``limits.max_text_bytes``, slower than ``limits.max_seconds``).
    """
    deadline = time.monotonic() + limits.max_seconds
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
        word = docx.Document(io.BytesIO(raw))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as error:
        # KeyError: a part the package names is missing; ValueError: not a Word document.
        raise UnreadableDocument(
            filename, "damaged", "is damaged: it is not a readable Word document"
        ) from error
    except SyntaxError as error:  # lxml's XMLSyntaxError: a part is not well-formed XML
        raise UnreadableDocument(
            filename, "damaged", "is damaged: one of its parts is not well-formed XML"
        ) from error

    title = (word.core_properties.title or "").strip()
    parts: list[tuple[str, int | None, str]] = []
    blocks: list[str] = []
    path: list[tuple[int, str]] = []
    section = ""
    text_bytes = 0
    previous_item = False
    for part in word.iter_inner_content():
        if time.monotonic() > deadline:
            raise LimitExceeded(
                f"{filename[:200]!r} took longer than {limits.max_seconds:g} s to read"
            )
        if isinstance(part, Table):
            block = _table(part)
        else:
            level = _heading_level(part)
            text = part.text.strip()
            if level and text:
                if blocks:
                    parts.append(("".join(blocks).lstrip("\n"), None, section))
                    blocks, previous_item = [], False
                path = [(depth, name) for depth, name in path if depth < level]
                path.append((level, " ".join(text.split())))
                section = " > ".join(name for _, name in path)
                if not title and level == 1:
                    title = path[-1][1]
            block = _paragraph(part, level)
        if block:
            text_bytes += len(block.encode("utf-8")) + 2
            if text_bytes > limits.max_text_bytes:
                raise LimitExceeded(
                    f"{filename[:200]!r} holds more text than the document limit of "
                    f"{limits.max_text_bytes} bytes"
                )
            # The items of one list stay on consecutive lines, as Markdown writes a list.
            item = block.startswith(("- ", "1. "))
            blocks.append(("\n" if item and previous_item else "\n\n") + block)
            previous_item = item
    parts.append(("".join(blocks).lstrip("\n"), None, section))
    document = Document.of_segments(title or filename, parts)
    if not document.text.strip():
        raise UnreadableDocument(filename, "empty", "holds no text")
    return document


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
