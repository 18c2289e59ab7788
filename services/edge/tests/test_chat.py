from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from bruno.retrieval.v1 import conversations_pb2
from bruno_edge import chat as chat_module
from bruno_edge.api.deps import EdgeState
from bruno_edge.chat import NO_ANSWER, ChatService, ChatTurn, cited_markers
from bruno_edge.schemas import ChatRequest

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

RUNBOOK = "To fix a crashloop restart the pod and check the logs of the pod."


def chat_service(edge: Edge) -> ChatService:
    state: EdgeState = edge.app.state.edge
    assert state.downstreams is not None
    return ChatService(state.downstreams, state.settings, state.metrics)


async def test_closing_the_event_stream_cancels_the_generation_call(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.generation.hang_after = 2
    chat = chat_service(edge)
    turn = await chat.prepare(ChatRequest(message="restart the pod"), owner="open")
    events = chat.events(turn)

    assert (await anext(events))["event"] == "token"
    assert (await anext(events))["event"] == "token"
    await events.aclose()

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.generation.cancelled.wait()


async def test_generation_is_asked_as_soon_as_the_passages_are_known(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    chat = chat_service(edge)

    turn = await chat.prepare(ChatRequest(message="restart the pod"), owner="open")

    # Nothing reads the answer yet: the call is on its way while the response is made.
    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.generation.generating.wait()
    assert edge.generation.requests[-1].question == "restart the pod"
    assert [t async for t in chat.stream(turn) if isinstance(t, str)] == edge.generation.tokens


async def test_a_turn_whose_answer_is_never_read_cancels_its_generation_call(edge: Edge) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.generation.hang_after = 0
    chat = chat_service(edge)
    turn = await chat.prepare(ChatRequest(message="restart the pod"), owner="open")
    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.generation.generating.wait()

    del turn  # as when the client leaves before its response starts: the turn is dropped
    gc.collect()

    async with asyncio.timeout(30):
        await edge.generation.cancelled.wait()


async def test_a_request_cancelled_before_its_turn_holds_the_call_cancels_it(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window between asking generation and the turn that would cancel the call once
    # dropped: a cancellation landing there (the client left) must cancel the call itself.
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.generation.hang_after = 0
    chat = chat_service(edge)
    calls: list[grpc.aio.Call] = []
    generate = chat.downstreams.generation.Generate

    def keep(*args: Any, **kwargs: Any) -> Any:
        call = generate(*args, **kwargs)
        calls.append(call)
        return call

    def cancelled_here(**_: Any) -> ChatTurn:
        raise asyncio.CancelledError

    monkeypatch.setattr(chat.downstreams.generation, "Generate", keep)
    monkeypatch.setattr(chat_module, "ChatTurn", cancelled_here)

    with pytest.raises(asyncio.CancelledError):
        await chat.prepare(ChatRequest(message="restart the pod"), owner="open")

    assert len(calls) == 1  # held here, so only the code under test can have cancelled it
    assert calls[0].cancelled()


async def test_a_stored_conversation_is_rewritten_for_retrieval_and_given_to_generation(
    edge: Edge,
) -> None:
    await edge.ingest(RUNBOOK, id="crashloop")
    edge.conversations.conversations["c1"] = [
        conversations_pb2.Turn(role="user", content="crashloop"),
        conversations_pb2.Turn(role="assistant", content="Restart the pod [1]."),
    ]
    edge.conversations.owners["c1"] = "open"
    chat = chat_service(edge)

    turn = await chat.prepare(ChatRequest(message="and then?", conversation_id="c1"), owner="open")
    await chat.answer(turn)

    assert edge.retrieval.searches[-1].query == "and then? (crashloop)"
    request = edge.generation.requests[-1]
    assert request.question == "and then?"
    assert [m.content for m in request.history] == ["crashloop", "Restart the pod [1]."]
    assert [t.content for t in edge.conversations.conversations["c1"][-2:]] == [
        "and then?",
        "Restart the pod [1].",
    ]


async def test_a_new_conversation_gets_a_fresh_id_each_time(edge: Edge) -> None:
    chat = chat_service(edge)

    first = await chat.prepare(ChatRequest(message="a"), owner="open")
    second = await chat.prepare(ChatRequest(message="a"), owner="open")

    assert first.conversation_id != second.conversation_id


async def test_passages_below_the_relevance_threshold_are_not_given_to_the_model(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(min_relevance_score=0.9)
    await edge.ingest("restart the pod", id="strong")
    await edge.ingest("the logs", id="weak")
    chat = chat_service(edge)

    turn = await chat.prepare(ChatRequest(message="restart the pod"), owner="open")

    assert [c.document_id for c in turn.citations] == ["strong"]


async def test_with_nothing_relevant_the_answer_is_i_dont_know_without_a_model(
    edge: Edge,
) -> None:
    chat = chat_service(edge)

    response = await chat.answer(
        await chat.prepare(ChatRequest(message="what is love?"), owner="open")
    )

    assert response.answer == NO_ANSWER
    assert response.citations == []
    assert response.fallback is True
    assert edge.generation.requests == []


def test_cited_markers_are_read_from_the_answer_in_order_and_in_range() -> None:
    assert cited_markers("A [2]. B [1, 3] and [2][9].", passages=3) == [2, 1, 3]
    assert cited_markers("Nothing cited.", passages=3) == []
