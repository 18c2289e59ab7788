"""The keyword index: what operators type is found, and an index built the old way is rebuilt
in the background while searches go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import lancedb
import pytest
from lancedb.index import FTS

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import FusionConfig, KnowledgeStore, SearchMode
from bruno_retrieval.knowledge.keywords import is_current, text_index

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeSettings = Callable[..., RetrievalSettings]

UPS = "The homelab UPS is an APC SMT1500 that gives 20 minutes of runtime."
DISTRACTORS = {
    "backup": "Back up the NAS every night; set it up before the first run. Backups go offsite.",
    "network": "The router at 10.0.30.1 serves VLAN 30; the switch at 10.0.20.2 serves VLAN 20.",
    "upgrade": "k3s v1.30.4 is out; the cluster stays on v1.29.9 until the NAS is patched.",
    "power": "The PDU in the rack gives the servers 16 A; runtime logs go to Loki.",
}
DOCUMENTS = {
    "ups": UPS,
    "gateway": "The management VLAN's gateway is 10.0.20.1; only admins reach it over SSH.",
    "k3s": "Cluster alpha runs k3s v1.31.2 and upgrades after the backup has finished.",
    **DISTRACTORS,
}


async def keyword_hits(store: KnowledgeStore, query: str) -> list[str]:
    result = await store.search("default", query, top_k=3, mode=SearchMode.TEXT)
    return [hit.document_id for hit in result.hits]


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("UPS", "ups"),
        ("How long does the UPS last?", "ups"),
        ("ups", "ups"),
        ("SMT1500", "ups"),
        ("smt1500 runtime", "ups"),
        ("Which host is 10.0.20.1?", "gateway"),
        ("10.0.20.1", "gateway"),
        ("v1.31.2", "k3s"),
        ("What runs k3s v1.31.2?", "k3s"),
    ],
)
async def test_keyword_search_finds_acronyms_models_addresses_and_versions_first(
    store: KnowledgeStore, query: str, document: str
) -> None:
    for document_id, text in DOCUMENTS.items():
        await store.ingest("default", text=text, document_id=document_id)

    assert (await keyword_hits(store, query))[0] == document


async def test_hybrid_search_weighs_its_two_legs_for_the_query_it_answers(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    weighed: list[str] = []
    for_query = FusionConfig.for_query

    def spy(self: FusionConfig, query: str) -> FusionConfig:
        weighed.append(query)
        return for_query(self, query)

    monkeypatch.setattr(FusionConfig, "for_query", spy)
    await store.ingest("default", text=UPS, document_id="ups")

    found = await store.search("default", "SMT1500 runtime", top_k=1, mode=SearchMode.HYBRID)

    assert weighed == ["SMT1500 runtime"]
    assert found.hits[0].document_id == "ups"


async def test_the_keyword_index_is_built_with_this_releases_configuration(
    store: KnowledgeStore, make_settings: MakeSettings
) -> None:
    await store.ingest("default", text=UPS, document_id="ups")

    db = await lancedb.connect_async(make_settings().lancedb_uri)
    index = await text_index(await db.open_table("default"))
    assert index is not None
    assert is_current(index.index_details)
    assert not is_current(index.index_details, FTS())


async def test_an_old_keyword_index_is_rebuilt_in_the_background_while_searches_go_on(
    make_settings: MakeSettings, embedder: FakeEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    first = await KnowledgeStore.open(settings, embedder)
    for n in range(60):
        await first.ingest("default", text=f"Runbook {n}: restart service{n} after patching.")
    await first.ingest("default", text=UPS, document_id="ups")
    await first.wait_for_background()
    first.close()
    # A collection from an older release: LanceDB's default index, which drops "UPS".
    db = await lancedb.connect_async(settings.lancedb_uri)
    table = await db.open_table("default")
    await table.create_index("text", config=FTS(), replace=True)

    reopened = await KnowledgeStore.open(settings, embedder)
    try:
        # The first search opens the table, finds the old index and starts the rebuild.
        assert await keyword_hits(reopened, "SMT1500 runtime") == ["ups"]
        rebuild = asyncio.ensure_future(reopened.wait_for_background())
        during = []
        while not rebuild.done():
            during.append(await keyword_hits(reopened, "SMT1500 runtime"))
        await rebuild
        after = await keyword_hits(reopened, "UPS")
    finally:
        reopened.close()

    assert during, "no search ran while the index was rebuilt"
    assert all(hits[:1] == ["ups"] for hits in during)
    assert after[:1] == ["ups"]
    table = await db.open_table("default")
    index = await text_index(table)
    assert index is not None
    assert is_current(index.index_details)
    assert any("rebuilding the keyword index" in r.getMessage() for r in caplog.records)
