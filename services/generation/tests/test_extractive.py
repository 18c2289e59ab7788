"""The fallback answer quoted from the passages when no language model is reachable."""

from __future__ import annotations

import pytest

from bruno.generation.v1 import generation_pb2
from bruno_generation.answer import Finished
from bruno_generation.extractive import (
    NO_MODEL_NOTICE,
    NOTHING_FOUND,
    ExtractiveGenerator,
    compose_answer,
)


async def collect(
    question: str, passages: list[generation_pb2.Passage]
) -> tuple[list[str], Finished]:
    pieces: list[str] = []
    finished: list[Finished] = []
    async for piece in ExtractiveGenerator().generate(question, passages):
        if isinstance(piece, Finished):
            finished.append(piece)
        else:
            assert not finished, "text after the end"
            pieces.append(piece)
    assert len(finished) == 1
    return pieces, finished[0]


async def test_the_answer_says_no_model_wrote_it_and_cites_what_it_quotes(
    passages: list[generation_pb2.Passage],
) -> None:
    pieces, finished = await collect("How do I restore a velero backup?", passages)
    text = "".join(pieces)

    assert text.startswith(NO_MODEL_NOTICE)
    assert "Restore a backup with velero restore create. [2]" in text
    assert finished.model == "extractive"
    assert finished.fallback is True
    assert "Velero backs up the cluster nightly. [2]" in text
    assert "[1]" not in text  # nothing about Flux answers a question about restoring
    assert finished.passages_used == 1


async def test_the_answer_streams_word_by_word(passages: list[generation_pb2.Passage]) -> None:
    pieces, finished = await collect("How do I restore a velero backup?", passages)

    assert len(pieces) > 10
    assert all(len(piece.split()) == 1 for piece in pieces)
    assert finished.completion_tokens == len(pieces)


def test_sentences_sharing_words_with_the_question_are_chosen_over_others(
    passages: list[generation_pb2.Passage],
) -> None:
    text, used = compose_answer("When does velero back up the cluster?", passages, max_sentences=1)

    assert text.endswith("- Velero backs up the cluster nightly. [2]")
    assert "Flux" not in text
    assert used == 1


def test_markers_come_from_the_passages() -> None:
    passages = [
        generation_pb2.Passage(marker=7, text="Grafana shows the request latency dashboard."),
    ]

    text, _ = compose_answer("where is the latency dashboard", passages)

    assert text.endswith("Grafana shows the request latency dashboard. [7]")


def test_with_no_word_in_common_the_best_passage_opening_is_quoted(
    passages: list[generation_pb2.Passage],
) -> None:
    text, used = compose_answer("zebra quantum", passages)

    assert text == f"{NO_MODEL_NOTICE}\n\n- Flux reconciles the cluster every ten minutes. [1]"
    assert used == 1


async def test_without_passages_it_says_nothing_relevant_was_found() -> None:
    pieces, finished = await collect("How do I restore?", [])

    assert "".join(pieces) == NOTHING_FOUND
    assert "nothing relevant" in NOTHING_FOUND
    assert finished.passages_used == 0
    assert finished.fallback is True


def test_at_least_one_sentence_is_required() -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveGenerator(max_sentences=0)
