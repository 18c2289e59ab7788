"""The OpenAI chat-completions shapes the edge accepts and answers.

Every parameter a language model served by Ollama can honour is read and validated
(``temperature``, ``top_p``, ``max_tokens``/``max_completion_tokens``, ``stop``, ``seed``, the
penalties, ``response_format``); what Bruno cannot do (``n`` > 1, ``logprobs``, tools it would
have to call, ``logit_bias``) is declared here too, so :mod:`bruno_edge.openai_chat` can refuse
it by name. Other knobs clients send (``user``, ``metadata``, ``store`` …) change nothing and are
ignored. Bruno's own per-request options travel in an extra ``bruno`` object.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictStr,
    field_validator,
)

from bruno_core.contract import DEFAULT_COLLECTION
from bruno_edge.plain_text import plain_text
from bruno_edge.schemas import WHOLE_NUMBER, ChatTimings, Citation, Collection, TopK

MAX_MESSAGES = 256
MAX_MODEL_CHARS = 200
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 200


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: StrictBool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    name: StrictStr = Field(default="response", max_length=64)
    # ``schema`` would shadow BaseModel.schema; the alias keeps OpenAI's spelling on the wire.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class BrunoOptions(BaseModel):
    """Agent Bruno's own options for one request (an OpenAI client sends them with
    ``extra_body={"bruno": {...}}``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    collection: Collection = DEFAULT_COLLECTION
    top_k: TopK = None
    inline_sources: StrictBool | None = Field(
        default=None,
        description="List the cited sources after the answer text (default: "
        "BRUNO_OPENAI_INLINE_SOURCES); the structured `citations` field is always there.",
    )


#: A count of at least one.
Count = Annotated[int, Field(ge=1), WHOLE_NUMBER]
WholeNumber = Annotated[int, WHOLE_NUMBER]
StopString = Annotated[StrictStr, Field(min_length=1, max_length=MAX_STOP_CHARS)]
StopStrings = Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)]


_ASKED: list[JsonValue] = [{"role": "user", "content": "How do I restore the LanceDB volume?"}]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={
            "examples": [
                {"model": "bruno", "messages": _ASKED},
                {"model": "bruno", "messages": _ASKED, "stream": True},
            ]
        },
    )

    model: StrictStr = Field(min_length=1, max_length=MAX_MODEL_CHARS)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    stop: (
        Annotated[StrictStr, Field(min_length=1, max_length=MAX_STOP_CHARS)] | StopStrings | None
    ) = None
    seed: WholeNumber | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    # What Bruno cannot do; refused by name when asked for (see openai_chat.refuse_unsupported).
    n: Count | None = None
    logprobs: StrictBool | None = None
    top_logprobs: WholeNumber | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, Any] | None = None
    bruno: BrunoOptions | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


FinishReason = Literal["stop", "length"]


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason = Field(
        description="`length` when `max_tokens` cut the answer short."
    )


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class BrunoExtras(BaseModel):
    """What the edge adds beyond OpenAI's fields (clients ignore unknown fields)."""

    answered_by: str = Field(
        description="The model that wrote the answer: the Ollama model, `extractive` for the "
        "fallback that quotes passages, `none` when nothing relevant was found."
    )
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
    model: str = Field(description="The model the request named.")
    choices: list[Choice]
    usage: CompletionUsage
    citations: list[Citation] | None = Field(
        default=None,
        description="With model `bruno`: the passages the answer's [n] point at.",
    )
    bruno: BrunoExtras | None = Field(default=None, description="With model `bruno`.")


class ChunkDelta(BaseModel):
    """What a chunk adds to the answer: the role first, then pieces of the content."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: FinishReason | None = Field(description="Set on the finishing chunk only.")


class ChatCompletionChunk(BaseModel):
    """One event of a streamed chat completion (the stream's ``data`` lines, as JSON)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str = Field(description="The model the request named.")
    choices: list[ChunkChoice] = Field(description="None in the usage chunk.")
    usage: CompletionUsage | None = Field(
        default=None,
        description="With `stream_options.include_usage`: null on every chunk but the last, "
        "which has no choices.",
    )
    citations: list[Citation] | None = Field(
        default=None, description="On the finishing chunk, with model `bruno`."
    )
    bruno: BrunoExtras | None = Field(
        default=None, description="On the finishing chunk, with model `bruno`."
    )


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


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
