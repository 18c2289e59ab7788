"""The answer Bruno gives when no language model is available: the passages' own sentences.

It says plainly that no model wrote it, then quotes the sentences that share the most words
with the question, each followed by its passage's citation marker. It streams word by word,
like a model, so callers handle both answers the same way.

    generator = ExtractiveGenerator()
    async for piece in generator.generate("How do I restore a backup?", passages):
        ...
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bruno.generation.v1 import generation_pb2
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.prompting import marker_of

MODEL_NAME = "extractive"
NO_MODEL_NOTICE = (
    "No language model was reachable, so this answer quotes the retrieved passages directly."
)
NOTHING_FOUND = (
    "No language model was reachable, and I found nothing relevant in the knowledge base "
    "to answer this question."
)
_MAX_QUOTE_CHARS = 400

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_MARK = re.compile(r"^(?:[#>*\-+]+|\d+[.)])\s+")
# Words too common to say anything about what a question is after.
_STOPWORDS = frozenset(
    _WORD.findall(
        "a an and are as at be by can do does for from how i if in is it its me my of on or "
        "should so that the their there these this to was we what when where which who why "
        "will with you your"
    )
)


@dataclass(frozen=True)
class _Sentence:
    text: str
    marker: int
    rank: int  # the passage's position: retrieval put the best first
    position: int
    score: int


def content_terms(text: str) -> list[str]:
    """The words of ``text`` that say what it is about, in order, without repeats."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1)
    return list(dict.fromkeys(words))


def _terms(text: str) -> set[str]:
    return set(content_terms(text))


def _sentences(passage: generation_pb2.Passage, rank: int, question: set[str]) -> list[_Sentence]:
    found = []
    for position, raw in enumerate(_SENTENCE_END.split(passage.text)):
        text = _LIST_MARK.sub("", " ".join(raw.split()))
        if len(_WORD.findall(text)) < 3:
            continue  # headings and fragments read badly on their own
        if len(text) > _MAX_QUOTE_CHARS:
            text = text[:_MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        score = len(question & _terms(text))
        found.append(_Sentence(text, marker_of(passage, rank), rank, position, score))
    return found


def compose_answer(
    question: str, passages: Sequence[generation_pb2.Passage], *, max_sentences: int = 4
) -> tuple[str, int]:
    """The fallback answer's text and how many passages it quotes."""
    wanted = _terms(question)
    candidates = [
        sentence
        for rank, passage in enumerate(passages, start=1)
        for sentence in _sentences(passage, rank, wanted)
    ]
    if not candidates:
        return NOTHING_FOUND, 0
    best = sorted(candidates, key=lambda s: (-s.score, s.rank, s.position))
    chosen: list[_Sentence] = []
    for sentence in best:
        if len(chosen) == max_sentences or (chosen and sentence.score == 0):
            break  # with no overlap at all, the best-ranked passage's opening is the answer
        if all(sentence.text != c.text for c in chosen):
            chosen.append(sentence)
    chosen.sort(key=lambda s: (s.rank, s.position))
    quotes = "\n".join(f"- {s.text} [{s.marker}]" for s in chosen)
    return f"{NO_MODEL_NOTICE}\n\n{quotes}", len({s.marker for s in chosen})


class ExtractiveGenerator:
    """Answers from the passages themselves; needs nothing but the request."""

    model = MODEL_NAME

    def __init__(self, *, max_sentences: int = 4) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.max_sentences = max_sentences

    async def generate(
        self, question: str, passages: Sequence[generation_pb2.Passage]
    ) -> AnswerStream:
        """The answer word by word, then one :class:`Finished` with ``fallback`` set."""
        text, quoted = compose_answer(question, passages, max_sentences=self.max_sentences)
        pieces = re.findall(r"\S+\s*|\s+", text)
        for piece in pieces:
            yield piece
            await asyncio.sleep(0)  # a cancellation point between words, as a model has
        read = len(_WORD.findall(question)) + sum(len(_WORD.findall(p.text)) for p in passages)
        yield Finished(
            model=MODEL_NAME,
            prompt_tokens=read,
            completion_tokens=len(pieces),
            passages_used=quoted,
            fallback=True,
        )
