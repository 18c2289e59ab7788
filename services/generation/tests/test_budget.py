"""Prompts are fitted to the context window: lowest-ranked passages go first, never a cut;
oversized passages are trimmed with a marker."""

from __future__ import annotations

import pytest

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import InvalidInput
from bruno_generation.budget import (
    PASSAGE_TRIM_MARKER,
    estimate_prompt,
    estimate_tokens,
    fit_passages,
    trim_passages,
)
from bruno_generation.prompting import build_messages


def ranked(count: int, chars: int = 600) -> list[generation_pb2.Passage]:
    return [
        generation_pb2.Passage(marker=n, chunk_id=f"c{n}", title=f"T{n}", text="x" * chars)
        for n in range(1, count + 1)
    ]


def test_the_estimate_over_counts_rather_than_under() -> None:
    assert estimate_tokens("") == 0
    # Four characters a token is typical for English; the estimate assumes fewer per token.
    assert estimate_tokens("word " * 100) > 500 / 4


def test_everything_fits_in_a_large_window() -> None:
    fitted = fit_passages("q?", ranked(5), context_window=100_000, reserve=512)

    assert (fitted.used, fitted.dropped) == (5, 0)
    assert fitted.messages == build_messages("q?", ranked(5))


def test_the_lowest_ranked_passages_are_dropped_first_to_fit() -> None:
    passages = ranked(6)
    # Room for the instructions and about three 600-character passages.
    window = estimate_prompt(build_messages("q?", passages[:3])) + 100

    fitted = fit_passages("q?", passages, context_window=window, reserve=100)

    assert (fitted.used, fitted.dropped) == (3, 3)
    assert fitted.estimated_tokens <= window - 100
    prompt = fitted.messages[-1]["content"]
    assert "[1] T1" in prompt
    assert "[3] T3" in prompt
    assert "[4] T4" not in prompt


def test_history_takes_room_from_the_passages() -> None:
    history = [generation_pb2.ChatMessage(role="user", content="y" * 1200)]
    window = estimate_prompt(build_messages("q?", ranked(4))) + 100

    alone = fit_passages("q?", ranked(4), context_window=window, reserve=100)
    with_history = fit_passages("q?", ranked(4), history, context_window=window, reserve=100)

    assert alone.used == 4
    assert with_history.used < 4


def test_a_question_that_cannot_fit_at_all_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="context window of 1024"):
        fit_passages("q" * 5000, ranked(2), context_window=1024, reserve=256)


def test_trimming_leaves_passages_within_the_limit_untouched() -> None:
    passages = [generation_pb2.Passage(text="x" * 100), generation_pb2.Passage(text="y" * 101)]
    req = generation_pb2.GenerateRequest(question="?", passages=passages)

    assert trim_passages(req, 100) == 1

    assert req.passages[0].text == "x" * 100
    assert req.passages[1].text == "y" * (100 - len(PASSAGE_TRIM_MARKER)) + PASSAGE_TRIM_MARKER
