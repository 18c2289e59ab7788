"""Cutting documents into chunks that follow their structure: headings, paragraphs, sentences.

    chunks = chunk_text(markdown, size_tokens=200, overlap_tokens=20)
    chunks[3].heading_path  # "Setup > Install"

A document is first cut into sections at its headings (Markdown ``#`` and setext headings,
reStructuredText over/underlined titles; never inside fenced code). Each section is then cut
into chunks of at most ``size_tokens`` estimated tokens, ending at the strongest break in the
second half of the window (paragraph > line > sentence > word), and each chunk after the first
starts up to ``overlap_tokens`` before the previous one ended. Chunk text is a verbatim slice
of the input, so nothing is lost or rewritten: every token of the input lies in some chunk,
and every whitespace-separated word that fits in a chunk lies whole in one.

Token estimate: one token per run of letters, digits and underscores (each
``MAX_TOKEN_CHARS`` characters of a longer run count as one more) and one per other non-space
character. It needs no model files. Subword tokenizers split rare words further: on the
Cranfield abstracts the all-MiniLM-L6-v2 WordPiece count is 1.14x this estimate, and no
200-token chunk exceeded 246 word pieces (the model reads 256).

Hard ceiling: no chunk is longer than ``max_chunk_chars(size_tokens)`` characters (10 per
token, 2,000 at the default 200), whatever the input, and no heading path longer than
``MAX_HEADING_PATH_CHARS``. A run with no boundary in reach (``"a" * 2_000_000``, a base64
blob) is cut by characters, a long blank run ends a chunk, and the overlap is bounded in
characters as well, so a document's chunks never hold much more text than it has. On
ordinary text the ceiling never binds: the longest 200-token chunk of Cranfield, the demo
corpus and this repository's docs and code is 1,582 characters.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

HEADING_SEPARATOR = " > "
# The defaults, chosen by measurement (`make bench-chunking`, docs/benchmarks.md): 100 and 150
# lose quality on Cranfield, 300+ overrun the 256 word pieces all-MiniLM-L6-v2 reads and lose it
# on long documents; overlap 0, 20 and 40 are level within noise, and 20 keeps a sentence cut at
# a boundary whole in one chunk at 11% fewer chunks than 40.
DEFAULT_SIZE_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 20
# Characters a chunk may hold per token of its budget; prose runs ~5.6 (p99 6.8).
MAX_CHARS_PER_TOKEN = 10
# A longer run of letters and digits counts as several tokens (WordPiece reads a word this
# long as one unknown token anyway), so one token never outgrows a chunk.
MAX_TOKEN_CHARS = 100
MAX_HEADING_PATH_CHARS = 256
_ELLIPSIS = "…"

_TOKEN = re.compile(rf"\w{{1,{MAX_TOKEN_CHARS}}}|[^\w\s]")
# The optional closing "#"s are stripped by _atx_title: a lazy title followed by optional
# "[ \t]+#+" in one pattern backtracks quadratically over a long run of blanks in a title.
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# reST allows any printable non-alphanumeric ASCII character as a title adornment.
_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_SENTENCE_END = frozenset(".!?")

# Break strength before a token; higher is a better place to end a chunk.
_MID_WORD, _WORD, _SENTENCE, _LINE, _PARAGRAPH, _SECTION_END = range(6)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document: its position, its verbatim text, the headings above it and
    where it starts in the document's text (a character offset: what puts a page on it)."""

    index: int
    text: str
    heading_path: str
    start: int


@dataclass(frozen=True, slots=True)
class _Heading:
    start: int  # offset of the heading's first line (the overline, if any)
    body_start: int  # offset just after the heading's last line
    level: int
    title: str


@dataclass(frozen=True, slots=True)
class _Section:
    start: int
    end: int
    heading_path: str


def estimate_tokens(text: str) -> int:
    """The token estimate chunk bounds are measured in (see the module docstring)."""
    return sum(1 for _ in _TOKEN.finditer(text))


def max_chunk_chars(size_tokens: int) -> int:
    """The most characters a chunk of a ``size_tokens`` budget may hold."""
    return size_tokens * MAX_CHARS_PER_TOKEN


