"""Retrieval's wiring: both services served and healthy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bruno_core import check_health, create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.server import create_server
from bruno_retrieval.servicer import CONVERSATION_SERVICE, SERVICE

if TYPE_CHECKING:
    from conftest import FakeEmbedder

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
