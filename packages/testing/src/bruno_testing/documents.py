"""Real PDF and DOCX files with known text on known pages, made where a test or benchmark runs
(reportlab writes the PDFs, python-docx the Word files), so no binary fixture lives in git.

    raw = pdf_bytes([PdfPage(heading="Setup", paragraphs=["Plug it in."]),
                     PdfPage(scan=True)], title="Manual")
    raw = docx_bytes([DocxSection("Setup", paragraphs=["Plug it in."])])
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import docx
from PIL import Image as PILImage
from PIL import ImageDraw
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    ListFlowable,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Table,
    TableStyle,
)

__all__ = ["DocxSection", "PdfPage", "docx_bytes", "pdf_bytes"]

_STYLES = getSampleStyleSheet()
_MARGIN = 56.0


@dataclass(frozen=True)
class PdfPage:
    """What one page shows, top to bottom: a heading, a subheading, paragraphs, a bulleted list,
    a table (first row the header). ``columns=2`` sets its paragraphs in two columns; ``scan``
    makes it a picture of text with no text layer, as a scanner would."""

    heading: str = ""
    subheading: str = ""
    paragraphs: Sequence[str] = ()
    bullets: Sequence[str] = ()
    table: Sequence[Sequence[str]] = ()
    columns: int = 1
    scan: bool = False
    #: More (subheading, paragraphs) after the rest, flowing over as many pages as they take.
    sections: Sequence[tuple[str, Sequence[str]]] = ()


@dataclass(frozen=True)
class DocxSection:
    """A heading (``level`` 1-3) and what follows it: paragraphs, bullets, a table."""

    heading: str
    level: int = 1
    paragraphs: Sequence[str] = ()
    bullets: Sequence[str] = ()
    table: Sequence[Sequence[str]] = field(default_factory=list)


def pdf_bytes(pages: Sequence[PdfPage], *, title: str = "", password: str | None = None) -> bytes:
    """A PDF of ``pages``, each starting a new page (content that does not fit flows onto the
    next); encrypted so it opens only with ``password`` when one is given."""
    buffer = io.BytesIO()
    width, height = A4
    inner_width, inner_height = width - 2 * _MARGIN, height - 2 * _MARGIN
    gutter = 18.0
    column = (inner_width - gutter) / 2
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        encrypt=StandardEncryption(password, canPrint=1) if password else None,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN,
    )
    templates = [
        PageTemplate(id="one", frames=[Frame(_MARGIN, _MARGIN, inner_width, inner_height)]),
        PageTemplate(
            id="two",
            frames=[
                Frame(_MARGIN, _MARGIN, column, inner_height, id="left"),
                Frame(_MARGIN + column + gutter, _MARGIN, column, inner_height, id="right"),
            ],
        ),
    ]
    if pages and pages[0].columns == 2:
        templates.reverse()  # the first template lays out the first page
    document.addPageTemplates(templates)
    story: list[Flowable] = []
    for number, page in enumerate(pages):
        if number:
            story += [NextPageTemplate("two" if page.columns == 2 else "one"), PageBreak()]
        story += _page_story(page, column if page.columns == 2 else inner_width)
    document.build(story)
    return buffer.getvalue()


def _page_story(page: PdfPage, width: float) -> list[Flowable]:
    if page.scan:
        return [_picture_of_text(page.paragraphs or ("Scanned page",), width)]
    story: list[Flowable] = []
    if page.heading:
        story.append(Paragraph(escape(page.heading), _STYLES["Heading1"]))
    if page.subheading:
        story.append(Paragraph(escape(page.subheading), _STYLES["Heading2"]))
    story += [Paragraph(escape(text), _STYLES["BodyText"]) for text in page.paragraphs]
    if page.bullets:
        items = [Paragraph(escape(text), _STYLES["BodyText"]) for text in page.bullets]
        story.append(ListFlowable(items, bulletType="bullet"))
    if page.table:
        table = Table([list(row) for row in page.table])
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
        story.append(table)
    for subheading, paragraphs in page.sections:
        story.append(Paragraph(escape(subheading), _STYLES["Heading2"]))
        story += [Paragraph(escape(text), _STYLES["BodyText"]) for text in paragraphs]
    return story


def _picture_of_text(lines: Sequence[str], width: float) -> Image:
    """A raster image of ``lines``: text a reader sees and a PDF parser cannot."""
    picture = PILImage.new("L", (800, 40 + 24 * len(lines)), "white")
    draw = ImageDraw.Draw(picture)
    for number, line in enumerate(lines):
        draw.text((20, 20 + 24 * number), line, fill="black")
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    buffer.seek(0)
    return Image(buffer, width=width, height=width * picture.height / picture.width)


def docx_bytes(sections: Sequence[DocxSection], *, title: str = "") -> bytes:
    """A Word document of ``sections`` in order."""
    document = docx.Document()
    document.core_properties.title = title
    for section in sections:
        document.add_heading(section.heading, section.level)
        for text in section.paragraphs:
            document.add_paragraph(text)
        for text in section.bullets:
            document.add_paragraph(text, style="List Bullet")
        if section.table:
            table = document.add_table(rows=len(section.table), cols=len(section.table[0]))
            for row, cells in zip(table.rows, section.table, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = text
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
