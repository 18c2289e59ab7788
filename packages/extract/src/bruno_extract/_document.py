"""What extraction returns (a document of segments), the bounds it works within, and the ways
a file can fail to be read.

    UnsupportedMediaType   a kind of file the knowledge base cannot read        415
    UnreadableDocument     a supported kind whose content cannot be read        422
                           (``reason``: no-text-layer, encrypted, damaged, truncated,
                           not-utf8, empty)
    LimitExceeded          too many bytes, pages or seconds (from bruno_core)    413
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bruno_core import BrunoError, InvalidInput
from bruno_core.settings import MIB

UnreadableReason = Literal[
    "no-text-layer", "encrypted", "damaged", "truncated", "not-utf8", "empty"
]


class UnsupportedMediaType(BrunoError):
    """A file of a kind the knowledge base cannot read (HTTP 415)."""

    http_status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class UnreadableDocument(InvalidInput):
    """A file of a supported kind whose text cannot be read; ``reason`` says why.

    raise UnreadableDocument("scan.pdf", "no-text-layer", "has no text layer (a scan?)")
    """

    title = "Unreadable document"
    slug = "unreadable-document"

    def __init__(self, filename: str, reason: UnreadableReason, explanation: str) -> None:
        super().__init__(f"{filename[:200]!r} {explanation}")
        self.filename = filename
        self.reason: UnreadableReason = reason
        #: The detail without the file's name, for a report that names it already.
        self.explanation = explanation


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """Bounds on reading one file: its size, its pages and the time it may take.

    ``max_text_bytes`` stops a file whose text outgrows the document limit as soon as it does,
    rather than after reading the rest of it.
    """

    max_file_bytes: int = 32 * MIB
    max_text_bytes: int = 2 * MIB
    max_pages: int = 2000
    max_seconds: float = 60.0
    # What a DOCX (a zip) may unpack to: python-docx holds every part in memory.
    max_unpacked_bytes: int = 256 * MIB


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a document's text and where it came from: its PDF page (1-based), and the
    heading path of the section it opens in (``"Setup > Cabling"``; empty before any heading).
    ``start`` is its offset in :attr:`Document.text`."""

    text: str
    start: int
    page: int | None = None
    section: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class Document:
    """The title and text of a file, and the segments its text is made of, in order: one per
    page of a PDF, one per section of a DOCX, one for the other kinds. Headings, list items and
    tables in ``text`` are Markdown.

    document = Document.of_segments("manual.pdf", [("# Setup\\n\\nPlug it in.", 1, "Setup")])
    document.segments[0].page   # 1
    """

    title: str
    text: str
    segments: tuple[Segment, ...] = ()

    @classmethod
    def of_text(cls, title: str, text: str) -> Document:
        """A document of one segment without a page."""
        return cls(title=title, text=text, segments=(Segment(text=text, start=0),) if text else ())

    @classmethod
    def of_segments(
        cls, title: str, parts: Iterable[tuple[str, int | None, str]], separator: str = "\n\n"
    ) -> Document:
        """A document whose text is the non-empty ``(text, page, section)`` parts joined by
        ``separator``, each part a segment at its offset."""
        segments: list[Segment] = []
        offset = 0
        for text, page, section in parts:
            if not text:
                continue
            if segments:
                offset += len(separator)
            segments.append(Segment(text=text, start=offset, page=page, section=section))
            offset += len(text)
        return cls(
            title=title,
            text=separator.join(segment.text for segment in segments),
            segments=tuple(segments),
        )

    def segment_at(self, offset: int) -> Segment | None:
        """The segment holding the character at ``offset`` (a separator belongs to the segment
        before it), for putting a page on a chunk that starts there."""
        found = None
        for segment in self.segments:
            if segment.start > offset:
                break
            found = segment
        return found
