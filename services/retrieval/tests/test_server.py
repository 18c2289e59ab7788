"""Retrieval's wiring: both services served and healthy, a warning at start-up when stored ids
break the identifier rule, and nothing left waiting once stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import check_health, create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import KnowledgeStore
from bruno_retrieval.server import create_server
from bruno_retrieval.servicer import CONVERSATION_SERVICE, SERVICE

if TYPE_CHECKING:
    from conftest import FakeEmbedder, Legacy

MakeSettings = Callable[..., RetrievalSettings]


async def test_both_services_report_serving_once_started(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> None:
    server = await create_server(
        make_settings(retrieval_listen_addr="127.0.0.1:0", grpc_grace_seconds=0), embedder=embedder
    )
    port = await server.start()
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            for service in (SERVICE, CONVERSATION_SERVICE):
                assert await check_health(channel, service.full_name) == "SERVING"
    finally:
        await server.stop()


def quiet_timers() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "_when_quiet" in repr(task.get_coro())
    ]


async def test_stopping_the_server_ends_a_quiet_optimize_that_still_waits(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> None:
    server = await create_server(
        make_settings(
            retrieval_listen_addr="127.0.0.1:0", grpc_grace_seconds=0, optimize_quiet_seconds=3600
        ),
        embedder=embedder,
    )
    port = await server.start()
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.IngestDocument(
                retrieval_pb2.IngestDocumentRequest(document_id="a", text="Velero runs nightly.")
            )
        waiting = quiet_timers()
        assert len(waiting) == 1  # an hour to wait: it would outlive the server
    finally:
        await server.stop()

    # A guard against hanging, not a speed requirement: a timer left alone waits an hour.
    await asyncio.wait(waiting, timeout=10)
    assert all(timer.cancelled() for timer in waiting)


async def test_start_up_warns_of_stored_ids_that_break_the_identifier_rule(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    legacy: Legacy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(retrieval_listen_addr="127.0.0.1:0", grpc_grace_seconds=0)
    store = await KnowledgeStore.open(settings, embedder)
    await store.ingest("default", text="Velero notes.", document_id="velero.md")
    store.close()
    await legacy.document("default", "..", "Planted by a path trick.")

    with caplog.at_level(logging.WARNING, logger="bruno_retrieval.server"):
        server = await create_server(settings, embedder=embedder)
    await server.stop()

    [warning] = [r for r in caplog.records if r.name == "bruno_retrieval.server"]
    assert "bruno-retrieval-check-ids" in warning.getMessage()
    assert (warning.count, warning.first) == (1, "document '..' in collection 'default'")  # type: ignore[attr-defined]


async def test_a_database_whose_ids_all_follow_the_rule_starts_without_a_warning(
    make_settings: MakeSettings, embedder: FakeEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(retrieval_listen_addr="127.0.0.1:0", grpc_grace_seconds=0)
    store = await KnowledgeStore.open(settings, embedder)
    await store.ingest("default", text="Velero notes.", document_id="docs/velero.md")
    store.close()

    with caplog.at_level(logging.WARNING, logger="bruno_retrieval.server"):
        server = await create_server(settings, embedder=embedder)
    await server.stop()

    assert [r for r in caplog.records if r.name == "bruno_retrieval.server"] == []
