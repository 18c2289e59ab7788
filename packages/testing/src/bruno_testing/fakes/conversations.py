"""An in-memory ``ConversationService`` for tests of its callers: conversations in a dict,
kept to ``max_turns``, each found only by its owner when a call names one, as retrieval's
store does (checked by ``packages/testing/tests/test_fakes_match_services.py``)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from typing_extensions import override

from bruno.retrieval.v1 import conversations_pb2, conversations_pb2_grpc
from bruno_core import NotFound
from bruno_core.contract import CONVERSATION_ID

Context = grpc.aio.ServicerContext[Any, Any]


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


class FakeConversations(conversations_pb2_grpc.ConversationServiceServicer):
    """Conversations in a dict, kept to ``max_turns``, each found only by its owner (when a
    request names one), as retrieval's store does. A test may fill ``conversations`` and
    ``owners`` itself."""

    def __init__(self, max_turns: int = 50) -> None:
        self.conversations: dict[str, list[conversations_pb2.Turn]] = {}
        self.owners: dict[str, str] = {}
        self.max_turns = max_turns
        self._created: dict[str, Timestamp] = {}
        self._updated: dict[str, Timestamp] = {}

    def _check(self, conversation_id: str, owner: str) -> None:
        CONVERSATION_ID.check(conversation_id)
        if conversation_id not in self.conversations or (
            owner and self.owners.get(conversation_id, "") != owner
        ):
            raise NotFound(f"conversation {conversation_id!r} not found")

    @override
    async def AppendTurns(
        self, request: conversations_pb2.AppendTurnsRequest, context: Context
    ) -> conversations_pb2.AppendTurnsResponse:
        CONVERSATION_ID.check(request.conversation_id)
        if request.conversation_id not in self.conversations and request.create:
            self.conversations[request.conversation_id] = []
            self.owners[request.conversation_id] = request.owner
            self._created[request.conversation_id] = _now()
        self._check(request.conversation_id, request.owner)
        turns = self.conversations[request.conversation_id]
        for turn in request.turns:
            stamped = conversations_pb2.Turn()
            stamped.CopyFrom(turn)
            stamped.created_at.GetCurrentTime()
            turns.append(stamped)
        del turns[: -self.max_turns]
        self._updated[request.conversation_id] = _now()
        return conversations_pb2.AppendTurnsResponse(turns=len(turns))

    @override
    async def GetConversation(
        self, request: conversations_pb2.GetConversationRequest, context: Context
    ) -> conversations_pb2.Conversation:
        self._check(request.conversation_id, request.owner)
        turns = self.conversations[request.conversation_id]
        kept = turns[-request.max_turns :] if request.max_turns else turns
        created = self._created.setdefault(request.conversation_id, _now())
        return conversations_pb2.Conversation(
            conversation_id=request.conversation_id,
            turns=kept,
            created_at=created,
            updated_at=self._updated.get(request.conversation_id, created),
            owner=self.owners.get(request.conversation_id, ""),
        )

    @override
    async def DeleteConversation(
        self, request: conversations_pb2.DeleteConversationRequest, context: Context
    ) -> conversations_pb2.DeleteConversationResponse:
        self._check(request.conversation_id, request.owner)
        del self.conversations[request.conversation_id]
        return conversations_pb2.DeleteConversationResponse()
