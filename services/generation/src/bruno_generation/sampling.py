"""A request's sampling options as Ollama takes them: its ``options`` and its ``format``.

Callers (the OpenAI-compatible edge) pass what their clients asked for; an unset field keeps
the service's own setting, so a client that sends nothing gets the grounded defaults:

    sampling = Sampling.of(request.options)           # InvalidInput when out of bounds
    client.chat(..., options={**defaults, **sampling.options}, format=sampling.format)

``max_tokens`` becomes ``num_predict`` (Ollama stops there and says ``done_reason: "length"``);
``format`` is ``"json"`` or a JSON schema, given as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import InvalidInput

MAX_STOP_STRINGS = 4  # OpenAI's limit too
MAX_STOP_CHARS = 200
MAX_FORMAT_CHARS = 64 * 1024
MAX_TOKENS = 1_048_576


@dataclass(frozen=True)
class Sampling:
    """Validated sampling options: Ollama ``options`` entries and the ``format`` argument."""

    options: Mapping[str, Any] = field(default_factory=dict)
    format: Literal["json"] | dict[str, Any] | None = None

    @property
    def max_tokens(self) -> int | None:
        limit = self.options.get("num_predict")
        return limit if isinstance(limit, int) else None

    @property
    def stop(self) -> list[str]:
        return list(self.options.get("stop", []))

    @classmethod
    def of(cls, options: generation_pb2.SamplingOptions) -> Sampling:
        """The Ollama form of ``options``; raises :class:`InvalidInput` naming what is wrong."""
        chosen: dict[str, Any] = {}
        if options.HasField("temperature"):
            chosen["temperature"] = _within("temperature", options.temperature, 0.0, 2.0)
        if options.HasField("top_p"):
            chosen["top_p"] = _within("top_p", options.top_p, 0.0, 1.0)
        for name in ("frequency_penalty", "presence_penalty"):
            if options.HasField(name):
                chosen[name] = _within(name, getattr(options, name), -2.0, 2.0)
        if options.HasField("max_tokens"):
            if not 1 <= options.max_tokens <= MAX_TOKENS:
                raise InvalidInput(f"max_tokens must be between 1 and {MAX_TOKENS}")
            chosen["num_predict"] = options.max_tokens
        if options.HasField("seed"):
            chosen["seed"] = options.seed
        if options.stop:
            chosen["stop"] = _stop_strings(options.stop)
        return cls(options=chosen, format=_format(options.format))


def _within(name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}")
    return round(value, 6)  # a float32 on the wire: 0.7 arrives as 0.699999988


def _stop_strings(stop: Any) -> list[str]:
    strings = list(stop)
    if len(strings) > MAX_STOP_STRINGS:
        raise InvalidInput(f"at most {MAX_STOP_STRINGS} stop strings")
    if any(not s or len(s) > MAX_STOP_CHARS for s in strings):
        raise InvalidInput(f"a stop string must have 1 to {MAX_STOP_CHARS} characters")
    return strings


def _format(text: str) -> Literal["json"] | dict[str, Any] | None:
    if not text:
        return None
    if text == "json":
        return "json"
    if len(text) > MAX_FORMAT_CHARS:
        raise InvalidInput(f"the format schema is longer than {MAX_FORMAT_CHARS} characters")
    try:
        schema = json.loads(text)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise InvalidInput('format must be "json" or a JSON schema object')
    return schema
