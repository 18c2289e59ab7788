"""Admission: each key's rate limit and concurrent chats (429 with Retry-After in every
dialect), the throttle on failed keys per address, load shed early (503 with Retry-After) when
a kind of work has no slot in time, a draining edge refusing new work, and the slots a route
takes given back by the middleware once it is answered (a stream until its end)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from fastapi import Depends, FastAPI
from limits import parse
from limits.strategies import MovingWindowRateLimiter
from pydantic import ValidationError

from bruno_edge.admission import ThreadlessMemoryStorage, Work
from bruno_edge.api.deps import EdgeState, guarded, require_api_key
from bruno_edge.api.routes import search
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import Keyring, Scope, hash_line
from bruno_edge.metrics import EdgeMetrics
from bruno_testing.asgi import http_scope

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


async def test_a_search_waits_for_a_slot_and_is_served_when_one_frees(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=60)
    edge.retrieval.search_gate = asyncio.Event()

    state: EdgeState = edge.app.state.edge
    semaphore = state.work_slots.slots[Work.SEARCH].semaphore
    asked: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
    acquire = semaphore.acquire

    async def acquire_noted() -> bool:
        asked[len([e for e in asked if e.is_set()])].set()
        return await acquire()

    semaphore.acquire = acquire_noted  # type: ignore[method-assign,assignment]
    held = asyncio.create_task(edge.client.post("/api/v1/search", json=SEARCH))
    await edge.retrieval.searching.wait()
    queued = asyncio.create_task(edge.client.post("/api/v1/search", json=SEARCH))
    await asked[1].wait()  # the second search is waiting for the slot
    metrics = (await edge.client.get("/metrics")).text
    edge.retrieval.search_gate.set()
    answers = [await held, await queued]

    assert [a.status_code for a in answers] == [200, 200]
    assert len(edge.retrieval.searches) == 2
    assert 'bruno_edge_admission_waiting{work="search"} 1.0' in metrics
    assert 'bruno_edge_admitted_in_flight{work="search"} 1.0' in metrics
    assert slots_taken(edge) == NONE_TAKEN


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


# The slots a route takes are given back by the middleware once the app is done with the
# request. Each test below has one slot of the kind it uses (``*_max_in_flight=1``) and looks
# at the slots themselves, so a slot that is not given back stays taken and fails it.


def slots_taken(edge: Edge) -> dict[str, int]:
    """The chats running (every key's) and, per kind of work used here, the slots taken."""
    state: EdgeState = edge.app.state.edge
    taken = {"chats": sum(state.chat_slots.running.values())}
    for work in (Work.CHAT, Work.SEARCH):
        taken[work.value] = int(state.work_slots.slots[work].semaphore.locked())
    return taken


NONE_TAKEN = {"chats": 0, "chat": 0, "search": 0}
ONE_CHAT = {"chats": 1, "chat": 1, "search": 0}


async def chat_over_asgi(
    edge: Edge, *, leave_on: bytes | None = None
) -> tuple[list[bytes], list[dict[str, int]]]:
    """A streamed chat over raw ASGI (httpx's transport would wait for the whole response): the
    pieces of its body, and :func:`slots_taken` as each was sent. The client hangs up once a
    piece containing ``leave_on`` is sent."""
    payload = json.dumps({"message": "restart the pod", "stream": True}).encode()
    hang_up = asyncio.Event()
    pieces: list[bytes] = []
    taken: list[dict[str, int]] = []
    request_sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if body:
            pieces.append(body)
            taken.append(slots_taken(edge))
            if leave_on is not None and leave_on in body:
                hang_up.set()

    scope = http_scope("POST", "/api/v1/chat")
    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.app(scope, receive, send)
    return pieces, taken


async def test_a_searchs_slot_is_given_back_once_it_is_answered(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=0)

    answers = [await edge.client.post("/api/v1/search", json=SEARCH) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]  # none found its slot taken
    assert slots_taken(edge) == NONE_TAKEN


async def test_a_slot_is_given_back_after_an_error_answer(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=0)
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    failed = await edge.client.post("/api/v1/search", json=SEARCH)

    assert failed.status_code == 503
    assert failed.json()["detail"] == "the retrieval service is unavailable"
    assert slots_taken(edge) == NONE_TAKEN


async def test_a_slot_is_given_back_after_an_unhandled_exception(
    edge_factory: EdgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await edge_factory(search_max_in_flight=1, search_max_wait_seconds=0)
    await edge.ingest("restart the pod when pods crash")

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the route")

    monkeypatch.setattr(search, "search_result", broken)
    crashed = await edge.client.post("/api/v1/search", json=SEARCH)

    assert crashed.status_code == 500
    assert slots_taken(edge) == NONE_TAKEN


async def test_a_streamed_chat_holds_its_slots_until_its_last_event(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(concurrent_chats=1, chat_max_in_flight=1)
    await edge.ingest("restart the pod when pods crash")

    pieces, taken = await chat_over_asgi(edge)

    assert b"event: done" in pieces[-1]
    assert taken == [ONE_CHAT] * len(pieces)  # the last piece too was sent holding them
    assert slots_taken(edge) == NONE_TAKEN


async def test_a_client_leaving_mid_stream_gives_the_chats_slots_back(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(concurrent_chats=1, chat_max_in_flight=1)
    await edge.ingest("restart the pod when pods crash")
    edge.generation.hang_after = 1  # the model goes quiet after one token, until cancelled

    pieces, taken = await chat_over_asgi(edge, leave_on=b"event: token")

    assert not any(b"event: done" in piece for piece in pieces)  # cut short by the client
    assert taken[-1] == ONE_CHAT
    assert slots_taken(edge) == NONE_TAKEN
    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.generation.cancelled.wait()


async def test_a_chat_refused_past_the_keys_chats_holds_nothing(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(concurrent_chats=1, chat_max_in_flight=1)
    await edge.ingest("restart the pod when pods crash")
    edge.generation.hang_after = 1
    chat = {"message": "restart the pod", "stream": False}

    first = asyncio.create_task(edge.client.post("/api/v1/chat", json=chat))
    await edge.generation.generating.wait()
    refused = await edge.client.post("/api/v1/chat", json=chat)
    during = slots_taken(edge)
    first.cancel()

    assert refused.status_code == 429
    assert during == ONE_CHAT  # the first chat's, and no more


async def test_a_chat_shed_for_want_of_a_slot_keeps_none_of_the_keys_chats(
    edge_factory: EdgeFactory,
) -> None:
    # The key may run two chats, the edge one: the second chat gets one of the key's chats,
    # then no slot of chat work, and must not keep the former while its 503 is sent.
    edge = await edge_factory(concurrent_chats=2, chat_max_in_flight=1, chat_max_wait_seconds=0)
    await edge.ingest("restart the pod when pods crash")
    edge.generation.hang_after = 1
    chat = {"message": "restart the pod", "stream": False}

    first = asyncio.create_task(edge.client.post("/api/v1/chat", json=chat))
    await edge.generation.generating.wait()
    shed = await edge.client.post("/api/v1/chat", json=chat)
    during = slots_taken(edge)
    first.cancel()

    assert shed.status_code == 503
    assert during == ONE_CHAT


async def test_a_guard_without_the_middleware_fails_before_taking_a_slot() -> None:
    # Nothing would give a slot back: the route fails closed rather than leak it.
    settings = EdgeSettings(edge_host="127.0.0.1", search_max_in_flight=1)
    state = EdgeState(settings, EdgeMetrics(), Keyring.from_settings(settings))
    app = FastAPI()
    app.state.edge = state

    @app.get("/bare", dependencies=[Depends(require_api_key), *guarded(Scope.READ, Work.SEARCH)])
    async def bare() -> str:
        return "served"

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
        with pytest.raises(RuntimeError, match="need EdgeMiddleware"):
            await client.get("/bare")

    assert not state.work_slots.slots[Work.SEARCH].semaphore.locked()
