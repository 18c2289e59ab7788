"""What every answer generator yields: the answer's text in pieces, then one :class:`Finished`.

async for piece in generator.generate(...):
    if isinstance(piece, Finished): ...  # always last, exactly once
    else: ...                            # a str: the next bit of the answer
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    """How an answer ended: who wrote it and what it cost."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    passages_used: int
    fallback: bool = False
    passages_dropped: int = 0  # left out to fit the model's context window
    finish_reason: str = "stop"  # "length": the max_tokens limit cut the answer short


AnswerStream = AsyncGenerator[str | Finished, None]
