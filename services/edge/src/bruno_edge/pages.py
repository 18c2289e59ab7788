"""Where a passage of a paged document (a PDF) is: a link that opens its page and the words
that name it, so an answer can say "manual.pdf, p. 12".

    page_link("docs/ups-manual.pdf", 12)          # "docs/ups-manual.pdf#page=12"
    page_link("https://example.org/ups.pdf", 3)   # "https://example.org/ups.pdf#page=3"
    page_label("ups-manual.pdf", 12)              # "ups-manual.pdf, p. 12"

``#page=N`` is the PDF open parameter every common viewer honours (browsers' built-in viewers,
Acrobat, Evince, Okular). A source that is neither a URL nor a path (free text someone typed)
gets no link, and neither does one that already has a fragment, since a second ``#`` would
be read as part of the first.
"""

from __future__ import annotations

import re

# A URL a browser opens, or something without a scheme (a file name or path).
_URL = re.compile(r"^(?:https?|file)://\S+$", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def page_link(source: str, page: int | None) -> str | None:
    """``source#page=N`` when the passage has a page and its source is a URL or a path."""
    source = source.strip()
    if not page or not source or "#" in source:
        return None
    if _URL.match(source) or not _SCHEME.match(source):
        return f"{source}#page={page}"
    return None


def page_label(name: str, page: int | None) -> str:
    """``name``, followed by its page when it has one."""
    return f"{name}, p. {page}" if page else name
