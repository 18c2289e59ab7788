"""The keyword (full-text, BM25) index of a collection's chunk text: how it cuts text into
terms, and bringing an index made another way up to date.

    keywords = KeywordIndexes(tasks)
    await keywords.adopt("default", table)   # at open: create it, or rebuild a stale one
    await ensure_text_index(table)           # a new table: create it
    search = await keywords.query(table, "Which host is 10.0.20.1?")   # for nearest_to_text

LanceDB tokenizes a query with the configuration of the index it searches, so the query side
is always processed exactly as the text was. The configuration (:data:`TEXT_INDEX`) was chosen
by measurement on Cranfield, the paraphrase corpus and the identifier corpus
(docs/benchmarks.md): LanceDB's defaults but no stemming. The English stemmer turns "UPS" into
"up", a stop word, so the default index could never find a UPS (and "UPS" would match
every "back up" if stop words were kept); without stemming the identifier corpus answers best
in text mode (nDCG@10 0.984 against 0.968) and Cranfield's hybrid ranking is unchanged
(0.465), though text mode alone loses 2% there. The simple tokenizer splits at
punctuation, so "10.0.20.1", "v1.31.2" and "CVE-2024-3094" become runs of short terms that
each match; the index keeps term positions, so a query naming such an identifier also asks
for its terms in a row (a phrase, :meth:`KeywordIndexes.query`), and the passage holding
"10.0.20.1" ranks above one holding "10.0.30.1" and "10.0.20.2". Still folded away: an acronym
that lower-cases to an English stop word ("IT", "AS"); keeping stop words would find it no
better (every "it" matches) and costs Cranfield 4% in text mode.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from lancedb.index import FTS
from lancedb.query import BooleanQuery, FullTextQuery, MatchQuery, Occur, PhraseQuery

from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.commit_conflicts import retry_commit_conflicts
from bruno_retrieval.knowledge.fusion import identifiers

log = logging.getLogger(__name__)

TEXT_COLUMN = "text"

TEXT_INDEX = FTS(stem=False, with_position=True)

# An identifier that the tokenizer cuts into several terms: "10.0.20.1", "v1.31.2".
_SPLIT = re.compile(r"\w\W+\w")

# FTS fields with the names LanceDB reports them under in an index's details, where they
# differ; the build-only ones (memory, workers) are not stored and not compared.
_DETAIL_NAMES = {"ngram_min_length": "min_ngram_length", "ngram_max_length": "max_ngram_length"}
_BUILD_ONLY = {"memory_limit", "num_workers", "document_granularity"}


# LanceDB's queries are pydantic dataclasses whose keyword-only defaults mypy does not see.
def _match(text: str) -> FullTextQuery:
    return MatchQuery(text, TEXT_COLUMN)  # type: ignore[call-arg]


def _phrase(text: str) -> FullTextQuery:
    return PhraseQuery(text, TEXT_COLUMN)  # type: ignore[call-arg]


def wanted_details(config: FTS = TEXT_INDEX) -> dict[str, Any]:
    """The index details an index built with ``config`` reports (``list_indices``)."""
    return {
        _DETAIL_NAMES.get(name, name): value
        for name, value in dataclasses.asdict(config).items()
        if name not in _BUILD_ONLY
    }


def is_current(details: dict[str, Any], config: FTS = TEXT_INDEX) -> bool:
    """Whether an index with these details tokenizes as ``config`` does."""
    return all(details.get(name) == value for name, value in wanted_details(config).items())


async def text_index(table: Any) -> Any | None:
    """The table's full-text index on the chunk text (LanceDB's ``IndexConfig``), if any."""
    for index in await table.list_indices():
        if index.columns == [TEXT_COLUMN] and index.index_type == "FTS":
            return index
    return None


async def ensure_text_index(table: Any) -> None:
    """Give a table without one the keyword index (a new or reindexed collection)."""
    if await text_index(table) is None:
        # Rows written after it are searched unindexed until the next optimize folds them
        # in, so keyword search is complete either way.
        await table.create_index(TEXT_COLUMN, config=TEXT_INDEX)


class KeywordIndexes:
    """Brings the keyword index of each table opened up to :data:`TEXT_INDEX`.

    An index made with another configuration (an older release's) is rebuilt in the
    background; LanceDB commits the replacement in one step once it is built, so searches
    go on with the old index meanwhile and with the new one after. A failed rebuild is logged
    and tried again the next time the table is opened."""

    def __init__(self, tasks: BackgroundTasks) -> None:
        self._tasks = tasks
        self._current: dict[str, bool] = {}  # table name -> its index is TEXT_INDEX

    async def adopt(self, collection: str, table: Any) -> None:
        """Create the index a table lacks; start rebuilding one made another way."""
        index = await text_index(table)
        if index is None:
            await ensure_text_index(table)
        elif not is_current(index.index_details or {}):
            self._current[table.name] = False
            self._tasks.spawn(self._rebuild(collection, table))

    async def query(self, table: Any, text: str) -> FullTextQuery:
        """The keyword search for ``text`` in ``table``: its terms, and each identifier the
        tokenizer splits as a phrase too, where the table's index keeps positions (an index
        not yet rebuilt answers the terms alone)."""
        terms: FullTextQuery = _match(text)
        phrases = [term for term in identifiers(text) if _SPLIT.search(term)]
        if not phrases or not await self._has_positions(table):
            return terms
        either = [(Occur.SHOULD, terms)]
        either += [(Occur.SHOULD, _phrase(phrase)) for phrase in phrases]
        return BooleanQuery(either)

    def forget(self, table_name: str) -> None:
        self._current.pop(table_name, None)

    async def _has_positions(self, table: Any) -> bool:
        if table.name not in self._current:
            index = await text_index(table)
            details = index.index_details if index is not None else None
            self._current[table.name] = details is not None and is_current(details)
        return self._current[table.name]

    async def _rebuild(self, collection: str, table: Any) -> None:
        log.warning(
            "rebuilding the keyword index as this release tokenizes text; keyword search "
            "uses the old index until the new one is committed",
            extra={"collection": collection},
        )
        try:
            # A compaction committing meanwhile preempts the build, which is then done again.
            await retry_commit_conflicts(
                table,
                lambda: table.create_index(TEXT_COLUMN, config=TEXT_INDEX, replace=True),
                "rebuilding the keyword index",
            )
        except Exception:
            log.exception(
                "rebuilding the keyword index failed; it is tried again when the collection "
                "is next opened",
                extra={"collection": collection},
            )
            return
        self._current[table.name] = True
        log.info("keyword index rebuilt", extra={"collection": collection})
