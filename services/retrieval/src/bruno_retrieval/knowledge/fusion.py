"""How hybrid search combines its vector ranking and its keyword (BM25) ranking into one.

config = FusionConfig.from_settings(settings)   # BRUNO_HYBRID_FUSION, _VECTOR_WEIGHT
hits = fuse(by_vector, by_text, top_k=5, config=config.for_query("SMT1500 runtime"))
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections import defaultdict
from enum import StrEnum

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge.results import SearchHit

# A term operators type that embeddings blur: it holds a digit (SMT1500, 10.0.20.1, v1.31.2,
# CVE-2024-3094, 8443), two capitals (UPS, NAS, iDRAC) or a dot, colon, slash or underscore
# between letters (db.lan, kube_apiserver). Plain hyphenated words ("two-dimensional") are
# not: English prose is full of them.
_TERM = re.compile(r"\w+(?:[.:/_+-]\w+)*")
_IDENTIFIER = re.compile(r"\d|[A-Z].*[A-Z]|\w\w[.:/_]\w\w")
# Reciprocal rank fusion constant from Cormack et al. (2009); damps the weight of top ranks.
_RRF_K = 60


class Fusion(StrEnum):
    """How hybrid search combines its vector and text rankings (see :func:`fuse`)."""

    COSINE = "cosine"  # the vector leg's raw cosine similarity plus the text leg scaled to [0, 1]
    RRF = "rrf"  # weighted reciprocal rank fusion
    MINMAX = "minmax"  # weighted sum of scores scaled to [0, 1] per leg
    ZSCORE = "zscore"  # weighted sum of standardised scores per leg


@dataclasses.dataclass(frozen=True, slots=True)
class FusionConfig:
    """The fusion hybrid search uses; ``vector_weight`` is the vector leg's share (0..1).

    The default (the settings') was chosen by ``make bench-retrieval`` on Cranfield and on a
    paraphrase corpus (docs/benchmarks.md): 0.92 x cosine similarity + 0.08 x the min-max
    scaled BM25 score beats both single modes on Cranfield by 7% and stays within noise of
    vector search on paraphrases, where equal-weight RRF loses a third. Its scores keep the
    cosine's absolute scale (about 0..1), so one relevance threshold means the same for every
    query."""

    method: Fusion
    vector_weight: float
    # The vector leg's share for a query naming an identifier (see :meth:`for_query`);
    # None: ``vector_weight`` for every query.
    identifier_vector_weight: float | None = None

    def __post_init__(self) -> None:
        for weight in (self.vector_weight, self.identifier_vector_weight):
            if weight is not None and not 0.0 <= weight <= 1.0:
                raise ValueError("vector weights must be between 0 and 1")

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> FusionConfig:
        return cls(
            Fusion(settings.hybrid_fusion),
            settings.hybrid_vector_weight,
            settings.hybrid_identifier_vector_weight,
        )

    def for_query(self, query: str) -> FusionConfig:
        """The fusion for ``query``: the keyword leg weighs more when the query names an
        identifier (:func:`identifiers`), whose exact match the keyword index finds and an
        embedding blurs ("SMT1500" is near every UPS model).

        With the defaults (0.92, or 0.80 for such a query; docs/benchmarks.md) a chunk holding
        every identifier asked for gets at least 0.2 from the keyword leg alone, above the
        edge's relevance threshold (0.15): an exact match is never dropped as irrelevant."""
        weight = self.identifier_vector_weight
        if weight is None or not identifiers(query):
            return dataclasses.replace(self, identifier_vector_weight=None)
        return dataclasses.replace(self, vector_weight=weight, identifier_vector_weight=None)


def identifiers(query: str) -> list[str]:
    """The terms of ``query`` that look like identifiers: versions, addresses, hostnames,
    model numbers, error codes, acronyms.

    >>> identifiers("Why does nas-07 at 10.0.20.5 lose its NFS mount?")
    ['nas-07', '10.0.20.5', 'NFS']
    """
    return [term for term in _TERM.findall(query) if _IDENTIFIER.search(term)]


def fuse(
    by_vector: list[SearchHit], by_text: list[SearchHit], top_k: int, config: FusionConfig
) -> list[SearchHit]:
    """Combine a vector and a text ranking of the same collection into one of ``top_k``.

    COSINE: w x cosine similarity + (1 - w) x the text score scaled to [0, 1] (best = 1); a
    chunk the vector leg did not return gets that leg's lowest cosine, one the text leg did
    not return 0. RRF: score = w / (60 + vector rank) + (1 - w) / (60 + text rank). MINMAX:
    both legs scaled to [0, 1], summed with weights w and 1 - w; a chunk missing from a leg
    gets 0 there. ZSCORE: the same with scores standardised per leg, a missing chunk getting
    its leg's lowest value. ``w`` is ``config.vector_weight``.

    The two legs are separate reads, so a replace may commit between them; a document seen
    in two versions keeps only the vector leg's version, so no answer mixes versions."""
    version = {hit.document_id: hit.content_hash for hit in by_vector}
    by_text = [hit for hit in by_text if version.get(hit.document_id) in (None, hit.content_hash)]
    weight = config.vector_weight
    legs = ((by_vector, weight), (by_text, 1.0 - weight))
    scores: defaultdict[str, float] = defaultdict(float)
    hits: dict[str, SearchHit] = {}
    for ranking in (by_vector, by_text):
        for hit in ranking:
            hits.setdefault(hit.chunk_id, hit)
    for ranking, leg_weight in legs:
        if not ranking:
            continue
        if config.method is Fusion.RRF:
            for rank, hit in enumerate(ranking, start=1):
                scores[hit.chunk_id] += leg_weight / (_RRF_K + rank)
            continue
        raw = ranking is by_vector and config.method is Fusion.COSINE
        values = [hit.score for hit in ranking]
        normalised = values if raw else _normalise(values, config.method)
        # A chunk beyond a leg's candidates scores at most the leg's last one (cosine, z-score)
        # or nothing there (min-max).
        floor = 0.0 if config.method is Fusion.MINMAX else min(normalised)
        if config.method is Fusion.COSINE and not raw:
            floor = 0.0
        present = {hit.chunk_id: value for hit, value in zip(ranking, normalised, strict=True)}
        for chunk_id in hits:
            scores[chunk_id] += leg_weight * present.get(chunk_id, floor)
    best = sorted(hits, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:top_k]
    return [dataclasses.replace(hits[chunk_id], score=scores[chunk_id]) for chunk_id in best]


def _normalise(values: list[float], method: Fusion) -> list[float]:
    if method in (Fusion.MINMAX, Fusion.COSINE):
        low, high = min(values), max(values)
        if high - low < 1e-12:
            return [1.0] * len(values)
        return [(value - low) / (high - low) for value in values]
    if len(values) < 2:
        return [0.0] * len(values)
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    return [(value - mean) / spread if spread > 1e-12 else 0.0 for value in values]