def chunk_text(text: str, *, size_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``size_tokens`` estimated tokens and at most
    ``max_chunk_chars(size_tokens)`` characters.

    Chunks never span two sections; consecutive chunks of one section overlap by up to
    ``overlap_tokens``. Whitespace-only text gives no chunks.
    """
    if size_tokens < 1:
        raise ValueError("size_tokens must be positive")
    if not 0 <= overlap_tokens < size_tokens:
        raise ValueError("overlap_tokens must be in [0, size_tokens)")
    max_chars = max_chunk_chars(size_tokens)
    chunks: list[Chunk] = []
    for section in _sections(text):
        for start, end in _windows(text, section, size_tokens, overlap_tokens, max_chars):
            chunks.append(Chunk(len(chunks), text[start:end], section.heading_path, start))
    return chunks


def within_chunk_ceiling(text: str, size_tokens: int) -> str:
    """``text`` when it fits a chunk of a ``size_tokens`` budget, else cut to
    ``max_chunk_chars(size_tokens)`` characters ending in "…".

    A chunk stored before the ceiling existed (or under a larger budget) can be longer than
    any chunk made now; search answers pass through this so they stay bounded all the same.

        >>> within_chunk_ceiling("a" * 5_000, 200)[-3:], len(within_chunk_ceiling("a" * 5_000, 200))
        ('aa…', 2000)
    """
    limit = max_chunk_chars(size_tokens)
    if len(text) <= limit:
        return text
    return text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _bounded_path(titles: list[str]) -> str:
    path = HEADING_SEPARATOR.join(titles)
    if len(path) <= MAX_HEADING_PATH_CHARS:
        return path
    return path[: MAX_HEADING_PATH_CHARS - len(_ELLIPSIS)] + _ELLIPSIS


def _sections(text: str) -> list[_Section]:
    """Spans of ``text`` between headings, each with its heading path.

    A heading with no text of its own before the next heading is kept with the next
    section, so "# Setup" followed directly by "## Install" does not become a chunk alone.
    """
    headings = _find_headings(text)
    sections: list[_Section] = []
    if not headings or _has_token(text, 0, headings[0].start):
        sections.append(_Section(0, headings[0].start if headings else len(text), ""))
    stack: list[_Heading] = []
    pending_start: int | None = None
    for i, heading in enumerate(headings):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        end = headings[i + 1].start if i + 1 < len(headings) else len(text)
        start = heading.start if pending_start is None else pending_start
        if end < len(text) and not _has_token(text, heading.body_start, end):
            pending_start = start
            continue
        pending_start = None
        sections.append(_Section(start, end, _bounded_path([h.title for h in stack])))
    return sections


def _find_headings(text: str) -> list[_Heading]:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    stripped = [line.strip() for line in lines]
    # reST ranks adornment styles by first appearance; Markdown setext "=" then "-" fits that.
    styles: list[tuple[str, bool]] = []
    headings: list[_Heading] = []
    fence = ""
    i = 0

    def adornment_level(char: str, overline: bool) -> int:
        if (char, overline) not in styles:
            styles.append((char, overline))
        return styles.index((char, overline)) + 1

    while i < len(lines):
        line = lines[i].rstrip("\r\n")
        if fence:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = ""
            i += 1
            continue
        if fence_match := _FENCE.match(line):
            fence = fence_match.group(1)
            i += 1
            continue
        if atx := _ATX_HEADING.match(line):
            level, title = len(atx.group(1)), _atx_title(atx.group(2))
            headings.append(_Heading(offsets[i], offsets[i + 1], level, title or "#" * level))
            i += 1
            continue
        after_blank = i == 0 or not stripped[i - 1]
        # Overlined title: adornment, title, the same adornment (at least as long as the title).
        if (
            after_blank
            and i + 2 < len(lines)
            and _ADORNMENT.match(line)
            and stripped[i + 1]
            and not _ADORNMENT.match(stripped[i + 1])
            and stripped[i + 2] == stripped[i]
            and len(stripped[i]) >= len(stripped[i + 1])
        ):
            level = adornment_level(stripped[i][0], True)
            headings.append(_Heading(offsets[i], offsets[i + 3], level, stripped[i + 1]))
            i += 3
            continue
        # Underlined title: a one-line paragraph followed by an adornment line.
        if (
            after_blank
            and stripped[i]
            and i + 1 < len(lines)
            and (under := _ADORNMENT.match(stripped[i + 1]))
            and not _ADORNMENT.match(stripped[i])
            and (under.group(1) in "=-" or len(stripped[i + 1]) >= len(stripped[i]))
        ):
            level = adornment_level(under.group(1), False)
            headings.append(_Heading(offsets[i], offsets[i + 2], level, stripped[i]))
            i += 2
            continue
        i += 1
    return headings


def _atx_title(rest: str) -> str:
    """A Markdown heading's title: the text after its "#"s without a closing run of "#"s
    (one that follows a blank, so "C#" keeps its "#")."""
    title = rest.strip()
    unclosed = title.rstrip("#")
    if unclosed != title and unclosed[-1:] in (" ", "\t"):
        return unclosed.strip()
    return title


def _has_token(text: str, start: int, end: int) -> bool:
    return _TOKEN.search(text, start, end) is not None


def _windows(
    text: str, section: _Section, size: int, overlap: int, max_chars: int
) -> list[tuple[int, int]]:
    """Character spans of the chunks of one section."""
    tokens = [
        piece
        for m in _TOKEN.finditer(text, section.start, section.end)
        for piece in _pieces(m.start(), m.end(), max_chars)
    ]
    if not tokens:
        return []
    count = len(tokens)
    ends = [end for _, end in tokens]
    strength = [_break_strength(text, tokens, k) for k in range(count + 1)]
    spans: list[tuple[int, int]] = []
    first = 0
    while True:
        # At most `size` tokens, ending within `max_chars` of the first one's start (the
        # first token always fits: none is longer than `max_chars`).
        limit = min(first + size, bisect.bisect_right(ends, tokens[first][0] + max_chars))
        if limit >= count:
            spans.append((tokens[first][0], tokens[-1][1]))
            return spans
        # The strongest break in the second half of the window, the latest among equals; a
        # word is cut only when no word boundary at all is in reach.
        lowest = first + max(1, (limit - first) // 2)
        end = max(range(lowest, limit + 1), key=lambda k: (strength[k], k))
        if strength[end] == _MID_WORD:
            end = max(range(first + 1, limit + 1), key=lambda k: (strength[k], k))
        spans.append((tokens[first][0], tokens[end - 1][1]))
        first = _overlap_start(tokens, strength, (first, end), overlap, max_chars)


def _pieces(start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """A token's span, cut into pieces of at most ``max_chars`` (only a budget smaller than
    ``MAX_TOKEN_CHARS`` makes a token that long)."""
    return [(at, min(at + max_chars, end)) for at in range(start, end, max_chars)]


def _overlap_start(
    tokens: list[tuple[int, int]],
    strength: list[int],
    span: tuple[int, int],
    overlap: int,
    max_chars: int,
) -> int:
    """Where the chunk after ``span`` (token indices ``[first, end)``) starts: at a sentence
    or line start within the last ``overlap`` tokens if there is one, else at a word start,
    the earliest such start (the most context); never mid-word, so without a word start
    there is no overlap.

    Like a chunk, the overlap is bounded in characters too: at most ``MAX_CHARS_PER_TOKEN``
    per token of ``overlap`` and at most half the chunk, so the next chunk moves on by at
    least the other half (a few long words would otherwise be stored again and again), and
    never so far back that the next token would not fit (past a long blank stretch the next
    chunk would be the overlap alone)."""
    first, end = span
    chunk_start, chunk_end = tokens[first][0], tokens[end - 1][1]
    earliest = max(
        (chunk_start + chunk_end) / 2,
        chunk_end - overlap * MAX_CHARS_PER_TOKEN,
        tokens[end][1] - max_chars,
    )
    candidates = [k for k in range(max(first + 1, end - overlap), end) if tokens[k][0] >= earliest]
    best = min(candidates, key=lambda k: (-min(strength[k], _SENTENCE), k), default=end)
    return end if strength[best] == _MID_WORD else best


def _break_strength(text: str, tokens: list[tuple[int, int]], k: int) -> int:
    """How good a place the gap before token ``k`` is to end a chunk."""
    if k == 0 or k == len(tokens):
        return _SECTION_END
    gap = text[tokens[k - 1][1] : tokens[k][0]]
    if not gap:
        return _MID_WORD
    if _BLANK_LINE.search(gap):
        return _PARAGRAPH
    if "\n" in gap:
        return _LINE
    previous = text[tokens[k - 1][0] : tokens[k - 1][1]]
    if previous in _SENTENCE_END:
        return _SENTENCE
    return _WORD
