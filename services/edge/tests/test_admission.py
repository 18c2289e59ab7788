"""Admission: each key's rate limit and concurrent chats (429 with Retry-After in every
dialect), the throttle on failed keys per address, load shed early (503 with Retry-After) when
a kind of work has no slot in time, and a draining edge refusing new work."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from limits import parse
from limits.strategies import MovingWindowRateLimiter
from pydantic import ValidationError

from bruno_edge.admission import ThreadlessMemoryStorage
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import hash_line

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

SEARCH = {"query": "pods"}
KEY = {"Authorization": "Bearer secret"}


def retry_after(response: httpx.Response) -> int:
    value = int(response.headers["retry-after"])
    assert value >= 1
    return value


async def test_past_its_rate_limit_a_key_gets_a_problem_429_with_retry_after(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(api_keys="secret", rate_limit="2/minute")

    answers = [await edge.client.post("/api/v1/search", json=SEARCH, headers=KEY) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert 1 <= retry_after(refused) <= 60
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "this API key is limited to 2 per 1 minute"
    assert len(edge.retrieval.searches) == 2


async def test_under_v1_the_429_is_an_openai_rate_limit_error(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret", rate_limit="1/minute")

    await edge.client.get("/v1/models", headers=KEY)
    refused = await edge.client.get("/v1/models", headers=KEY)

    assert refused.status_code == 429
    retry_after(refused)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


async def test_at_mcp_the_429_is_a_json_rpc_error_with_retry_after(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(api_keys="secret", rate_limit="1/minute", edge_host="0.0.0.0")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    transport = httpx.ASGITransport(edge.app)

    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        await http.post("/mcp", json=ping, headers=KEY)
        refused = await http.post("/mcp", json=ping, headers=KEY)

    assert refused.status_code == 429
    seconds = retry_after(refused)
    error = refused.json()["error"]
    assert error["code"] == -32029
    assert error["data"] == {"status": 429, "retry_after": seconds}


async def test_the_keys_file_sets_a_limit_for_one_key(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[keys.cron]\nhash = "{hash_line("cron-key")}"\nscopes = ["read"]\n'
        'collections = ["*"]\nrate_limit = "1/minute"\n\n'
        f'[keys.people]\nhash = "{hash_line("people-key")}"\nscopes = ["read"]\n'
        'collections = ["*"]\n'
    )
    edge = await edge_factory(api_keys_file=keys, rate_limit="100/minute")

    async def status(key: str) -> int:
        response = await edge.client.post(
            "/api/v1/search", json=SEARCH, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code

    assert [await status("cron-key") for _ in range(2)] == [200, 429]
    assert [await status("people-key") for _ in range(2)] == [200, 200]


async def test_failed_keys_from_one_address_are_throttled(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret", auth_failure_limit="3/minute")
    wrong = {"Authorization": "Bearer guess"}

    guesses = [
        (await edge.client.post("/api/v1/search", json=SEARCH, headers=wrong)).status_code
        for _ in range(5)
    ]
    right = await edge.client.post("/api/v1/search", json=SEARCH, headers=KEY)

    assert guesses == [401, 401, 401, 429, 429]
    assert right.status_code == 429  # no more guessing from here, even a right one
    retry_after(right)
    assert edge.retrieval.searches == []


async def test_a_keys_chats_past_its_concurrent_limit_are_429(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret", concurrent_chats=1)
    edge.auth = KEY
    await edge.ingest("restart the pod when pods crash")
    edge.generation.hang_after = 1
    chat = {"message": "restart the pod", "stream": False}

    first = asyncio.create_task(edge.client.post("/api/v1/chat", json=chat, headers=KEY))
    await edge.generation.generating.wait()
    second = await edge.client.post("/api/v1/chat", json=chat, headers=KEY)
    first.cancel()

    assert second.status_code == 429
    assert retry_after(second) == 2
    assert second.json()["detail"] == "this API key may run 1 chats at once"
    assert len(edge.generation.requests) == 1


async def test_a_search_without_a_slot_in_time_is_shed_with_503(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=0.05)
    edge.retrieval.search_gate = asyncio.Event()

    held = asyncio.create_task(edge.client.post("/api/v1/search", json=SEARCH))
    await edge.retrieval.searching.wait()
    shed = await edge.client.post("/api/v1/search", json=SEARCH)
    metrics = (await edge.client.get("/metrics")).text
    edge.retrieval.search_gate.set()
    served = await held

    assert shed.status_code == 503
    retry_after(shed)
    assert shed.json()["title"] == "Overloaded"
    assert served.status_code == 200
    assert len(edge.retrieval.searches) == 1
    assert 'bruno_edge_shed_total{work="search"} 1.0' in metrics
    assert 'bruno_edge_admitted_in_flight{work="search"} 1.0' in metrics


async def test_other_kinds_of_work_keep_their_own_slots(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=0)
    edge.retrieval.search_gate = asyncio.Event()

    held = asyncio.create_task(edge.client.post("/api/v1/search", json=SEARCH))
    await edge.retrieval.searching.wait()
    listed = await edge.client.get("/api/v1/collections")
    edge.retrieval.search_gate.set()
    await held

    assert listed.status_code == 200


async def test_a_draining_edge_refuses_new_work_and_is_not_ready(edge: Edge) -> None:
    edge.app.state.edge.drain.begin()

    ready = await edge.client.get("/ready")
    search = await edge.client.post("/api/v1/search", json=SEARCH)
    openai = await edge.client.get("/v1/models")
    health = await edge.client.get("/health")

    assert ready.status_code == 503
    assert search.status_code == 503
    assert search.headers["connection"] == "close"
    assert search.json()["detail"] == "the edge is shutting down"
    retry_after(search)
    assert openai.json()["error"]["message"] == "the edge is shutting down"
    assert health.status_code == 200
    assert edge.retrieval.searches == []


@pytest.mark.parametrize("rate", ["often", "5/fortnight"])
def test_a_rate_limit_setting_that_cannot_be_read_is_refused(rate: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        EdgeSettings(rate_limit=rate)


def test_counting_requests_starts_no_thread_and_still_expires_old_events() -> None:
    storage = ThreadlessMemoryStorage()
    storage.timer.join()  # the one timer the library's constructor starts
    before = {thread.ident for thread in threading.enumerate()}
    limiter = MovingWindowRateLimiter(storage)
    limit = parse("100/second")
    for _ in range(20):
        assert limiter.hit(limit, "requests", "k")
    assert {thread.ident for thread in threading.enumerate()} <= before
    storage._next_expiry = 0.0  # the next hit is a second later
    for events in storage.events.values():
        for event in events:
            event.expiry -= 2.0  # those hits left their window
    limiter.hit(limit, "requests", "other")
    assert not storage.events["LIMITER/requests/k/100/1/second"]
    assert len(storage.events["LIMITER/requests/other/100/1/second"]) == 1
