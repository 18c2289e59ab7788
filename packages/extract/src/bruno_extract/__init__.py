"""Title, text and segments of an uploaded or local file: Markdown, plain text,
reStructuredText, HTML, PDF or DOCX.

    document = extract("manual.pdf", raw_bytes)
    document.title, document.text
    [(segment.page, segment.section) for segment in document.segments]

Markdown, text and reStructuredText are stored as they are (the retrieval service's chunker
reads their headings); HTML becomes its visible text with Markdown headings; PDF and DOCX become
Markdown (headings, list items, tables) in segments that know their page (PDF) or section
(DOCX). Reading is bounded by :class:`ExtractionLimits`, and synchronous: callers on an event
loop run it in a thread. Used by the edge (uploads), retrieval (URL jobs) and the CLI.
"""

from __future__ import annotations

import logging
from pathlib import PurePath

from bruno_core import BrunoError, LimitExceeded
from bruno_extract._document import (
    Document,
    ExtractionLimits,
    Segment,
    UnreadableDocument,
    UnreadableReason,
    UnsupportedMediaType,
)
from bruno_extract._docx import docx_document
from bruno_extract._html import html_document
from bruno_extract._pdf import pdf_document
from bruno_extract._settings import ExtractionSettings
from bruno_extract._text import markdown_title, rst_title

__all__ = [
    "BINARY_SUFFIXES",
    "SUFFIXES",
    "Document",
    "ExtractionLimits",
    "ExtractionSettings",
    "Segment",
    "UnreadableDocument",
    "UnreadableReason",
    "UnsupportedMediaType",
    "extract",
    "html_document",
    "kind_of",
    "markdown_title",
    "rst_title",
]

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
RST_SUFFIXES = frozenset({".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
DOCX_SUFFIXES = frozenset({".docx"})
#: Kinds read from their bytes rather than decoded as UTF-8 text.
BINARY_SUFFIXES = PDF_SUFFIXES | DOCX_SUFFIXES
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | RST_SUFFIXES | HTML_SUFFIXES | BINARY_SUFFIXES
# Used when a file name has no known suffix.
_MEDIA_TYPES = {
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "text/x-rst": ".rst",
    "text/prs.fallenstein.rst": ".rst",
    "text/html": ".html",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


def kind_of(filename: str, content_type: str | None = None) -> str:
    """The suffix that decides how ``filename`` is read; UnsupportedMediaType if none fits."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in SUFFIXES:
        return suffix
    media_type = (content_type or "").split(";")[0].strip().lower()
    if not suffix and media_type in _MEDIA_TYPES:
        return _MEDIA_TYPES[media_type]
    raise UnsupportedMediaType(
        f"{filename[:200]!r}: only Markdown (.md), text (.txt), reStructuredText (.rst), "
        "HTML (.html), PDF (.pdf) and Word (.docx) files can be ingested"
    )


def extract(
    filename: str,
    raw: bytes,
    content_type: str | None = None,
    *,
    limits: ExtractionLimits | None = None,
) -> Document:
    """The title (the document's own, its first heading, else the file name), text and
    segments of a file.

    Raises UnsupportedMediaType for another kind of file, UnreadableDocument when its content
    cannot be read (not UTF-8, encrypted, damaged, truncated, a scan without text) and
    LimitExceeded past ``limits``.
    """
    limits = limits or ExtractionLimits()
    kind = kind_of(filename, content_type)
    name = PurePath(filename).name
    # A text file is its own text; a PDF or Word file holds less text than its size.
    max_bytes = limits.max_file_bytes if kind in BINARY_SUFFIXES else limits.max_text_bytes
    if len(raw) > max_bytes:
        raise LimitExceeded(f"{name[:200]!r} is larger than the limit of {max_bytes} bytes")
    if kind in BINARY_SUFFIXES:
        read = pdf_document if kind in PDF_SUFFIXES else docx_document
        try:
            return read(raw, filename=name, limits=limits)
        except BrunoError:
            raise
        except Exception as error:
            # The parsers meet hostile input: whatever else they raise, the file is unreadable.
            log.warning("could not read %r", name[:200], exc_info=True)
            raise UnreadableDocument(name, "damaged", "is damaged: it cannot be read") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableDocument(filename, "not-utf8", "is not UTF-8 text") from error
    if kind in HTML_SUFFIXES:
        return html_document(text, fallback_title=name)
    lines = text.splitlines()
    title = rst_title(lines) if kind in RST_SUFFIXES else markdown_title(lines)
    return Document.of_text(title or name, text)
