"""An upgrade that changes the default embedding model, end to end: the four services as real
processes, the real embedding service serving both built-in models. A collection built before
the upgrade keeps being searched and written with the model that built it, a new collection
gets the new default, and a reindex moves the old one over, all without a 409 in between."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port

OLD, NEW = "all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2-int8-dynamic"
FINISHED = {"succeeded", "failed", "cancelled"}
BACKUP = {
    "id": "backups",
    "title": "Backups",
    "text": "Velero backs up the cluster's volumes to the NAS every night at two.",
}
GPU = {
    "id": "gpu",
    "title": "GPU node",
    "text": "The GPU node runs an RTX 3060 with twelve gigabytes for the model server.",
}
QUESTION = "when do the volume backups run?"


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> Iterator[BrunoSystem]:
    """A system whose embedding service starts on the model that was the default before."""
    env = {"BRUNO_EMBEDDING_ONNX_MODEL": OLD, "BRUNO_EMBEDDING_METRICS_PORT": str(free_port())}
    with BrunoSystem(
        tmp_path_factory.mktemp("bruno-models"), ollama_host=standin.url, env=env
    ) as running:
        yield running


def model_of(edge: httpx.Client, collection: str) -> str:
    response = edge.get("/api/v1/collections")
    assert response.status_code == 200, response.text
    (model,) = [
        found["embedding_model"]
        for found in response.json()["collections"]
        if found["name"] == collection
    ]
    return str(model)


def embedded_by(system: BrunoSystem) -> dict[str, float]:
    """Texts the embedding service has embedded so far, by model (its /metrics)."""
    port = system.env["BRUNO_EMBEDDING_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counted: dict[str, float] = {}
    for line in text.splitlines():
        found = re.match(r"bruno_embedding_texts_total\{(.*)\} (\S+)$", line)
        if found:
            model = re.search(r'model="([^"]*)"', found.group(1))
            assert model is not None, line
            counted[model.group(1)] = counted.get(model.group(1), 0) + float(found.group(2))
    return counted


def hybrid_search(edge: httpx.Client, collection: str) -> list[str]:
    response = edge.post(
        "/api/v1/search", json={"query": QUESTION, "collection": collection, "mode": "hybrid"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "hybrid"  # not a keyword fallback
    return [hit["document_id"] for hit in response.json()["results"]]


def test_an_upgrade_to_another_default_model_keeps_old_collections_serving_until_reindexed(
    system: BrunoSystem,
) -> None:
    with httpx.Client(base_url=system.edge_url, timeout=60) as edge:
        for doc in (BACKUP, GPU):
            created = edge.post("/api/v1/documents", json={**doc, "collection": "legacy"})
            assert created.status_code == 201, created.text
        assert model_of(edge, "legacy") == OLD

        # The upgrade: the embedding service restarts with the new default.
        system.stop_service("embedding")
        system.env["BRUNO_EMBEDDING_ONNX_MODEL"] = NEW
        system.start_service("embedding")
        system.wait_ready()

        before = embedded_by(system)
        assert hybrid_search(edge, "legacy")[0] == "backups"
        # The question was embedded by the model the collection was built with.
        assert embedded_by(system) == {**before, OLD: before.get(OLD, 0) + 1}
        more = {"id": "dns", "title": "DNS", "text": "Pi-hole answers DNS for the home network."}
        assert (
            edge.post("/api/v1/documents", json={**more, "collection": "legacy"}).status_code == 201
        )
        assert model_of(edge, "legacy") == OLD
        assert (
            edge.post("/api/v1/documents", json={**BACKUP, "collection": "fresh"}).status_code
            == 201
        )
        assert model_of(edge, "fresh") == NEW
        before = embedded_by(system)
        assert hybrid_search(edge, "fresh") == ["backups"]
        assert embedded_by(system) == {**before, NEW: before.get(NEW, 0) + 1}

        started = edge.post("/api/v1/collections/legacy/reindex")
        assert started.status_code == 202, started.text
        job = edge.get(started.headers["location"]).json()
        deadline = time.monotonic() + 120
        while job["state"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.1)
            job = edge.get(started.headers["location"]).json()
        assert job["state"] == "succeeded", job
        assert model_of(edge, "legacy") == NEW
        assert hybrid_search(edge, "legacy")[0] == "backups"
