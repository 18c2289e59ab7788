"""Sources written into an answer's text, and taken off again when the client sends it back."""

from __future__ import annotations

from bruno_edge.pages import page_link
from bruno_edge.schemas import Citation
from bruno_edge.sources import sources_text, without_sources


def citation(
    marker: int, *, cited: bool = True, page: int | None = None, **fields: str
) -> Citation:
    values = {"document_id": f"doc{marker}", "title": "", "source": "", **fields}
    return Citation(
        marker=marker,
        chunk_id=f"c{marker}",
        score=1.0,
        text="t",
        cited=cited,
        page=page,
        link=page_link(values["source"], page),
        **values,
    )


def test_cited_passages_are_listed_by_marker_with_title_and_source() -> None:
    block = sources_text(
        [
            citation(2, title="Velero", source="runbooks/velero.md"),
            citation(1, title="Flux  [docs]", source="https://fluxcd.io/a_(b)"),
            citation(3, cited=False, title="Unused"),
            citation(4),
        ]
    )

    assert block == (
        "\n\nSources:\n"
        "- [1] [Flux \\[docs\\]](<https://fluxcd.io/a_(b)>)\n"
        "- [2] Velero — runbooks/velero.md\n"
        "- [4] doc4"
    )


def test_a_passage_of_a_pdf_is_listed_with_its_page_and_links_to_it() -> None:
    block = sources_text(
        [
            citation(1, title="UPS 1500 manual", source="ups-manual.pdf", page=12),
            citation(2, title="Router", source="https://example.org/router.pdf", page=3),
            citation(3, title="Scanned notes", page=7),
        ]
    )

    assert block == (
        "\n\nSources:\n"
        "- [1] UPS 1500 manual — ups-manual.pdf, p. 12\n"
        "- [2] [Router, p. 3](<https://example.org/router.pdf#page=3>)\n"
        "- [3] Scanned notes, p. 7"
    )


def test_an_answer_citing_nothing_gets_no_sources_block() -> None:
    assert sources_text([citation(1, cited=False)]) == ""


def test_the_block_comes_off_an_answer_sent_back_and_nothing_else_does() -> None:
    answer = "Restore it [1]."
    mentions = "Sources: none needed.\n\nSources:\nthe manual, page 3"

    assert without_sources(answer + sources_text([citation(1)])) == answer
    assert without_sources(mentions) == mentions
