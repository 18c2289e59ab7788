"""The pages of a document read from a paged original (a PDF), and the page each chunk of it
starts on, so a search hit can say "manual.pdf, p. 12".

    segments = check_segments([TextSegment(0, 1), TextSegment(1800, 2)], len(text))
    pages_at([0, 2000], segments)   # [1, 2]: the pages chunks starting there are on

The extractor (the edge) sends the segments beside the text; a document without them (Markdown,
a Word file, anything ingested before pages) has no page on its chunks. A Word file's sections
need nothing here: they arrive as headings in the text, which the chunker reads into each
chunk's heading path.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from bruno_core import InvalidInput, LimitExceeded
from bruno_core.contract import MAX_DOCUMENT_PAGES


@dataclass(frozen=True, slots=True)
class TextSegment:
    """A stretch of a document's text from ``start`` (a character offset) to the next
    segment's start, read from ``page`` (1-based) of the original."""

    start: int
    page: int


def check_segments(segments: Sequence[TextSegment], text_length: int) -> list[TextSegment]:
    """``segments`` as a list when they describe a text of ``text_length`` characters: the
    first starts at 0, starts strictly increase and stay inside the text, pages are 1-based
    and no higher than ``MAX_DOCUMENT_PAGES``.
    InvalidInput otherwise, so no chunk is given a page that is not its own.

    LimitExceeded past ``MAX_DOCUMENT_PAGES``.
    """
    if len(segments) > MAX_DOCUMENT_PAGES:
        raise LimitExceeded(f"a document may have at most {MAX_DOCUMENT_PAGES} segments (pages)")
    checked = list(segments)
    if not checked:
        return checked
    if checked[0].start != 0:
        raise InvalidInput("the first segment must start at offset 0 of the text")
    for before, after in itertools.pairwise(checked):
        if after.start <= before.start:
            raise InvalidInput("segment starts must strictly increase")
    if checked[-1].start >= text_length:
        raise InvalidInput(f"a segment starts past the end of the text ({text_length} characters)")
    if any(not 1 <= segment.page <= MAX_DOCUMENT_PAGES for segment in checked):
        raise InvalidInput(f"segment pages are 1-based, at most {MAX_DOCUMENT_PAGES}")
    return checked


def pages_at(offsets: Sequence[int], segments: Sequence[TextSegment]) -> list[int | None]:
    """The page of the segment holding the character at each of ``offsets`` (chunk starts);
    all ``None`` without segments. ``segments`` are checked (:func:`check_segments`)."""
    if not segments:
        return [None] * len(offsets)
    starts = [segment.start for segment in segments]
    return [segments[max(bisect.bisect_right(starts, at) - 1, 0)].page for at in offsets]
