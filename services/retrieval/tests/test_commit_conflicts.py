"""A commit preempted by a concurrent one is done again from the latest version, a bounded
number of times, and only that kind of failure; shown on a real LanceDB table whose index build
is preempted by a compaction."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest
from lancedb.index import IvfPq

from bruno_retrieval.commit_conflicts import (
    ATTEMPTS,
    is_retryable_commit_conflict,
    retry_commit_conflicts,
)

PREEMPTED = RuntimeError(
    "lance error: Retryable commit conflict for version 63: This CreateIndex transaction was "
    "preempted by concurrent transaction Rewrite at version 63. Please retry."
)


class Table:
    """Counts how often the handle is moved to the latest version."""

    def __init__(self) -> None:
        self.refreshed = 0

    async def checkout_latest(self) -> None:
        self.refreshed += 1


class Attempts:
    """An operation that fails with the given errors, one per call, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_an_operation_preempted_by_a_concurrent_commit_is_done_again_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table, operation = Table(), Attempts(PREEMPTED, PREEMPTED)

    with caplog.at_level(logging.WARNING, logger="bruno_retrieval.commit_conflicts"):
        # A plain callable handing back an awaitable, as callers pass lambdas.
        result = await retry_commit_conflicts(
            table, lambda: operation(), "building the vector index"
        )

    assert (result, operation.calls, table.refreshed) == ("done", 3, 2)
    retries = [r.getMessage() for r in caplog.records]
    assert retries == ["building the vector index lost a commit race; trying again"] * 2


async def test_a_commit_that_keeps_losing_is_given_up_after_the_bounded_attempts() -> None:
    operation = Attempts(*[PREEMPTED] * (ATTEMPTS + 1))

    with pytest.raises(RuntimeError, match="Retryable commit conflict"):
        await retry_commit_conflicts(Table(), operation, "optimizing the collection")

    assert operation.calls == ATTEMPTS


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("lance error: Commit conflict for version 7: incompatible transaction"),
        ValueError("Retryable commit conflict"),  # the words, but not LanceDB's error
        OSError("disk full"),
    ],
)
async def test_any_other_failure_is_raised_at_once(error: Exception) -> None:
    operation = Attempts(error)

    with pytest.raises(type(error)):
        await retry_commit_conflicts(Table(), operation, "optimizing the collection")

    assert operation.calls == 1
    assert not is_retryable_commit_conflict(error)


async def many_fragments(path: Path) -> Any:
    """A table of 600 random 16-dimensional vectors written in 60 appends (60 fragments)."""
    db = await lancedb.connect_async(str(path))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.float32(), 16))])
    table = await db.create_table("t", schema=schema)
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    for batch in range(60):
        rows = [
            {"id": batch * 10 + n, "vector": [rng.random() for _ in range(16)]} for n in range(10)
        ]
        await table.add(pa.Table.from_pylist(rows, schema=schema))
    return table


@pytest.mark.slow  # builds a vector index
async def test_an_index_build_preempted_by_a_compaction_is_built_on_the_compacted_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = await many_fragments(tmp_path / "lancedb")
    # Another handle compacts first: this handle's build starts from the version before and
    # is preempted at its commit, every time unless it moves to the compacted version.
    other = await lancedb.connect_async(str(tmp_path / "lancedb"))
    compactor: Any = await other.open_table("t")  # lancedb's close() is untyped
    await compactor.optimize()
    compactor.close()
    config = IvfPq(distance_type="cosine", num_partitions=4, num_sub_vectors=2)
    caplog.set_level(logging.WARNING, logger="bruno_retrieval.commit_conflicts")
    try:
        await retry_commit_conflicts(
            table, lambda: table.create_index("vector", config=config), "building the vector index"
        )
        indexes = [index.columns for index in await table.list_indices()]
        rows = await table.count_rows()
    finally:
        table.close()

    assert indexes == [["vector"]]
    assert rows == 600
    assert [r.getMessage() for r in caplog.records] == [
        "building the vector index lost a commit race; trying again"
    ]
