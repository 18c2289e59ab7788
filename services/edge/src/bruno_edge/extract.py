"""Text and title of an uploaded or local file: Markdown, plain text, reStructuredText or HTML.

    document = extract("runbook.md", raw_bytes)
    document.title, document.text

Markdown, text and reStructuredText are stored as they are (the retrieval service's chunker
reads their headings); HTML becomes its visible text, with headings turned into Markdown
headings so chunks still carry their section path. Used by the upload route and the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from lxml import etree

from bruno_core import BrunoError, InvalidInput

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
RST_SUFFIXES = frozenset({".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | RST_SUFFIXES | HTML_SUFFIXES
# Used when a file name has no known suffix.
_MEDIA_TYPES = {
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "text/x-rst": ".rst",
    "text/prs.fallenstein.rst": ".rst",
    "text/html": ".html",
}
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "pre", "section", "article", "table", "ul", "ol", "blockquote"}
)
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head"})


class UnsupportedMediaType(BrunoError):
    """A file of a kind the knowledge base cannot read (HTTP 415)."""

    http_status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


@dataclass(frozen=True)
class Document:
    title: str
    text: str


def kind_of(filename: str, content_type: str | None = None) -> str:
    """The suffix that decides how ``filename`` is read; UnsupportedMediaType if none fits."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in SUFFIXES:
        return suffix
    media_type = (content_type or "").split(";")[0].strip().lower()
    if not suffix and media_type in _MEDIA_TYPES:
        return _MEDIA_TYPES[media_type]
    raise UnsupportedMediaType(
        f"{filename[:200]!r}: only Markdown (.md), text (.txt), reStructuredText (.rst) and "
        "HTML (.html) files can be ingested"
    )


def extract(filename: str, raw: bytes, content_type: str | None = None) -> Document:
    """The title (first heading, else the file name) and text of a file."""
    kind = kind_of(filename, content_type)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{filename[:200]!r} is not UTF-8 text") from error
    name = PurePath(filename).name
    if kind in HTML_SUFFIXES:
        return html_document(text, fallback_title=name)
    lines = text.splitlines()
    title = rst_title(lines) if kind in RST_SUFFIXES else markdown_title(lines)
    return Document(title=title or name, text=text)


class _HtmlText:
    """Visible text of an HTML page; headings become Markdown headings. A parser target of
    lxml's HTML parser (libxml2): linear in the input however malformed it is, and it closes
    what HTML lets authors leave open (``<head>`` without ``</head>``)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.title = ""
        self.heading = ""
        self._hidden = 0
        self._in_title = False
        self._heading_level = 0
        self._heading_text: list[str] = []

    def start(self, tag: str | bytes, attrib: Mapping[str | bytes, str | bytes]) -> None:
        tag = _str(tag)
        if tag == "title":
            self._in_title = True
        elif tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif self._hidden:
            return
        elif tag in _HEADING_TAGS:
            self._heading_level = _HEADING_TAGS[tag]
            self._heading_text = []
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in {"p", "div", "section", "article"} else "\n")

    def end(self, tag: str | bytes) -> None:
        tag = _str(tag)
        if tag == "title":
            self._in_title = False
        elif tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _HEADING_TAGS and self._heading_level:
            # Collapsed as a whole: "Restore <em>Velero</em> backups" keeps its spaces.
            text = " ".join("".join(self._heading_text).split())
            if text:
                self.parts.append(f"\n\n{'#' * self._heading_level} {text}\n\n")
                if self._heading_level == 1 and not self.heading:
                    self.heading = text
            self._heading_level = 0

    def data(self, data: str | bytes) -> None:
        data = _str(data)
        if self._in_title:
            self.title += data
        elif self._hidden:
            return
        elif self._heading_level:
            self._heading_text.append(data)
        else:
            self.parts.append(data)

    def comment(self, text: str | bytes) -> None:
        return None

    def close(self) -> None:
        return None


def _str(value: str | bytes) -> str:
    """lxml hands a target ``str`` for text it was fed as ``str``; bytes only in theory."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def html_document(html: str, *, fallback_title: str) -> Document:
    target = _HtmlText()
    parser = etree.HTMLParser(target=target, recover=True, no_network=True)
    parser.feed(html)
    parser.close()
    text = "".join(target.parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    title = " ".join(target.title.split()) or target.heading or fallback_title
    return Document(title=title, text=text)


def markdown_title(lines: Sequence[str]) -> str:
    in_code = False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        elif not in_code and (match := _MD_HEADING.match(line)):
            return match["title"]
    return ""


def rst_title(lines: Sequence[str]) -> str:
    for above, line, below in zip(["", *lines], lines, [*lines[1:], ""], strict=True):
        text = line.strip()
        underlined = bool(_RST_UNDERLINE.match(below)) and not _RST_UNDERLINE.match(line)
        if text and underlined and (len(below.strip()) >= len(text) or _RST_UNDERLINE.match(above)):
            return text
    return ""
