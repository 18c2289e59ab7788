"""``/api/v1/conversations/{id}``: read or forget a stored conversation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from google.protobuf.timestamp_pb2 import Timestamp

from bruno.retrieval.v1 import conversations_pb2
from bruno_core.contract import CONVERSATION_ID
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.clients import rpc_errors
from bruno_edge.keys import Scope
from bruno_edge.schemas import Conversation, ConversationTurn

router = APIRouter(prefix=f"{API_PREFIX}/conversations", tags=["conversations"])

ConversationId = Annotated[
    str, Path(pattern=CONVERSATION_ID.pattern, max_length=CONVERSATION_ID.max_chars)
]


def _moment(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


@router.get(
    "/{conversation_id}",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def get_conversation(
    conversation_id: ConversationId,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> Conversation:
    """The conversation's stored turns, oldest first; 404 unless the key started it."""
    with rpc_errors("retrieval"):
        found = await downstreams.conversations.GetConversation(
            conversations_pb2.GetConversationRequest(
                conversation_id=conversation_id, owner=caller.name
            ),
            timeout=settings.request_timeout_seconds,
        )
    return Conversation(
        conversation_id=found.conversation_id,
        turns=[
            ConversationTurn(
                role="user" if turn.role == "user" else "assistant",
                content=turn.content,
                created_at=_moment(turn.created_at),
                chunk_ids=list(turn.chunk_ids),
            )
            for turn in found.turns
        ],
        created_at=_moment(found.created_at),
        updated_at=_moment(found.updated_at),
    )


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def delete_conversation(
    conversation_id: ConversationId,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> Response:
    """Forget the conversation (404 unless the key started it); later chats naming it get 404."""
    with rpc_errors("retrieval"):
        await downstreams.conversations.DeleteConversation(
            conversations_pb2.DeleteConversationRequest(
                conversation_id=conversation_id, owner=caller.name
            ),
            timeout=settings.request_timeout_seconds,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
