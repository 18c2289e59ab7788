"""The embedded MiniLM model: real weights, real tokenizer, real onnxruntime."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bruno_embedding.embedders import InputType
from bruno_embedding.onnx_embedder import (
    DIMENSION,
    MAX_INPUT_CHARS,
    MAX_INPUT_TOKENS,
    OnnxMiniLMEmbedder,
    length_groups,
    load_tokenizer,
    mean_pool_normalise,
)

TEXTS = [
    "restart",
    "How do I restart a Flux kustomization after changing the git source?",
    "LanceDB keeps its tables in a local directory or on S3-compatible object storage. " * 4,
    "the pod was OOMKilled",
    "Velero backs up persistent volumes every night at two o'clock.",
    "ok",
    "Grafana dashboards read the request latency histogram from Prometheus.",
]


def _matrix(vectors: list[list[float]]) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float64)


async def test_vectors_have_384_dimensions_and_unit_length(minilm: OnnxMiniLMEmbedder) -> None:
    vectors = _matrix(await minilm.embed(TEXTS, InputType.DOCUMENT))
    assert vectors.shape == (len(TEXTS), DIMENSION) == (7, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_a_paraphrase_is_closer_than_an_unrelated_sentence(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    question, paraphrase, unrelated = _matrix(
        await minilm.embed(
            [
                "How do I restart a crashed pod?",
                "What is the way to reboot a pod that crashed?",
                "My grandmother bakes apple pie on Sundays.",
            ],
            InputType.DOCUMENT,
        )
    )
    assert question @ paraphrase > 0.6
    assert question @ paraphrase > question @ unrelated + 0.4


async def test_a_batch_keeps_input_order_and_equals_one_by_one(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    together = _matrix(await minilm.embed(TEXTS, InputType.DOCUMENT))
    one_by_one = _matrix([(await minilm.embed([t], InputType.DOCUMENT))[0] for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # And the rows are distinct, so a permutation could not pass the comparison above.
    assert len({tuple(np.round(row, 4)) for row in together}) == len(TEXTS)


async def test_concurrent_requests_each_get_their_own_vectors(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    first, second = TEXTS[:4], TEXTS[4:]
    alone = [
        await minilm.embed(first, InputType.DOCUMENT),
        await minilm.embed(second, InputType.DOCUMENT),
    ]
    together = await asyncio.gather(
        minilm.embed(first, InputType.DOCUMENT), minilm.embed(second, InputType.DOCUMENT)
    )
    for got, expected in zip(together, alone, strict=True):
        np.testing.assert_allclose(_matrix(got), _matrix(expected), atol=1e-5)


async def test_minilm_embeds_queries_and_documents_alike(minilm: OnnxMiniLMEmbedder) -> None:
    as_query = await minilm.embed(TEXTS[:2], InputType.QUERY)
    as_document = await minilm.embed(TEXTS[:2], InputType.DOCUMENT)
    np.testing.assert_allclose(_matrix(as_query), _matrix(as_document), atol=1e-6)


async def test_a_long_text_is_truncated_at_256_tokens(minilm: OnnxMiniLMEmbedder) -> None:
    head = " ".join(f"alpha{i}" for i in range(3000))
    ending_a, ending_b = _matrix(
        await minilm.embed([head + " kubernetes", head + " lasagne"], InputType.DOCUMENT)
    )
    np.testing.assert_allclose(ending_a, ending_b, atol=1e-6)  # the endings were cut off
    assert len(load_tokenizer().encode(head).ids) == MAX_INPUT_TOKENS


async def test_text_past_128_tokens_still_counts(minilm: OnnxMiniLMEmbedder) -> None:
    # The shipped tokenizer.json truncates at 128; the model reads 256.
    tokenizer = load_tokenizer()
    head = " ".join(["cluster"] * 150)
    assert 128 < len(tokenizer.encode(head + " kubernetes").ids) < MAX_INPUT_TOKENS
    ending_a, ending_b = _matrix(
        await minilm.embed([head + " kubernetes", head + " lasagne"], InputType.DOCUMENT)
    )
    assert not np.allclose(ending_a, ending_b, atol=1e-4)


def test_mean_pooling_ignores_padding_positions() -> None:
    hidden = np.array(
        [[[3.0, 0.0], [0.0, 4.0], [100.0, 100.0]]], dtype=np.float32
    )  # one text, two real tokens and one pad
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    pooled = mean_pool_normalise(hidden, mask)
    np.testing.assert_allclose(pooled, [[0.6, 0.8]], atol=1e-6)


def test_tokenizer_pads_to_the_longest_text_of_the_batch() -> None:
    encodings = load_tokenizer().encode_batch(["one two", "one two three four five"])
    assert len(encodings[0].ids) == len(encodings[1].ids) == 7  # [CLS] … [SEP]
    assert encodings[0].attention_mask == [1, 1, 1, 1, 0, 0, 0]


async def test_info_describes_the_int8_minilm(minilm: OnnxMiniLMEmbedder) -> None:
    info = await minilm.info()
    assert (info.backend, info.dimension, info.max_input_tokens) == ("onnx", 384, 256)
    assert "MiniLM-L6-v2" in info.model


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        OnnxMiniLMEmbedder(batch_size=0)


@pytest.mark.parametrize(
    "lengths",
    [[7], [5, 5, 5, 5], [3, 250, 4, 240, 5, 12, 13, 256, 9], list(range(1, 60)), [12] * 31 + [256]],
)
def test_length_groups_cover_every_text_once_and_bound_the_padding(lengths: list[int]) -> None:
    array = np.array(lengths, dtype=np.int64)

    groups = length_groups(array, max_padding=0.2)

    assert sorted(int(i) for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        padded = len(group) * int(array[group].max())
        assert padded - int(array[group].sum()) <= 0.2 * padded


def test_texts_of_similar_length_stay_one_call_and_outliers_get_their_own() -> None:
    assert length_groups(np.array([], dtype=np.int64)) == []
    assert len(length_groups(np.array([20, 21, 19, 22, 20], dtype=np.int64))) == 1
    groups = length_groups(np.array([12] * 31 + [256], dtype=np.int64))
    assert [len(group) for group in groups] == [31, 1]


@pytest.mark.parametrize("max_tokens", [256, 1024, 4096])
def test_no_length_group_exceeds_the_padded_token_cap(max_tokens: int) -> None:
    lengths = np.array([256] * 40 + [30] * 100 + [3, 250, 77, 128, 129], dtype=np.int64)

    groups = length_groups(lengths, max_tokens=max_tokens)

    assert sorted(int(i) for group in groups for i in group) == list(range(len(lengths)))
    assert all(len(group) * int(lengths[group].max()) <= max_tokens for group in groups)


async def test_calls_cut_to_the_token_cap_give_the_same_vectors(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    long_texts = [f"{text} " * 40 for text in TEXTS]  # each past the 256 tokens read
    narrow = OnnxMiniLMEmbedder(batch_size=32, threads=1, max_batch_tokens=MAX_INPUT_TOKENS)
    try:
        one_per_call = _matrix(await narrow.embed(long_texts, InputType.DOCUMENT))
    finally:
        await narrow.aclose()
    np.testing.assert_allclose(
        one_per_call, _matrix(await minilm.embed(long_texts, InputType.DOCUMENT)), atol=1e-5
    )


def test_the_token_cap_holds_at_least_one_whole_text() -> None:
    with pytest.raises(ValueError, match="max_batch_tokens"):
        OnnxMiniLMEmbedder(max_batch_tokens=MAX_INPUT_TOKENS - 1)


async def test_a_text_is_read_no_further_than_max_input_chars(minilm: OnnxMiniLMEmbedder) -> None:
    # Words past MAX_INPUT_CHARS never reach the tokenizer, even when a long blank stretch
    # leaves the model room for them.
    head = "restore the backup volume"
    hidden_tail = head + " " * MAX_INPUT_CHARS + "lasagne recipe with basil"
    same, cut = _matrix(await minilm.embed([head, hidden_tail], InputType.DOCUMENT))
    np.testing.assert_allclose(same, cut, atol=1e-6)


def test_memory_patterns_are_off() -> None:
    # One allocation plan per input shape, and every call here has its own (test_memory.py).
    options = OnnxMiniLMEmbedder(threads=1)._session.get_session_options()
    assert options.enable_mem_pattern is False


def test_idle_threads_do_not_spin_unless_asked() -> None:
    def spinning(embedder: OnnxMiniLMEmbedder) -> str:
        options = embedder._session.get_session_options()
        return str(options.get_session_config_entry("session.intra_op.allow_spinning"))

    assert spinning(OnnxMiniLMEmbedder(threads=1)) == "0"
    assert spinning(OnnxMiniLMEmbedder(threads=1, thread_spinning=True)) == "1"
