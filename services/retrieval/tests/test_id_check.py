"""Stored ids from before the identifier rule: listed by the check, removed only on request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import ConversationStore, StoredTurn
from bruno_retrieval.id_check import main
from bruno_retrieval.knowledge import KnowledgeStore

if TYPE_CHECKING:
    from conftest import FakeEmbedder, Legacy

MakeSettings = Callable[..., RetrievalSettings]


@pytest.fixture
async def planted(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    legacy: Legacy,
    monkeypatch: pytest.MonkeyPatch,
) -> RetrievalSettings:
    """Valid documents and a conversation, and beside them ids today's rule refuses."""
    settings = make_settings()
    monkeypatch.setenv("BRUNO_LANCEDB_URI", settings.lancedb_uri)
    store = await KnowledgeStore.open(settings, embedder)
    await store.ingest("default", text="Restore notes.\n\nMore notes.", document_id="docs/a.md")
    await store.ingest("homelab", text="Velero notes.", document_id="velero.md")
    store.close()
    conversations = await ConversationStore.open(settings)
    await conversations.append("c1", [StoredTurn("user", "hi")], create=True)
    conversations.close()
    await legacy.document("default", "..", "Planted by a path trick.")
    await legacy.document("homelab", "../collections/default", "Planted too.")
    await legacy.document("default", "x' OR '1'='1", "A quote in its id.")
    await legacy.conversation(".")
    return settings


async def documents(settings: RetrievalSettings, embedder: FakeEmbedder) -> dict[str, int]:
    store = await KnowledgeStore.open(settings, embedder)
    found = {
        f"{collection}/{document.document_id}": document.chunks
        for collection in ("default", "homelab")
        for document in (await store.list_documents(collection)).documents
    }
    store.close()
    return found


def test_the_check_lists_every_stored_id_that_breaks_the_rule_and_nothing_else(
    planted: RetrievalSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 1

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "document '..' in collection 'default'",
        "document \"x' OR '1'='1\" in collection 'default'",
        "document '../collections/default' in collection 'homelab'",
        "conversation '.'",
    ]
    assert "4 stored ids break the identifier rule" in err


async def test_the_check_changes_nothing_unless_asked_to_delete(
    planted: RetrievalSettings, embedder: FakeEmbedder
) -> None:
    before = await documents(planted, embedder)

    await asyncio.to_thread(main, [])  # the command runs its own event loop

    assert await documents(planted, embedder) == before
    assert set(before) == {
        "default/..",
        "default/docs/a.md",
        "default/x' OR '1'='1",
        "homelab/../collections/default",
        "homelab/velero.md",
    }


async def test_delete_removes_exactly_the_listed_documents_and_conversations(
    planted: RetrievalSettings, embedder: FakeEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await documents(planted, embedder)

    assert await asyncio.to_thread(main, ["--delete"]) == 0

    # The quoted id's delete touched its own row only; every chunk of the others is still there.
    assert await documents(planted, embedder) == {
        "default/docs/a.md": before["default/docs/a.md"],
        "homelab/velero.md": before["homelab/velero.md"],
    }
    conversations = await ConversationStore.open(planted)
    assert [t.content for t in (await conversations.get("c1")).turns] == ["hi"]
    conversations.close()
    capsys.readouterr()
    assert await asyncio.to_thread(main, []) == 0
    assert capsys.readouterr().out == ""


def test_a_database_without_anything_stored_passes(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUNO_LANCEDB_URI", make_settings().lancedb_uri)

    assert main([]) == 0
