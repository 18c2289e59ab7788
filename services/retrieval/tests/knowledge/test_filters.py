"""Search filters: exact matches on columns and metadata, in every search mode, whatever
quotes a value holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bruno_core import InvalidInput
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    KnowledgeStore,
    SearchMode,
)
from bruno_retrieval.knowledge.filters import filter_terms

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


@pytest.fixture
async def tagged(store: KnowledgeStore) -> KnowledgeStore:
    await store.ingest(
        "default",
        text="Velero restores volumes from the nightly snapshot.",
        document_id="velero.md",
        title="Velero",
        source="runbooks/velero.md",
        metadata={"team": "ops", "tags": "backup, k8s"},
    )
    await store.ingest(
        "default",
        text="Velero schedules are defined per namespace.",
        document_id="schedules.md",
        title="Schedules",
        source="runbooks/schedules.md",
        metadata={"team": "dev's", "tags": "k8s"},
    )
    return store


@pytest.mark.parametrize("mode", list(SearchMode))
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"team": "ops"}, ["velero.md"]),
        ({"team": "dev's"}, ["schedules.md"]),
        ({"tags": "backup"}, ["velero.md"]),
        ({"tags": "k8s"}, ["schedules.md", "velero.md"]),
        ({"tags": "backup, k8s"}, ["velero.md"]),
        ({"source": "runbooks/schedules.md"}, ["schedules.md"]),
        ({"title": "Velero"}, ["velero.md"]),
        ({"document_id": "velero.md", "tags": "k8s"}, ["velero.md"]),
        ({"team": "ops", "tags": "nope"}, []),
        ({"team": "op"}, []),
        ({"missing": "x"}, []),
    ],
)
async def test_filters_keep_only_matching_documents_in_every_mode(
    tagged: KnowledgeStore, mode: SearchMode, filters: dict[str, str], expected: list[str]
) -> None:
    result = await tagged.search("default", "velero", top_k=10, mode=mode, filters=filters)

    assert sorted({hit.document_id for hit in result.hits}) == expected


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_a_filter_value_is_matched_literally_whatever_quotes_it_holds(
    tagged: KnowledgeStore, mode: SearchMode
) -> None:
    # Ids cannot hold quotes (bruno_core.contract); titles and sources can.
    await tagged.ingest(
        "default", text="Velero quoting notes.", document_id="quoting.md", title="it\\'s"
    )

    # A value crafted to close the string literal must not widen the filter.
    for value in ("x\\' OR true) --", "x' OR true) --", "x\\"):
        for key in ("document_id", "title"):
            crafted = {"source": "runbooks/velero.md", key: value}
            assert (
                await tagged.search("default", "velero", top_k=5, mode=mode, filters=crafted)
            ).hits == []
    exact = await tagged.search(
        "default", "velero", top_k=5, mode=mode, filters={"title": "it\\'s"}
    )
    assert [hit.document_id for hit in exact.hits] == ["quoting.md"]


async def test_bad_filters_are_invalid_input(tagged: KnowledgeStore) -> None:
    for filters in ({"": "x"}, {f"k{n}": "v" for n in range(17)}, {"k\n": "v"}):
        with pytest.raises(InvalidInput):
            await tagged.search("default", "velero", top_k=5, filters=filters)


def test_filter_terms_include_each_item_of_a_comma_separated_value() -> None:
    assert filter_terms({"tags": "a, b", "x": "1"}) == [
        '["tags", "a"]',
        '["tags", "a, b"]',
        '["tags", "b"]',
        '["x", "1"]',
    ]
