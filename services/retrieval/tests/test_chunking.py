"""Chunking: structure is followed, bounds hold, nothing is lost."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bruno_retrieval.chunking import (
    MAX_HEADING_PATH_CHARS,
    chunk_text,
    estimate_tokens,
    max_chunk_chars,
)

WORDS = [
    "backup", "restore", "velero", "node", "pod", "volume", "snapshot", "cluster", "flux",
    "kustomize", "ingress", "certificate", "secret", "replica", "canary", "latency", "disk",
    "network", "policy", "schedule", "retention", "operator", "manifest", "image", "digest",
]  # fmt: skip


def random_document(seed: int) -> str:
    """Markdown with headings at several levels, setext titles, lists, code fences holding
    '#' comment lines, long paragraphs and a few very long sentences."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets

    def sentence(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."

    parts: list[str] = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if kind < 0.25:
            parts.append("#" * rng.randint(1, 4) + " " + sentence(2)[:-1])
        elif kind < 0.35:
            title = sentence(2)[:-1]
            parts.append(title + "\n" + rng.choice("=-") * len(title))
        elif kind < 0.45:
            lines = [
                f"# {sentence(3)}" if rng.random() < 0.5 else "kubectl get pods" for _ in range(4)
            ]
            parts.append("```bash\n" + "\n".join(lines) + "\n```")
        elif kind < 0.55:
            parts.append("\n".join(f"- {sentence(rng.randint(2, 6))}" for _ in range(5)))
        else:
            sentences = (sentence(rng.randint(3, 70)) for _ in range(rng.randint(1, 12)))
            parts.append(" ".join(sentences))
    return "\n\n".join(parts) + "\n"


BOUNDS = [(16, 4), (32, 8), (200, 40), (50, 0)]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize(("size", "overlap"), BOUNDS)
def test_every_word_of_the_input_appears_in_some_chunk(seed: int, size: int, overlap: int) -> None:
    text = random_document(seed)
    chunks = chunk_text(text, size_tokens=size, overlap_tokens=overlap)
    chunk_words = {word for chunk in chunks for word in chunk.text.split()}
    # A word longer than a chunk (a long "=====" underline at size 16) cannot lie whole in
    # one; test_a_token_run_longer_than_a_chunk_is_cut_without_losing_characters covers it.
    words = {
        word
        for word in text.split()
        if estimate_tokens(word) <= size and len(word) <= max_chunk_chars(size)
    }
    assert words <= chunk_words


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize(("size", "overlap"), BOUNDS)
def test_no_chunk_exceeds_the_token_bound(seed: int, size: int, overlap: int) -> None:
    chunks = chunk_text(random_document(seed), size_tokens=size, overlap_tokens=overlap)
    assert chunks
    assert all(0 < estimate_tokens(chunk.text) <= size for chunk in chunks)


@pytest.mark.parametrize("seed", range(10))
def test_chunks_are_verbatim_slices_numbered_in_order(seed: int) -> None:
    text = random_document(seed)
    chunks = chunk_text(text, size_tokens=16, overlap_tokens=4)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert all(chunk.text in text and chunk.text == chunk.text.strip() for chunk in chunks)


def test_chunks_carry_their_heading_path() -> None:
    text = (
        "Intro text before any heading.\n\n"
        "# Setup\n\nWhat setup needs.\n\n"
        "## Install\n\nRun the installer.\n\n"
        "### Linux\n\nUse the package.\n\n"
        "## Configure\n\nEdit the file.\n\n"
        "# Usage ##\n\nCall the API.\n"
    )
    chunks = chunk_text(text, size_tokens=200, overlap_tokens=40)
    paths = {chunk.text.splitlines()[-1]: chunk.heading_path for chunk in chunks}
    assert paths == {
        "Intro text before any heading.": "",
        "What setup needs.": "Setup",
        "Run the installer.": "Setup > Install",
        "Use the package.": "Setup > Install > Linux",
        "Edit the file.": "Setup > Configure",
        "Call the API.": "Usage",
    }


def test_restructuredtext_titles_are_headings_ranked_by_first_appearance() -> None:
    text = (
        "==========\nOperations\n==========\n\nOverview of operations.\n\n"
        "Backups\n=======\n\nVelero takes them.\n\n"
        "Restores\n--------\n\nFrom the latest snapshot.\n\n"
        "Upgrades\n========\n\nOne node at a time.\n"
    )
    chunks = chunk_text(text, size_tokens=200, overlap_tokens=40)
    paths = {chunk.text.splitlines()[-1]: chunk.heading_path for chunk in chunks}
    assert paths == {
        "Overview of operations.": "Operations",
        "Velero takes them.": "Operations > Backups",
        "From the latest snapshot.": "Operations > Backups > Restores",
        "One node at a time.": "Operations > Upgrades",
    }


def test_hash_lines_inside_fenced_code_are_not_headings() -> None:
    text = "# Restore\n\n```bash\n# stop the app first\nvelero restore create\n```\n\nDone.\n"
    chunks = chunk_text(text, size_tokens=200, overlap_tokens=40)
    assert [chunk.heading_path for chunk in chunks] == ["Restore"]


def test_a_heading_without_text_of_its_own_joins_the_next_section() -> None:
    chunks = chunk_text("# Setup\n\n## Install\n\nRun it.\n", size_tokens=200, overlap_tokens=40)
    assert [(chunk.text, chunk.heading_path) for chunk in chunks] == [
        ("# Setup\n\n## Install\n\nRun it.", "Setup > Install")
    ]


def test_chunks_never_span_two_sections() -> None:
    text = "# One\n\nFirst section text.\n\n# Two\n\nSecond section text.\n"
    chunks = chunk_text(text, size_tokens=200, overlap_tokens=40)
    assert [chunk.text for chunk in chunks] == [
        "# One\n\nFirst section text.",
        "# Two\n\nSecond section text.",
    ]


def test_consecutive_chunks_of_a_long_section_overlap() -> None:
    text = " ".join(f"Sentence number {n} is about disks." for n in range(60))
    chunks = chunk_text(text, size_tokens=30, overlap_tokens=10)
    assert len(chunks) > 5
    for previous, current in itertools.pairwise(chunks):
        shared = next(
            (
                n
                for n in range(len(current.text), 0, -1)
                if previous.text.endswith(current.text[:n])
            ),
            0,
        )
        assert 0 < estimate_tokens(current.text[:shared]) <= 10
        # The overlap starts at a sentence start, not mid-sentence.
        assert current.text.startswith("Sentence number")


def test_without_overlap_chunks_tile_the_section() -> None:
    text = " ".join(f"Sentence number {n} is about disks." for n in range(60))
    chunks = chunk_text(text, size_tokens=30, overlap_tokens=0)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_chunks_end_at_a_paragraph_break_when_one_is_in_reach() -> None:
    first = " ".join(["alpha"] * 20) + "."
    second = " ".join(["beta"] * 20) + "."
    chunks = chunk_text(f"{first}\n\n{second}", size_tokens=30, overlap_tokens=0)
    assert [chunk.text for chunk in chunks] == [first, second]


def test_a_token_run_longer_than_a_chunk_is_cut_without_losing_characters() -> None:
    url = "https://example.org/" + "/".join(f"part{n}" for n in range(200))
    chunks = chunk_text(url, size_tokens=25, overlap_tokens=5)
    assert len(chunks) > 1
    assert all(estimate_tokens(chunk.text) <= 25 for chunk in chunks)
    # No word boundary to start an overlap at, so the pieces tile the run exactly.
    assert "".join(chunk.text for chunk in chunks) == url


def test_whitespace_only_text_gives_no_chunks() -> None:
    assert chunk_text(" \n\n\t ", size_tokens=200, overlap_tokens=40) == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_impossible_bounds_are_rejected(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_text("some text", size_tokens=size, overlap_tokens=overlap)


def test_token_estimate_counts_words_and_punctuation_marks() -> None:
    assert estimate_tokens("Don't panic: restore_db() now!") == 10


# --- the hard ceiling: no input makes a chunk, or the chunks of a document, grow unbounded ---

# Text built to hit the ceiling: words, runs with no boundary, long blank stretches, heading
# and underline lines, fences, punctuation and non-ASCII letters.
_PIECES = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from([" ", "  ", "\n", "\n\n", "\t", ". ", "# ", "## ", "===", "```", "-"]),
    st.integers(1, 5_000).map(lambda n: "a" * n),
    st.integers(1, 5_000).map(lambda n: " " * n),
    st.integers(1, 500).map(lambda n: "\u00e9\u4e2d" * n),
    st.text(max_size=30),
)
_TEXTS = st.lists(_PIECES, max_size=60).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=_TEXTS, size=st.integers(16, 400), overlap_share=st.floats(0, 0.5))
def test_no_chunk_exceeds_its_token_or_character_budget_whatever_the_input(
    text: str, size: int, overlap_share: float
) -> None:
    overlap = int(size * overlap_share)

    chunks = chunk_text(text, size_tokens=size, overlap_tokens=overlap)

    for chunk in chunks:
        assert 0 < len(chunk.text) <= max_chunk_chars(size)
        assert estimate_tokens(chunk.text) <= size
        assert len(chunk.heading_path) <= MAX_HEADING_PATH_CHARS
        assert chunk.text in text
    # Nothing is lost: every non-blank character lies in some chunk (overlaps only repeat),
    # and overlaps never make the chunks hold much more than the text itself.
    stored = sum(len(chunk.text) for chunk in chunks)
    assert stored >= sum(1 for char in text if not char.isspace())
    assert stored <= 2 * len(text)


