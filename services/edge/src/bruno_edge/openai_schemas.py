"""The OpenAI chat-completions shapes the edge accepts and answers (the parts chat UIs use).

Requests tolerate the many optional knobs OpenAI clients send (``temperature``, ``max_tokens``,
``n`` …) and ignore them; what the edge reads is validated strictly: a non-empty ``messages``
list of known roles, a boolean ``stream``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from bruno_edge.schemas import ChatTimings, Citation, plain_text

MAX_MESSAGES = 256
MAX_MODEL_CHARS = 200


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    # ``name``, ``tool_calls``, ``tool_call_id`` and the like are accepted and ignored; so are
    # ``tool`` messages, which chat UIs that used tools earlier in a conversation send back.
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None

    @field_validator("content")
    @classmethod
    def _no_control_characters(
        cls, content: str | list[TextPart] | None
    ) -> str | list[TextPart] | None:
        parts = [content] if isinstance(content, str) else [p.text for p in content or ()]
        for part in parts:
            plain_text(part)
        return content

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr = Field(min_length=1, max_length=MAX_MODEL_CHARS)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class BrunoExtras(BaseModel):
    """What the edge adds beyond OpenAI's fields (clients ignore unknown fields)."""

    timings_ms: ChatTimings
    fallback: bool
    passages_used: int
    passages_dropped: int
    cited: list[int]
    search_query: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    citations: list[Citation] = Field(description="The passages the answer's [n] point at.")
    bruno: BrunoExtras


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "agent-bruno"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
