"""Answers streamed from an Ollama chat model (``POST /api/chat``) through the official client.

Failures are told apart by when and how they happen, because the server treats them
differently: :class:`OllamaUnreachable` (nothing listens at ``OLLAMA_HOST``) and
:class:`ModelNotFound` (Ollama runs but lacks the model) are known before any token, so a
fallback can still answer; anything else, including Ollama dying mid-answer, is a plain
:class:`~bruno_core.errors.Unavailable`.

    generator = OllamaGenerator(host="http://127.0.0.1:11434", options={"num_ctx": 4096})
    async for piece in generator.generate(messages, model="llama3.2", passages_used=3):
        ...
    available, why_not = await generator.model_status("llama3.2")
    window = await generator.context_window("llama3.2")  # num_ctx, or the model's if smaller
    models = await generator.chat_models()  # the pulled models that chat, or why not known
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from typing import Any, cast

# httpcore's connection pools load anyio's asyncio backend on their first request (tens of
# milliseconds of imports): loaded with this module, at the service's start, it costs the
# first answer nothing.
import anyio._backends._asyncio  # noqa: F401
import httpx
from ollama import AsyncClient, ChatResponse, ResponseError

from bruno_core.errors import Unavailable
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.prompting import ChatTurn
from bruno_generation.sampling import Sampling

# Grounded answers should keep to the passages' wording rather than improvise.
DEFAULT_OPTIONS: Mapping[str, Any] = {"temperature": 0.2}
# Readiness probes ask often; the model list changes only when someone pulls or removes one.
TAGS_CACHE_SECONDS = 5.0
# A model's trained context length is known for good once read; a failed look-up (Ollama
# down, model not pulled yet) is worth retrying, but not on every answer.
SHOW_RETRY_SECONDS = 5.0
# Models whose context length is remembered: the model name comes from the request (the
# OpenAI `model` field), so the memory is bounded; the oldest look-up is forgotten first.
SHOW_CACHE_MODELS = 64

log = logging.getLogger(__name__)


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
        keep_alive: str | None = None,
        show_retry_seconds: float = SHOW_RETRY_SECONDS,
    ) -> None:
        self.host = host
        self.options = dict(options)
        self.keep_alive = keep_alive
        self._timeout = httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)
        self._tags: tuple[float, tuple[str, ...] | str] | None = None
        self._tags_lock = asyncio.Lock()
        # Canonical model name -> (when looked up, trained context length or None).
        self._trained: dict[str, tuple[float, int | None]] = {}
        # Look-ups in flight, one per model: concurrent answers share it, other models never
        # wait for it.
        self._showing: dict[str, asyncio.Future[int | None]] = {}
        self._show_retry_seconds = show_retry_seconds
        # Model name -> whether it chats (an embedding model does not); fixed per model.
        self._chats: dict[str, bool] = {}
        # Both clients are made here, when the service starts, not by the first answer: an
        # HTTP client loads its TLS context (the CA bundle, ~20 ms of CPU) when it is made.
        # They share one context, so that is paid once; nothing connects until a call.
        tls = httpx.create_ssl_context()
        # One pooled client for every answer. Closing an answer early still drops its
        # connection, since a response not read to the end is never returned to the pool.
        self.client = AsyncClient(host=host, timeout=self._timeout, verify=tls)
        # Look-ups (model list, context length, capabilities) wait less, and keep no
        # connection open between them.
        self._probe = AsyncClient(
            host=host,
            timeout=httpx.Timeout(connect_timeout_seconds),
            verify=tls,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        """Close both clients and their connections; the generator answers no more."""
        # ollama leaves close() untyped.
        await self.client.close()  # type: ignore[no-untyped-call]
        await self._probe.close()  # type: ignore[no-untyped-call]

    async def model_status(self, model: str) -> tuple[bool, str]:
        """Whether Ollama has ``model`` (``GET /api/tags``, cached briefly), and if not, why."""
        models = await self.pulled_models()
        if isinstance(models, str):
            return False, models
        if _canonical(model) in models:
            return True, ""
        return (
            False,
            f'Ollama does not have the model "{model}"; pull it with `ollama pull {model}`',
        )

    async def pulled_models(self) -> tuple[str, ...] | str:
        """The pulled models' names (``llama3.2:latest``), cached briefly, or why not known."""
        async with self._tags_lock:
            now = time.monotonic()
            if self._tags is None or now - self._tags[0] > TAGS_CACHE_SECONDS:
                self._tags = (now, await self._list_models())
            return self._tags[1]

    async def chat_models(self) -> list[str] | str:
        """The pulled models that can chat (not embedding models), or why they are not known.

        Ollama says what a model can do in ``POST /api/show`` (``capabilities``), looked up once
        per model; a model it cannot describe is listed rather than hidden.
        """
        models = await self.pulled_models()
        if isinstance(models, str):
            return models
        unknown = [name for name in models if name not in self._chats]
        if unknown:
            found = await asyncio.gather(*(self._can_chat(name) for name in unknown))
            self._chats.update(zip(unknown, found, strict=True))
            while len(self._chats) > SHOW_CACHE_MODELS:
                del self._chats[next(iter(self._chats))]
        return [name for name in models if self._chats.get(name, True)]

    async def _can_chat(self, model: str) -> bool:
        try:
            shown = await self._probe.show(model)
        except (ResponseError, httpx.HTTPError, OSError, ValueError):
            return True
        return shown.capabilities is None or "completion" in shown.capabilities

    async def _list_models(self) -> tuple[str, ...] | str:
        """The pulled models' canonical names, or why they could not be listed."""
        try:
            listed = await self._probe.list()
        except (httpx.ConnectError, httpx.TimeoutException, ConnectionError):
            log.warning("ollama is not reachable", extra={"host": self.host})
            return "Ollama is not reachable"
        except (ResponseError, httpx.HTTPError) as error:
            # The client's exception names are for the log, not for whoever asked.
            log.warning("ollama could not list its models", extra={"error": repr(error)})
            return "Ollama could not list its models"
        return tuple(sorted({_canonical(m.model) for m in listed.models if m.model}))

    async def context_window(self, model: str) -> int | None:
        """The tokens a prompt to ``model`` can fill: the ``num_ctx`` option sent, or the
        context length the model was trained for when that is smaller (Ollama caps ``num_ctx``
        there, and would then cut the prompt without a word). ``None`` when no ``num_ctx`` is
        configured. The trained length comes from ``POST /api/show``, once per model; when
        Ollama cannot say, the ``num_ctx`` option stands."""
        configured = self.options.get("num_ctx")
        if not isinstance(configured, int):
            return None
        trained = await self.trained_context_length(model)
        if trained is None or trained >= configured:
            return configured
        return trained

    async def trained_context_length(self, model: str) -> int | None:
        """The context length ``model`` was trained for, or ``None`` when Ollama cannot say."""
        key = _canonical(model)
        cached = self._trained.get(key)
        if cached is not None and (
            cached[1] is not None or time.monotonic() - cached[0] < self._show_retry_seconds
        ):
            return cached[1]
        pending = self._showing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(model, key))
            self._showing[key] = pending
            pending.add_done_callback(lambda _: self._showing.pop(key, None))
        # Shielded: one caller giving up must not cancel the look-up the others wait for.
        return await asyncio.shield(pending)

    async def _look_up(self, model: str, key: str) -> int | None:
        trained = await self._show_context_length(model)
        self._trained.pop(key, None)  # re-inserted last: the dict's order is look-up order
        self._trained[key] = (time.monotonic(), trained)
        while len(self._trained) > SHOW_CACHE_MODELS:
            del self._trained[next(iter(self._trained))]
        self._note_small_context(model, trained)
        return trained

    def _note_small_context(self, model: str, trained: int | None) -> None:
        configured = self.options.get("num_ctx")
        if trained is not None and isinstance(configured, int) and trained < configured:
            log.warning(
                "the model was trained for a smaller context than BRUNO_OLLAMA_NUM_CTX; "
                "prompts are fitted to the model's context instead",
                extra={"model": model, "model_context": trained, "num_ctx": configured},
            )

    async def _show_context_length(self, model: str) -> int | None:
        try:
            shown = await self._probe.show(model)
        # ValueError covers a reply the client's models refuse (pydantic's ValidationError).
        except (ResponseError, httpx.HTTPError, OSError, ValueError) as error:
            log.debug(
                "Ollama did not say the model's context length",
                extra={"model": model, "error": type(error).__name__},
            )
            return None
        info = shown.modelinfo or {}
        length = info.get(f"{info.get('general.architecture')}.context_length")
        if isinstance(length, int) and not isinstance(length, bool) and length > 0:
            return length
        return None

    async def complete(self, messages: Sequence[ChatTurn], *, model: str) -> str:
        """One whole (not streamed) chat answer, for short internal tasks such as rewriting."""
        with _ollama_errors(self.host, model, self._timeout):
            response = await self.client.chat(
                model=model,
                messages=list(messages),
                stream=False,
                options={**self.options, "temperature": 0.0},
                keep_alive=self.keep_alive,
            )
        return response.message.content or ""

    async def generate(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        passages_used: int,
        sampling: Sampling | None = None,
    ) -> AnswerStream:
        """The answer's text as Ollama streams it, then one :class:`Finished`.

        ``sampling`` overrides the generator's own options and may set a ``format``. Closing
        this generator (or cancelling its consumer) closes the HTTP request, which is how Ollama
        learns to stop generating.
        """
        sampling = sampling or Sampling()
        last: ChatResponse | None = None
        completion_tokens = 0
        with _ollama_errors(self.host, model, self._timeout):
            # The client's stubs say AsyncIterator; it is an async generator, and closing it
            # is what closes the HTTP response.
            stream = cast(
                "AsyncGenerator[ChatResponse, None]",
                await self.client.chat(
                    model=model,
                    messages=list(messages),
                    stream=True,
                    options={**self.options, **sampling.options},
                    format=sampling.format,
                    keep_alive=self.keep_alive,
                ),
            )
            async with aclosing(stream) as parts:
                async for part in parts:
                    if part.message.content:
                        completion_tokens += 1
                        yield part.message.content
                    if part.done:
                        last = part
        if last is None:
            raise Unavailable("Ollama ended the answer without finishing it")
        yield Finished(
            model=last.model or model,
            prompt_tokens=last.prompt_eval_count or 0,
            completion_tokens=last.eval_count or completion_tokens,
            passages_used=passages_used,
            # Ollama's other reasons ("load", "unload") come only from calls without a prompt.
            finish_reason="length" if last.done_reason == "length" else "stop",
        )


def _canonical(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


@contextmanager
def _ollama_errors(host: str, model: str, timeout: httpx.Timeout) -> Iterator[None]:
    """Translate what the client raises into the errors the server tells apart."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError) as error:
        # Where Ollama lives is for the log: the error's text travels to API clients.
        log.warning("ollama is not reachable", extra={"host": host})
        raise OllamaUnreachable(
            "Ollama is not reachable; start it or point OLLAMA_HOST at it"
        ) from error
    except ResponseError as error:
        if error.status_code == 404:
            raise ModelNotFound(
                f'Ollama does not have the model "{model}"; pull it with `ollama pull {model}`'
            ) from error
        raise Unavailable(f"Ollama failed: {error.error}") from error
    except httpx.TimeoutException as error:
        raise Unavailable(f"Ollama sent nothing for {timeout.read:.0f}s while answering") from error
    except httpx.HTTPError as error:
        # What the HTTP client called it is for the log; the caller learns what happened.
        log.warning("ollama stopped mid-answer", extra={"model": model, "error": repr(error)})
        raise Unavailable("Ollama stopped in the middle of the answer") from error
