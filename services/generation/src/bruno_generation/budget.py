"""Fitting a prompt into the model's context window, so nothing is ever cut off silently.

A passage longer than ``BRUNO_GENERATION_MAX_PASSAGE_CHARS`` is first cut to it
(:func:`trim_passages`), marked so the model sees the text goes on.

Ollama truncates a prompt longer than ``num_ctx`` without a word, from the front, which
loses the instructions first. So the service estimates the prompt's tokens before it asks,
leaves out the lowest-ranked passages until the rest fits beside a reserve for the answer, and
refuses a question that does not fit even with no passages at all.

    fitted = fit_passages(question, passages, history, context_window=4096, reserve=512)
    fitted.messages, fitted.used, fitted.dropped
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import InvalidInput
from bruno_generation.prompting import ChatTurn, build_messages

# Llama-family tokenizers average about four characters a token on English prose and fewer on
# code, paths and other languages; three over-counts, and over-counting only costs a passage.
CHARS_PER_TOKEN = 3.0
# Each message costs a few tokens of role and separator markup in the chat template.
MESSAGE_OVERHEAD_TOKENS = 4
PASSAGE_TRIM_MARKER = " […]"


def trim_passages(request: generation_pb2.GenerateRequest, max_chars: int) -> int:
    """Cut every passage longer than ``max_chars`` to that length, ending in
    ``PASSAGE_TRIM_MARKER`` so the model sees the text goes on; returns how many were cut.

    Passages come from the knowledge base, not from the person asking: one oversized chunk
    (stored before chunks had a character ceiling, or under a larger chunk budget) must not
    fail every question that retrieves it, so it is trimmed rather than refused.

        request = GenerateRequest(question="?", passages=[Passage(text="a" * 20_000)])
        trim_passages(request, 16_000)  # 1; the passage ends in " […]", 16,000 characters
    """
    keep = max_chars - len(PASSAGE_TRIM_MARKER)
    trimmed = 0
    for passage in request.passages:
        if len(passage.text) > max_chars:
            passage.text = passage.text[:keep].rstrip() + PASSAGE_TRIM_MARKER
            trimmed += 1
    return trimmed


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of the tokens ``text`` takes."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt(messages: Sequence[ChatTurn]) -> int:
    """The estimated tokens of a whole chat prompt."""
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


@dataclass(frozen=True)
class FittedPrompt:
    """The messages to send, and how many of the given passages made it in."""

    messages: list[ChatTurn]
    used: int
    dropped: int
    estimated_tokens: int


def fit_passages(
    question: str,
    passages: Sequence[generation_pb2.Passage],
    history: Sequence[generation_pb2.ChatMessage] = (),
    *,
    context_window: int,
    reserve: int,
) -> FittedPrompt:
    """The prompt with as many passages as fit, dropping the lowest-ranked (last) first.

    Raises :class:`InvalidInput` when the question and history alone leave no room.
    """
    limit = context_window - reserve

    def attempt(used: int) -> FittedPrompt:
        messages = build_messages(question, passages[:used], history)
        return FittedPrompt(messages, used, len(passages) - used, estimate_prompt(messages))

    best = attempt(len(passages))
    if best.estimated_tokens > limit:
        # The prompt grows with every passage added, so search for the most that fit.
        low, high, best = 0, len(passages) - 1, attempt(0)
        if best.estimated_tokens > limit:
            raise InvalidInput(
                f"the question and conversation need about {best.estimated_tokens} tokens, "
                f"more than the {limit} that the model's context window of {context_window} "
                f"leaves after {reserve} kept for the answer"
            )
        while low < high:
            middle = (low + high + 1) // 2
            candidate = attempt(middle)
            if candidate.estimated_tokens <= limit:
                low, best = middle, candidate
            else:
                high = middle - 1
    return best
