"""Hybrid fusion of a vector and a keyword ranking, for every method."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Fusion, FusionConfig, SearchHit, fuse
from bruno_retrieval.knowledge.fusion import identifiers
from bruno_retrieval.knowledge.schema import Ranking

DEFAULT = FusionConfig.from_settings(RetrievalSettings.model_construct())


def hit(document_id: str, score: float, index: int = 0, version: str = "h") -> SearchHit:
    return SearchHit(document_id, f"{document_id}:{index}", index, "", "", "", "", score, version)


@pytest.mark.parametrize("method", list(Fusion))
def test_every_fusion_puts_a_chunk_both_legs_rank_first_on_top(method: Fusion) -> None:
    by_vector = [hit("a", 0.9), hit("b", 0.5), hit("c", 0.1)]
    by_text = [hit("a", 12.0), hit("d", 3.0), hit("b", 1.0)]

    fused = fuse(by_vector, by_text, 3, FusionConfig(method, 0.6))

    assert fused[0].chunk_id == "a:0"
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_the_default_fusion_keeps_the_cosine_scale_plus_a_keyword_bonus() -> None:
    by_vector = [hit("a", 0.8), hit("b", 0.5), hit("c", 0.2)]
    by_text = [hit("b", 9.0), hit("d", 5.0), hit("a", 1.0)]

    fused = {h.chunk_id: h.score for h in fuse(by_vector, by_text, 4, DEFAULT)}

    assert fused["a:0"] == pytest.approx(0.92 * 0.8 + 0.08 * 0.0)
    assert fused["b:0"] == pytest.approx(0.92 * 0.5 + 0.08 * 1.0)
    assert fused["c:0"] == pytest.approx(0.92 * 0.2)
    assert fused["d:0"] == pytest.approx(0.92 * 0.2 + 0.08 * 0.5)  # missing: the lowest cosine


def test_minmax_fusion_scores_lie_between_zero_and_one() -> None:
    fused = fuse(
        [hit("a", 0.9), hit("b", 0.2)],
        [hit("c", 7.0), hit("b", 2.0)],
        3,
        FusionConfig(Fusion.MINMAX, 0.6),
    )

    assert fused[0].score == pytest.approx(0.6)  # a: top of the vector leg only
    assert all(0.0 <= h.score <= 1.0 for h in fused)


def test_the_vector_weight_decides_between_legs_that_disagree() -> None:
    by_vector, by_text = [hit("v", 0.9), hit("t", 0.1)], [hit("t", 9.0), hit("v", 1.0)]

    assert fuse(by_vector, by_text, 1, FusionConfig(Fusion.MINMAX, 0.8))[0].chunk_id == "v:0"
    assert fuse(by_vector, by_text, 1, FusionConfig(Fusion.MINMAX, 0.2))[0].chunk_id == "t:0"


def test_a_fusion_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="vector weights"):
        FusionConfig(Fusion.RRF, 1.5)
    with pytest.raises(ValueError, match="vector weights"):
        FusionConfig(Fusion.COSINE, 0.9, -0.1)


def test_rank_fusion_favours_chunks_both_rankings_agree_on() -> None:
    by_vector = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.7)]
    by_text = [hit("b", 9.0), hit("d", 8.0), hit("e", 7.0)]

    fused = fuse(by_vector, by_text, 3, FusionConfig(Fusion.RRF, 0.5))

    assert [h.chunk_id for h in fused] == ["b:0", "a:0", "d:0"]
    assert fused[0].score == pytest.approx(0.5 / 62 + 0.5 / 61)


@pytest.mark.parametrize("method", list(Fusion))
def test_fusion_never_mixes_two_versions_of_a_document(method: Fusion) -> None:
    # A replace committed between the two reads: the text leg saw the older version.
    by_vector = [hit("a", 0.9, 0, "new"), hit("b", 0.5, 0, "v1")]
    by_text = [hit("a", 9.0, 1, "old"), hit("a", 8.0, 0, "old"), hit("b", 7.0, 1, "v1")]

    fused = fuse(by_vector, by_text, 10, FusionConfig(method, 0.5))

    assert {h.content_hash for h in fused if h.document_id == "a"} == {"new"}
    assert {h.chunk_id for h in fused} == {"a:0", "b:0", "b:1"}


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("How long does the UPS last?", ["UPS"]),
        ("What is the runtime of the SMT1500?", ["SMT1500"]),
        ("Which host is 10.0.20.1?", ["10.0.20.1"]),
        ("Upgrade to v1.31.2 first?", ["v1.31.2"]),
        ("Is srv-12 affected by CVE-2024-3094?", ["srv-12", "CVE-2024-3094"]),
        ("What does db.lan resolve to, and is port 8443 open?", ["db.lan", "8443"]),
        ("How do I restore a backup, i.e. roll back a two-dimensional volume?", []),
        ("what are the heat-transfer characteristics of a blunt body", []),
    ],
)
def test_identifiers_are_versions_addresses_codes_and_acronyms_not_prose(
    query: str, found: list[str]
) -> None:
    assert identifiers(query) == found


def test_a_query_naming_an_identifier_gives_the_keyword_leg_more_weight() -> None:
    # The vector leg prefers a chunk about another UPS model; the keyword leg has the exact one.
    by_vector = [hit("other-ups", 0.66), hit("smt1500", 0.55), hit("far", 0.30)]
    by_text = [hit("smt1500", 8.0), hit("other-ups", 2.0)]

    prose = fuse(by_vector, by_text, 3, DEFAULT.for_query("how long does the battery last"))
    named = fuse(by_vector, by_text, 3, DEFAULT.for_query("how long does the SMT1500 last"))

    assert prose[0].document_id == "other-ups"
    assert named[0].document_id == "smt1500"
    # The cosine keeps its absolute scale; a chunk holding the identifier clears the edge's
    # relevance threshold (0.15) on the keyword leg alone.
    assert named[0].score == pytest.approx(0.80 * 0.55 + 0.20 * 1.0)
    assert 0.20 * 1.0 > 0.15


def test_without_an_identifier_weight_every_query_fuses_alike() -> None:
    config = FusionConfig(Fusion.COSINE, 0.92)

    assert config.for_query("SMT1500") == config.for_query("battery") == config


def columns_of(hits: list[SearchHit]) -> Ranking:
    """``hits`` as the columns a search leg reads (metadata as stored, JSON)."""
    names = [field.name for field in dataclasses.fields(SearchHit) if field.name != "score"]
    columns: dict[str, list[Any]] = {name: [getattr(h, name) for h in hits] for name in names}
    columns["metadata"] = [json.dumps(h.metadata) for h in hits]
    return Ranking(columns, [h.score for h in hits])


def full(document_id: str, score: float, index: int = 0, version: str = "h") -> SearchHit:
    return SearchHit(
        document_id,
        f"{document_id}:{index}",
        index,
        f"Title {document_id}",
        f"{document_id}.pdf",
        f"text of {document_id} {index}",
        f"Heading > {index}",
        score,
        version,
        {"team": document_id, "n": str(index)},
        index + 1,
    )


@pytest.mark.parametrize("method", list(Fusion))
@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_columnar_legs_fuse_into_the_same_hits_as_lists_of_hits(method: Fusion, top_k: int) -> None:
    # Every field, score and the order, with a document seen in two versions and a chunk in
    # both legs: the rows a search leg reads column by column give what its hits would.
    by_vector = [full("a", 0.9, 0, "new"), full("b", 0.7), full("c", 0.4, 2), full("b", 0.3, 1)]
    by_text = [full("a", 9.0, 1, "old"), full("d", 6.0), full("b", 4.0), full("e", 1.0, 3)]
    config = FusionConfig(method, 0.7)

    from_lists = fuse(by_vector, by_text, top_k, config)
    from_columns = fuse(columns_of(by_vector), columns_of(by_text), top_k, config)

    assert from_columns == from_lists
    assert len(from_columns) == min(top_k, 6)
    assert from_columns[0].page is not None
    assert from_columns[0].metadata


@pytest.mark.parametrize("method", list(Fusion))
def test_a_columnar_leg_without_rows_leaves_the_other_legs_order(method: Fusion) -> None:
    # A leg that read nothing has no columns at all (LanceDB sent no batch).
    by_text = [full("a", 9.0), full("b", 4.0)]
    config = FusionConfig(method, 0.5)

    assert fuse(Ranking({}, []), Ranking({}, []), 5, config) == []
    fused = fuse(Ranking({}, []), columns_of(by_text), 5, config)
    assert [h.chunk_id for h in fused] == ["a:0", "b:0"]
    assert fused == fuse([], by_text, 5, config)


def test_a_ranking_answers_its_rows_in_order_with_every_field() -> None:
    hits = [full("a", 0.9), full("b", 0.5, 1), full("c", 0.1, 2)]
    ranking = columns_of(hits)

    assert ranking.hits() == hits
    assert ranking.hits(2) == hits[:2]
    assert ranking.hits(10) == hits
    assert ranking.hit(1, 0.25) == dataclasses.replace(hits[1], score=0.25)
    assert Ranking({}, []).hits() == []


def test_a_ranking_from_a_table_before_pages_has_no_page() -> None:
    ranking = columns_of([full("a", 0.9)])
    columns = dict(ranking.columns)
    del columns["page"]

    assert Ranking(columns, ranking.scores).hits()[0].page is None
