"""Hybrid fusion of a vector and a keyword ranking, for every method."""

from __future__ import annotations

import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Fusion, FusionConfig, SearchHit, fuse
from bruno_retrieval.knowledge.fusion import identifiers

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
