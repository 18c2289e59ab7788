from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bruno.generation.v1 import generation_pb2
from bruno_edge.api.deps import EdgeState
from bruno_edge.chat import ChatService
from bruno_edge.schemas import ChatRequest

if TYPE_CHECKING:
    from conftest import Edge


def chat_service(edge: Edge) -> ChatService:
    state: EdgeState = edge.app.state.edge
    assert state.downstreams is not None
    return ChatService(state.downstreams, state.settings, state.metrics)


async def test_closing_the_event_stream_cancels_the_generation_call(edge: Edge) -> None:
    edge.generation.hang_after = 2
    chat = chat_service(edge)
    turn = await chat.prepare(ChatRequest(message="hi"))
    events = chat.events(turn)

    assert (await anext(events))["event"] == "citations"
    assert (await anext(events))["event"] == "token"
    await events.aclose()

    async with asyncio.timeout(30):  # a guard against hanging, not a speed requirement
        await edge.generation.cancelled.wait()


async def test_history_given_to_prepare_reaches_generation(edge: Edge) -> None:
    chat = chat_service(edge)
    earlier = [generation_pb2.ChatMessage(role="user", content="before")]

    turn = await chat.prepare(ChatRequest(message="now"), history=earlier)
    await chat.answer(turn)

    assert [m.content for m in edge.generation.requests[-1].history] == ["before"]


async def test_a_new_conversation_gets_a_fresh_id_each_time(edge: Edge) -> None:
    chat = chat_service(edge)

    first = await chat.prepare(ChatRequest(message="a"))
    second = await chat.prepare(ChatRequest(message="a"))

    assert first.conversation_id != second.conversation_id
