"""What a request must be before the generation service answers it: the question, passages,
history and messages within the settings' limits, and roles the model understands. Each check
raises the matching :mod:`bruno_core.errors` error; nothing here asks a model.

    validate(GenerateRequest(question=" "), settings)  # InvalidInput: question must not be empty
"""

from __future__ import annotations

from collections.abc import Sequence

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import InvalidInput, LimitExceeded
from bruno_generation.config import GenerationSettings

HISTORY_ROLES = frozenset({"user", "assistant"})
CONVERSE_ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_MODEL_NAME_CHARS = 200


def validate(request: generation_pb2.GenerateRequest, settings: GenerationSettings) -> None:
    """Raise the matching error for a request the service will not answer."""
    _validate_question(request.question, settings)
    if len(request.passages) > settings.generation_max_passages:
        raise LimitExceeded(
            f"{len(request.passages)} passages; the limit is {settings.generation_max_passages}"
        )
    _validate_conversation(request.history, request.model, settings)


def _validate_question(question: str, settings: GenerationSettings) -> None:
    if not question.strip():
        raise InvalidInput("question must not be empty")
    if len(question) > settings.generation_max_question_chars:
        raise LimitExceeded(
            f"question is {len(question)} characters; "
            f"the limit is {settings.generation_max_question_chars}"
        )


def _validate_conversation(
    history: Sequence[generation_pb2.ChatMessage], model: str, settings: GenerationSettings
) -> None:
    validate_history(history, settings)
    if len(model) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(f"model name is longer than {MAX_MODEL_NAME_CHARS} characters")


def validate_history(
    history: Sequence[generation_pb2.ChatMessage], settings: GenerationSettings
) -> None:
    """Raise the matching error for a conversation the service will not read."""
    if len(history) > settings.generation_max_history_messages:
        raise LimitExceeded(
            f"{len(history)} history messages; "
            f"the limit is {settings.generation_max_history_messages}"
        )
    for turn in history:
        if turn.role not in HISTORY_ROLES:
            raise InvalidInput(f'history role must be "user" or "assistant", not "{turn.role}"')
        if len(turn.content) > settings.generation_max_question_chars:
            raise LimitExceeded(
                f"a history message is {len(turn.content)} characters; "
                f"the limit is {settings.generation_max_question_chars}"
            )


def validate_rewrite(
    request: generation_pb2.RewriteQuestionRequest, settings: GenerationSettings
) -> None:
    """Raise the matching error for a rewrite request the service will not answer."""
    _validate_question(request.question, settings)
    _validate_conversation(request.history, request.model, settings)


def validate_converse(
    request: generation_pb2.ConverseRequest, settings: GenerationSettings
) -> None:
    """Raise the matching error for a plain chat the service will not pass on."""
    if not request.model:
        raise InvalidInput("model must name an Ollama model")
    if len(request.model) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(f"model name is longer than {MAX_MODEL_NAME_CHARS} characters")
    if not request.messages:
        raise InvalidInput("messages must not be empty")
    # The history limit, plus the message being answered.
    most = settings.generation_max_history_messages + 1
    if len(request.messages) > most:
        raise LimitExceeded(f"{len(request.messages)} messages; the limit is {most}")
    for message in request.messages:
        if message.role not in CONVERSE_ROLES:
            raise InvalidInput(
                f"message role must be one of {', '.join(sorted(CONVERSE_ROLES))}, "
                f'not "{message.role}"'
            )
        if len(message.content) > settings.generation_max_question_chars:
            raise LimitExceeded(
                f"a message is {len(message.content)} characters; "
                f"the limit is {settings.generation_max_question_chars}"
            )
