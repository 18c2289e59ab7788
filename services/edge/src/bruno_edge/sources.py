"""The sources of an answer written into its text, for chat clients that show only the text.

Open WebUI, LangChain, the ``llm`` CLI and most other OpenAI clients drop fields they do not
know, so the structured ``citations`` never reach their users and the answer's ``[n]`` markers
point at nothing. So, by default, the OpenAI surface ends an answer with the passages it cites,
numbered like the markers, as a Markdown list every chat UI renders (a plain terminal reads it
as well):

    Restore with velero restore create [1].

    Sources:
    - [1] Velero — runbooks/velero.md
    - [2] [Flux](https://fluxcd.io/flux/)
    - [3] UPS 1500 manual — ups-manual.pdf, p. 12

A client that sends the earlier turns back sends the list back too; :func:`without_sources`
takes it off again, so neither the rewrite nor the model reads stale sources as conversation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bruno_edge.pages import page_label
from bruno_edge.schemas import Citation

HEADING = "Sources:"
_SEPARATOR = f"\n\n{HEADING}\n"
_LINK_TEXT_SPECIALS = re.compile(r"([\[\]\\])")
_URL = re.compile(r"^https?://\S+$")


def sources_text(citations: Sequence[Citation]) -> str:
    """The block to append to an answer: the cited passages, by marker; empty when none is."""
    cited = sorted((c for c in citations if c.cited), key=lambda c: c.marker)
    if not cited:
        return ""
    return _SEPARATOR + "\n".join(f"- [{c.marker}] {_describe(c)}" for c in cited)


def _describe(citation: Citation) -> str:
    title = " ".join((citation.title or citation.document_id).split())
    source = citation.source.strip()
    if _URL.match(source):
        text = _LINK_TEXT_SPECIALS.sub(r"\\\1", page_label(title, citation.page))
        return f"[{text}](<{citation.link or source}>)"
    if source and source != title:
        return f"{title} — {page_label(source, citation.page)}"
    return page_label(title, citation.page)


def without_sources(answer: str) -> str:
    """``answer`` without the sources block :func:`sources_text` appended to it."""
    head, found, tail = answer.rpartition(_SEPARATOR)
    if found and all(line.startswith("- [") for line in tail.splitlines()):
        return head
    return answer
