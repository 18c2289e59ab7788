"""Cross-request batching: concurrent requests share model calls, each still gets its own rows.

The model call is a seam: a recording stand-in here (rows that name their text, a gate that
holds the worker inside a call so requests pile up deterministically), the real MiniLM at the
end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import REGISTRY

from bruno_core.queueing import Bounds, Priority, QueueFull
from bruno_embedding.batching import BatcherClosedError, DynamicBatcher, RunBatch
from bruno_embedding.embedders import InputType
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder

SAFETY = 30.0  # seconds; a bound against hanging, never a measurement


def _code(text: str) -> float:
    return float(sum(map(ord, text)))


class RecordingModel:
    """Row ``[code(text), len(text)]`` per text; records every call. With ``hold_first``,
    the first call waits inside until :meth:`release`, so later requests queue up."""

    def __init__(self, *, hold_first: bool = False, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self._entered = threading.Event()
        self._gate = threading.Event()
        if not hold_first:
            self._gate.set()

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        self._entered.set()
        assert self._gate.wait(SAFETY)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot embed {self.fail_on!r}")
        return np.array([[_code(t), len(t)] for t in texts], dtype=np.float32)

    async def held(self) -> None:
        """Return once the worker is inside the first call."""
        assert await asyncio.to_thread(self._entered.wait, SAFETY)

    def release(self) -> None:
        self._gate.set()


def expected(texts: Sequence[str]) -> list[list[float]]:
    return [[_code(t), float(len(t))] for t in texts]


async def queued(batcher: DynamicBatcher, texts: int) -> None:
    """Let the just-created request tasks run up to their first wait (one loop turn runs
    every ready task), by which time each has handed its first chunk over."""
    await asyncio.sleep(0)
    assert batcher.queued_texts == texts


def refusals(priority: str) -> float:
    labels = {"queue": "embedding", "priority": priority}
    return REGISTRY.get_sample_value("bruno_queue_refused_total", labels) or 0.0


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel(hold_first=True)


async def test_concurrent_requests_share_one_model_call(model: RecordingModel) -> None:
    batcher = DynamicBatcher(model, batch_size=32)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    queries = [f"question number {i}" + "?" * i for i in range(16)]
    tasks = [asyncio.create_task(batcher.run([q])) for q in queries]
    await queued(batcher, 16)
    model.release()
    results = await asyncio.gather(first, *tasks)
    assert len(model.calls) == 2  # the held call, then all 16 queries together
    assert sorted(model.calls[1]) == sorted(queries)
    for query, rows in zip(queries, results[1:], strict=True):
        assert rows.tolist() == expected([query])
    batcher.close()


async def test_each_request_gets_its_own_rows_in_input_order(model: RecordingModel) -> None:
    batcher = DynamicBatcher(model, batch_size=8)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    requests = [
        ["a", "ccc", "bb"],
        ["longest text of all", "x"],
        ["one"],
        [f"t{i}" * (i + 1) for i in range(11)],  # larger than batch_size: split in two
    ]
    tasks = [asyncio.create_task(batcher.run(texts)) for texts in requests]
    await queued(batcher, 3 + 2 + 1 + 8)  # the big request hands over one chunk at a time
    model.release()
    results = await asyncio.gather(*tasks)
    await first
    for texts, rows in zip(requests, results, strict=True):
        assert rows.tolist() == expected(texts)
    assert all(len(call) <= 8 for call in model.calls)
    assert len(model.calls) < 1 + len(requests) + 1  # fewer calls than one per chunk
    batcher.close()


async def test_a_lone_request_runs_without_waiting_for_company() -> None:
    model = RecordingModel()
    batcher = DynamicBatcher(model, batch_size=32)
    assert (await batcher.run(["alone"])).tolist() == expected(["alone"])
    assert model.calls == [["alone"]]
    batcher.close()


async def test_a_cancelled_request_has_its_queued_texts_dropped(model: RecordingModel) -> None:
    batcher = DynamicBatcher(model, batch_size=2)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    gone = asyncio.create_task(batcher.run(["gone-1", "gone-2", "gone-3", "gone-4"]))
    await queued(batcher, 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batcher.queued_texts == 0
    model.release()
    await first
    assert (await batcher.run(["after"])).tolist() == expected(["after"])
    assert model.calls == [["warm"], ["after"]]
    batcher.close()


async def test_a_request_cancelled_mid_call_hands_over_no_more_texts(
    model: RecordingModel,
) -> None:
    batcher = DynamicBatcher(model, batch_size=2)
    gone = asyncio.create_task(batcher.run(["gone-1", "gone-2", "gone-3", "gone-4"]))
    await model.held()  # its first chunk is inside the model
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    model.release()
    assert (await batcher.run(["after"])).tolist() == expected(["after"])
    assert [sorted(call) for call in model.calls] == [["gone-1", "gone-2"], ["after"]]
    batcher.close()


async def test_an_error_reaches_only_the_request_that_caused_it() -> None:
    model = RecordingModel(hold_first=True, fail_on="boom")
    batcher = DynamicBatcher(model, batch_size=8)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    good_before = asyncio.create_task(batcher.run(["fine", "also fine"]))
    bad = asyncio.create_task(batcher.run(["boom", "innocent neighbour"]))
    good_after = asyncio.create_task(batcher.run(["still fine"]))
    await queued(batcher, 5)
    model.release()
    await first
    with pytest.raises(ValueError, match="boom"):
        await bad
    assert (await good_before).tolist() == expected(["fine", "also fine"])
    assert (await good_after).tolist() == expected(["still fine"])
    # The shared call failed, then each request ran alone to find the culprit.
    assert len(model.calls[1]) == 5
    assert sorted(map(len, model.calls[2:])) == [1, 2, 2]
    batcher.close()


async def test_closing_fails_queued_requests_and_refuses_new_ones(
    model: RecordingModel,
) -> None:
    batcher = DynamicBatcher(model, batch_size=4)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    waiting = asyncio.create_task(batcher.run(["queued"]))
    await queued(batcher, 1)
    batcher.close()
    with pytest.raises(BatcherClosedError):
        await waiting
    with pytest.raises(BatcherClosedError):
        await batcher.run(["late"])
    model.release()
    assert (await first).tolist() == expected(["warm"])  # the running call still finishes


async def test_queries_queued_after_documents_run_first_and_alone(
    model: RecordingModel,
) -> None:
    batcher = DynamicBatcher(model, batch_size=8)
    first = asyncio.create_task(batcher.run(["warm"], Priority.BACKGROUND))
    await model.held()
    documents = [
        asyncio.create_task(batcher.run([f"document {i}"], Priority.BACKGROUND)) for i in range(3)
    ]
    query = asyncio.create_task(batcher.run(["the question"], Priority.INTERACTIVE))
    await queued(batcher, 4)
    model.release()
    await asyncio.gather(first, query, *documents)
    # A query shares no call with documents: their texts would make its call longer.
    assert model.calls == [
        ["warm"],
        ["the question"],
        ["document 0", "document 1", "document 2"],
    ]
    batcher.close()


async def test_two_models_share_the_worker_but_never_a_call(model: RecordingModel) -> None:
    calls: list[tuple[str, list[str]]] = []

    def named(name: str, run: RecordingModel) -> RunBatch:
        def call(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            calls.append((name, list(texts)))
            return run(texts)

        return call

    a, b = named("a", model), named("b", RecordingModel())
    batcher = DynamicBatcher(a, batch_size=32)
    first = asyncio.create_task(batcher.run(["warm"]))
    await model.held()
    # Queued in this order: documents of model a, of b, of a again, then a query of b.
    a_docs = asyncio.create_task(batcher.run(["doc a1", "doc a2"]))
    b_docs = asyncio.create_task(batcher.run(["doc b1"], call=b))
    a_more = asyncio.create_task(batcher.run(["doc a3"], call=a))
    b_query = asyncio.create_task(batcher.run(["question b"], Priority.INTERACTIVE, b))
    await queued(batcher, 5)
    model.release()
    await asyncio.gather(first, a_docs, b_docs, a_more, b_query)

    assert (await b_docs).tolist() == expected(["doc b1"])
    # The query first, whichever model; then documents in arrival order, a call ending where
    # the next chunk is another model's.
    assert calls == [
        ("a", ["warm"]),
        ("b", ["question b"]),
        ("a", ["doc a1", "doc a2"]),
        ("b", ["doc b1"]),
        ("a", ["doc a3"]),
    ]
    batcher.close()


async def test_document_calls_are_small_so_a_query_waits_little_for_the_one_running() -> None:
    model = RecordingModel()
    batcher = DynamicBatcher(model, batch_size=8, background_call_chars=20)
    texts = ["a" * 30, "b" * 12, "c" * 8, "d" * 5, "e" * 5, "f" * 5]
    assert (await batcher.run(texts, Priority.BACKGROUND)).tolist() == expected(texts)
    assert (await batcher.run(texts, Priority.INTERACTIVE)).tolist() == expected(texts)
    # Longest first: the long text alone, then as many as fit in 20 characters; queries
    # fill a call up to the batch size.
    assert [len(call) for call in model.calls] == [1, 2, 3, 6]
    batcher.close()


async def test_documents_of_several_requests_share_a_call_only_within_its_characters(
    model: RecordingModel,
) -> None:
    batcher = DynamicBatcher(model, batch_size=8, background_call_chars=20)
    first = asyncio.create_task(batcher.run(["warm"], Priority.BACKGROUND))
    await model.held()
    texts = ["x" * 15, "y" * 15, "z" * 5]
    tasks = [asyncio.create_task(batcher.run([t], Priority.BACKGROUND)) for t in texts]
    await queued(batcher, 3)
    model.release()
    await asyncio.gather(first, *tasks)
    assert model.calls[1:] == [["x" * 15], ["y" * 15, "z" * 5]]
    batcher.close()


async def test_a_request_arriving_at_a_full_line_is_refused_at_once(
    model: RecordingModel,
) -> None:
    batcher = DynamicBatcher(model, batch_size=4, max_waiting=Bounds(interactive=1, background=2))
    first = asyncio.create_task(batcher.run(["warm"], Priority.BACKGROUND))
    await model.held()
    documents = [
        asyncio.create_task(batcher.run([f"doc {i}"], Priority.BACKGROUND)) for i in range(2)
    ]
    query = asyncio.create_task(batcher.run(["question"], Priority.INTERACTIVE))
    await queued(batcher, 3)
    refused = refusals("background")
    with pytest.raises(QueueFull, match="2 background requests waiting"):
        await batcher.run(["one document too many"], Priority.BACKGROUND)
    with pytest.raises(QueueFull, match="1 interactive requests waiting"):
        await batcher.run(["one question too many"], Priority.INTERACTIVE)
    assert refusals("background") == refused + 1
    model.release()
    await asyncio.gather(first, query, *documents)
    batcher.close()


class SteppedModel(RecordingModel):
    """Holds every call inside until :meth:`step` lets one out."""

    def __init__(self) -> None:
        super().__init__()
        self._steps = threading.Semaphore(0)
        self._entered_calls = threading.Semaphore(0)

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self._entered_calls.release()
        assert self._steps.acquire(timeout=SAFETY)
        return super().__call__(texts)

    async def entered(self) -> None:
        """Return once one more call is inside."""
        assert await asyncio.to_thread(self._entered_calls.acquire, True, SAFETY)

    def step(self) -> None:
        self._steps.release()


async def test_the_later_chunks_of_an_admitted_request_are_never_refused() -> None:
    model = SteppedModel()
    batcher = DynamicBatcher(model, batch_size=2, max_waiting=Bounds(interactive=1, background=1))
    admitted = asyncio.create_task(batcher.run(["a1", "a2", "a3", "a4"], Priority.BACKGROUND))
    await model.entered()  # its first chunk is inside the model
    query = asyncio.create_task(batcher.run(["question"], Priority.INTERACTIVE))
    other = asyncio.create_task(batcher.run(["other document"], Priority.BACKGROUND))
    await queued(batcher, 2)  # the background line is full now
    model.step()
    await model.entered()  # the query runs; the admitted request hands over its next chunk
    await queued(batcher, 1 + 2)  # the other document and the admitted request's next chunk
    for _ in range(3):
        model.step()
    assert (await admitted).tolist() == expected(["a1", "a2", "a3", "a4"])
    await asyncio.gather(query, other)
    batcher.close()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DynamicBatcher(RecordingModel(), batch_size=0)


async def test_minilm_batched_across_requests_equals_one_by_one(
    minilm: OnnxMiniLMEmbedder,
) -> None:
    texts = [
        "restart",
        "How do I restart a Flux kustomization after changing the git source?",
        "the pod was OOMKilled",
        "Velero backs up persistent volumes every night at two o'clock.",
        "ok",
        "Grafana dashboards read the request latency histogram from Prometheus.",
    ]
    one_by_one = [(await minilm.embed([t], InputType.QUERY))[0] for t in texts]
    calls: list[list[str]] = []
    held = RecordingModel(hold_first=True)

    def run(batch: Sequence[str]) -> npt.NDArray[np.float32]:
        if not calls:
            held(batch)  # hold the worker in the first call so the rest pile up
        calls.append(list(batch))
        return minilm.run_batch(batch)

    batcher = DynamicBatcher(run, batch_size=4)
    first = asyncio.create_task(batcher.run(["warm-up"]))
    await held.held()
    tasks = [asyncio.create_task(batcher.run([t])) for t in texts]
    await queued(batcher, len(texts))
    held.release()
    results = await asyncio.gather(*tasks)
    await first
    assert len(calls) == 1 + 2  # six queries in two shared calls of four and two
    for got, alone in zip(results, one_by_one, strict=True):
        np.testing.assert_allclose(got[0], alone, atol=1e-5)
    batcher.close()
