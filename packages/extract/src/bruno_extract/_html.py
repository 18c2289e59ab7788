"""HTML's visible text, with headings turned into Markdown headings so chunks still carry
their section path.

    document = html_document("<h1>Restore</h1><p>Run velero.</p>", fallback_title="page.html")
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

from bruno_extract._document import Document

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "pre", "section", "article", "table", "ul", "ol", "blockquote"}
)
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head"})


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
    return Document.of_text(title, text)
