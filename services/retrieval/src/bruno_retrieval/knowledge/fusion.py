"""How hybrid search combines its vector ranking and its keyword (BM25) ranking into one.

config = FusionConfig.from_settings(settings)   # BRUNO_HYBRID_FUSION, _VECTOR_WEIGHT
hits = fuse(by_vector, by_text, top_k=5, config=config.for_query("SMT1500 runtime"))
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

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


class Leg(Protocol):
    """A ranking as fusion reads it, best first: each row's chunk, document, document version
    and score, and the row as a hit (a :class:`.schema.Ranking`, or a list of hits)."""

    @property
    def chunk_ids(self) -> Sequence[str]: ...
    @property
    def document_ids(self) -> Sequence[str]: ...
    @property
    def content_hashes(self) -> Sequence[str]: ...
    @property
    def scores(self) -> Sequence[float]: ...
    def hit(self, at: int, score: float) -> SearchHit: ...


class _Hits:
    """A list of hits as a :class:`Leg`."""

    def __init__(self, hits: Sequence[SearchHit]) -> None:
        self._hits = hits
        self.chunk_ids = [hit.chunk_id for hit in hits]
        self.document_ids = [hit.document_id for hit in hits]
        self.content_hashes = [hit.content_hash for hit in hits]
        self.scores = [hit.score for hit in hits]

    def hit(self, at: int, score: float) -> SearchHit:
        return dataclasses.replace(self._hits[at], score=score)


def fuse(
    by_vector: Leg | Sequence[SearchHit],
    by_text: Leg | Sequence[SearchHit],
    top_k: int,
    config: FusionConfig,
) -> list[SearchHit]:
    """Combine a vector and a text ranking of the same collection into one of ``top_k``.

    COSINE: w x cosine similarity + (1 - w) x the text score scaled to [0, 1] (best = 1); a
    chunk the vector leg did not return gets that leg's lowest cosine, one the text leg did
    not return 0. RRF: score = w / (60 + vector rank) + (1 - w) / (60 + text rank). MINMAX:
    both legs scaled to [0, 1], summed with weights w and 1 - w; a chunk missing from a leg
    gets 0 there. ZSCORE: the same with scores standardised per leg, a missing chunk getting
    its leg's lowest value. ``w`` is ``config.vector_weight``.

    The two legs are separate reads, so a replace may commit between them; a document seen
    in two versions keeps only the vector leg's version, so no answer mixes versions. Only the
    ``top_k`` rows answered are made hits (:meth:`Leg.hit`)."""
    vector = _Hits(by_vector) if isinstance(by_vector, Sequence) else by_vector
    text = _Hits(by_text) if isinstance(by_text, Sequence) else by_text
    version = dict(zip(vector.document_ids, vector.content_hashes, strict=True))
    same_version = zip(text.document_ids, text.content_hashes, strict=True)
    kept = [
        at for at, (doc, digest) in enumerate(same_version) if version.get(doc) in (None, digest)
    ]
    weight = config.vector_weight
    # Each leg with the positions of its rows that count, in rank order.
    legs: tuple[tuple[Leg, Sequence[int], float], ...] = (
        (vector, range(len(vector.chunk_ids)), weight),
        (text, kept, 1.0 - weight),
    )
    scores: defaultdict[str, float] = defaultdict(float)
    rows: dict[str, tuple[Leg, int]] = {}  # a chunk -> the leg and position it is answered from
    for leg, positions, _ in legs:
        chunk_ids = leg.chunk_ids
        for at in positions:
            rows.setdefault(chunk_ids[at], (leg, at))
    for number, (leg, positions, leg_weight) in enumerate(legs):
        if not positions:
            continue
        chunk_ids = leg.chunk_ids
        if config.method is Fusion.RRF:
            for rank, at in enumerate(positions, start=1):
                scores[chunk_ids[at]] += leg_weight / (_RRF_K + rank)
            continue
        raw = number == 0 and config.method is Fusion.COSINE
        leg_scores = leg.scores
        values = [leg_scores[at] for at in positions]
        normalised = values if raw else _normalise(values, config.method)
        # A chunk beyond a leg's candidates scores at most the leg's last one (cosine, z-score)
        # or nothing there (min-max).
        floor = 0.0 if config.method is Fusion.MINMAX else min(normalised)
        if config.method is Fusion.COSINE and not raw:
            floor = 0.0
        present = {chunk_ids[at]: value for at, value in zip(positions, normalised, strict=True)}
        for chunk_id in rows:
            scores[chunk_id] += leg_weight * present.get(chunk_id, floor)
    best = sorted(rows, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:top_k]
    return [rows[chunk_id][0].hit(rows[chunk_id][1], scores[chunk_id]) for chunk_id in best]


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
