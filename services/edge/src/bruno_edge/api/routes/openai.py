"""The OpenAI-compatible surface: ``POST /v1/chat/completions``, ``GET /v1/models`` and
``GET /v1/models/{model}``, for the official clients and the chat UIs built on them.

Model ``bruno`` answers from the knowledge base (retrieval on the last user message) and, by
default, lists the cited sources after the answer text, since most clients drop the extra
``citations`` field; the pulled Ollama models answer plainly, for a client's own tasks. How a
completion is built is :mod:`bruno_edge.openai_chat`; errors are OpenAI error objects
(:mod:`bruno_edge.problems`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sse_starlette import EventSourceResponse

from bruno_core.contract import DEFAULT_COLLECTION
from bruno_edge.admission import Work
from bruno_edge.api.deps import (
    CallerDep,
    ChatDep,
    DownstreamsDep,
    StateDep,
    guarded,
)
from bruno_edge.api.routes import (
    CLIENT_CLOSED_REQUEST,
    COMPLETION_EVENTS,
    event_stream,
    openai_error_responses,
)
from bruno_edge.api.routes.chat import unless_disconnected
from bruno_edge.consistency import AtLeastDep
from bruno_edge.keys import Scope
from bruno_edge.model_catalog import ServedModel, resolve, served_models
from bruno_edge.openai_chat import (
    Pieces,
    chunks,
    collect,
    plain_answer,
    plain_messages,
    question_and_history,
    rag_answer,
    refuse_unsupported,
    sampling_options,
    wants_json,
)
from bruno_edge.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Model,
    ModelList,
)
from bruno_edge.plain_chat import converse
from bruno_edge.problems import OPENAI_PREFIX
from bruno_edge.streams import completion_events

# Errors here are OpenAI error objects: bruno_edge.problems renders every error under /v1 so.
router = APIRouter(prefix=OPENAI_PREFIX, tags=["openai"])

_STREAM_DESCRIPTION = (
    "With `stream: true`: `chat.completion.chunk` events (the role, content deltas, a finishing "
    "chunk with `finish_reason` and, for model `bruno`, `citations` and `bruno`), a usage chunk "
    "with no choices when `stream_options.include_usage` is true, then `data: [DONE]`. "
    "Bruno's own options go in an extra `bruno` object: `collection`, `top_k`, "
    "`inline_sources`; its `Bruno-Consistency-Token` header (from a write's answer) makes model "
    "`bruno` retrieve from that write or a later state."
)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": event_stream(COMPLETION_EVENTS)},
        **openai_error_responses(400, 401, 403, 404, 409, 413, 429, 499, 500, 503, 504),
    },
    description=_STREAM_DESCRIPTION,
    dependencies=guarded(Scope.READ, Work.CHAT, chat=True),
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    caller: CallerDep,
    chat: ChatDep,
    downstreams: DownstreamsDep,
    state: StateDep,
    at_least: AtLeastDep,
) -> ChatCompletion | EventSourceResponse | Response:
    """A chat completion: grounded in the knowledge base with model `bruno`, plain otherwise."""
    settings = state.settings
    refuse_unsupported(body)
    options = sampling_options(body)
    served = await resolve(downstreams, body.model)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    pieces: Pieces
    if served.rag:
        extra = body.bruno
        collection = extra.collection if extra else DEFAULT_COLLECTION
        caller.check_collection(collection)
        question, history = question_and_history(body.messages, settings)
        turn = await chat.prepare_stateless(
            question,
            history,
            collection=collection,
            top_k=extra.top_k if extra else None,
            conversation_id=completion_id,
            options=options,
            at_least=at_least,
        )
        inline = settings.openai_inline_sources
        if extra is not None and extra.inline_sources is not None:
            inline = extra.inline_sources
        # Sources written into a JSON answer would break it; `citations` still carries them.
        pieces = rag_answer(chat, turn, inline_sources=inline and not wants_json(body))
    else:
        plain = converse(
            downstreams,
            settings,
            model=served.ollama_model or body.model,
            messages=plain_messages(body.messages),
            options=options,
            streamed=bool(body.stream),
        )
        pieces = plain_answer(plain)
    created = int(time.time())
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return completion_events(
            chunks(
                pieces,
                completion_id=completion_id,
                created=created,
                model=body.model,
                include_usage=include_usage,
            ),
            state,
        )
    whole = await unless_disconnected(request, collect(pieces))
    if whole is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    text, ending = whole
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=body.model,
        choices=[
            Choice(message=AssistantMessage(content=text), finish_reason=ending.finish_reason)
        ],
        usage=ending.usage,
        citations=ending.citations,
        bruno=ending.extras,
    )


def _model(served: ServedModel) -> Model:
    return Model(id=served.id, owned_by="agent-bruno" if served.rag else "ollama")


@router.get(
    "/models",
    responses=openai_error_responses(401, 403, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def models(downstreams: DownstreamsDep) -> ModelList:
    """`bruno` (answers from the knowledge base) and the chat models Ollama has pulled."""
    return ModelList(data=[_model(served) for served in await served_models(downstreams)])


@router.get(
    "/models/{model:path}",
    responses=openai_error_responses(400, 401, 403, 404, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def model(model: Annotated[str, Path(max_length=200)], downstreams: DownstreamsDep) -> Model:
    """One served model; `404 model_not_found` for a name not served here."""
    return _model(await resolve(downstreams, model))