def test_a_poison_run_of_letters_is_cut_by_characters_into_bounded_chunks() -> None:
    text = "How to restore the backup volume. " + "a" * 1_500_000

    chunks = chunk_text(text, size_tokens=200, overlap_tokens=20)

    assert max(len(chunk.text) for chunk in chunks) == max_chunk_chars(200) == 2_000
    assert chunks[0].text.startswith("How to restore the backup volume.")
    assert sum(chunk.text.count("a") for chunk in chunks) >= 1_500_000


def test_a_long_blank_stretch_ends_a_chunk_instead_of_being_stored() -> None:
    text = "restore the volume" + " " * 1_000_000 + "then check the pods"

    chunks = chunk_text(text, size_tokens=200, overlap_tokens=20)

    assert [chunk.text for chunk in chunks] == ["restore the volume", "then check the pods"]


def test_long_words_are_not_stored_again_and_again_by_the_overlap() -> None:
    text = " ".join(f"{n:03d}" + "w" * 96 for n in range(2_000))  # 2,000 words of 99 letters

    chunks = chunk_text(text, size_tokens=200, overlap_tokens=20)

    assert sum(len(chunk.text) for chunk in chunks) < 1.2 * len(text)


def test_a_huge_heading_is_cut_in_the_heading_path() -> None:
    text = "# Restore " + "x" * 100_000 + "\n\nStop the app first.\n"

    chunks = chunk_text(text, size_tokens=200, overlap_tokens=20)

    assert {len(chunk.heading_path) for chunk in chunks} == {MAX_HEADING_PATH_CHARS}
    assert all(chunk.heading_path.startswith("Restore xxx") for chunk in chunks)
    assert chunks[-1].heading_path.endswith("\u2026")


def test_blanks_inside_a_heading_title_take_linear_time() -> None:
    # "# x<blanks>y": the closing-"#"s pattern once backtracked over every blank (40,000 took
    # 18 s). Linear now, so a document of them chunks at once; pytest-timeout catches a relapse.
    text = ("# x" + " " * 40_000 + "y\n\nbody\n") * 25

    chunks = chunk_text(text, size_tokens=200, overlap_tokens=20)

    assert sum(chunk.text.endswith("body") for chunk in chunks) == 25


def test_a_closing_run_of_hashes_is_not_part_of_the_title() -> None:
    chunks = chunk_text(
        "## Usage ##\n\nCall it.\n\n# C#\n\nA language.\n", size_tokens=200, overlap_tokens=0
    )
    assert [chunk.heading_path for chunk in chunks] == ["Usage", "C#"]
