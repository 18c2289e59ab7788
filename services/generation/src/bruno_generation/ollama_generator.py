"""Answers streamed from an Ollama chat model (``POST /api/chat``) through the official client.

Failures are told apart by when and how they happen, because the server treats them
differently: :class:`OllamaUnreachable` (nothing listens at ``OLLAMA_HOST``) and
:class:`ModelNotFound` (Ollama runs but lacks the model) are known before any token, so a
fallback can still answer; anything else, including Ollama dying mid-answer, is a plain
:class:`~bruno_core.errors.Unavailable`.

    generator = OllamaGenerator(host="http://127.0.0.1:11434")
    async for piece in generator.generate(messages, model="llama3.2", passages_used=3):
        ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import aclosing
from typing import Any

import httpx
from ollama import AsyncClient, ChatResponse, ResponseError

from bruno_core.errors import Unavailable
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.prompting import ChatTurn

# Grounded answers should keep to the passages' wording rather than improvise.
DEFAULT_OPTIONS: Mapping[str, Any] = {"temperature": 0.2}


class OllamaUnreachable(Unavailable):
    """Nothing answered at the Ollama address: connection refused or the connect timed out."""


class ModelNotFound(Unavailable):
    """Ollama answered but does not have the requested model."""


class OllamaGenerator:
    """Streams chat answers from the Ollama server at ``host``."""

    def __init__(
        self,
        *,
        host: str,
        timeout_seconds: float = 120.0,
        connect_timeout_seconds: float = 2.0,
        options: Mapping[str, Any] = DEFAULT_OPTIONS,
    ) -> None:
        self.host = host
        self.options = dict(options)
        self._timeout = httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)

    async def generate(
        self, messages: Sequence[ChatTurn], *, model: str, passages_used: int
    ) -> AnswerStream:
        """The answer's text as Ollama streams it, then one :class:`Finished`.

        Closing this generator (or cancelling its consumer) closes the HTTP request, which is
        how Ollama learns to stop generating.
        """
        last: ChatResponse | None = None
        completion_tokens = 0
        # A client per answer: closing it is the one sure way to drop the connection, and a
        # fresh loopback connection costs nothing next to a model's first token.
        async with AsyncClient(host=self.host, timeout=self._timeout) as client:
            try:
                stream = await client.chat(
                    model=model, messages=list(messages), stream=True, options=self.options
                )
                async with aclosing(stream) as parts:
                    async for part in parts:
                        if part.message.content:
                            completion_tokens += 1
                            yield part.message.content
                        if part.done:
                            last = part
            except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError) as error:
                raise OllamaUnreachable(
                    f"Ollama is not reachable at {self.host}; start it or point OLLAMA_HOST at it"
                ) from error
            except ResponseError as error:
                if error.status_code == 404:
                    raise ModelNotFound(
                        f'Ollama at {self.host} does not have the model "{model}"; '
                        f"pull it with `ollama pull {model}`"
                    ) from error
                raise Unavailable(f"Ollama failed: {error.error}") from error
            except httpx.TimeoutException as error:
                raise Unavailable(
                    f"Ollama sent nothing for {self._timeout.read:.0f}s while answering"
                ) from error
            except httpx.HTTPError as error:
                raise Unavailable(
                    f"Ollama stopped in the middle of the answer ({type(error).__name__})"
                ) from error
        if last is None:
            raise Unavailable("Ollama ended the answer without finishing it")
        yield Finished(
            model=last.model or model,
            prompt_tokens=last.prompt_eval_count or 0,
            completion_tokens=last.eval_count or completion_tokens,
            passages_used=passages_used,
        )
