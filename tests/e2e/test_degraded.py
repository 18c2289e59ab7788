"""What users get when parts of the system are missing: no Ollama, or no embedding service."""

from __future__ import annotations

import httpx

from bruno_testing.sse import read_events
from bruno_testing.system import BrunoSystem

DOC = {
    "id": "runbooks/dns",
    "title": "DNS",
    "source": "runbooks/dns.md",
    "text": "# DNS\n\nPi-hole runs on the router and forwards cluster.home.arpa to CoreDNS.",
}
QUESTION = "Where does Pi-hole forward cluster.home.arpa?"


def test_without_ollama_the_answer_is_extractive_and_says_so(offline_edge: httpx.Client) -> None:
    assert offline_edge.post("/api/v1/documents", json=DOC).status_code in (200, 201)
    chat = offline_edge.post("/api/v1/chat", json={"message": QUESTION, "top_k": 1})
    assert chat.status_code == 200, chat.text
    body = chat.json()
    assert body["fallback"] is True
    assert body["model"] == "extractive"
    assert "no language model" in body["answer"].lower()
    assert "[1]" in body["answer"]
    assert body["citations"][0]["document_id"] == DOC["id"]


def test_without_ollama_the_stream_is_extractive_too(offline_edge: httpx.Client) -> None:
    offline_edge.post("/api/v1/documents", json=DOC)
    with offline_edge.stream(
        "POST", "/api/v1/chat", json={"message": QUESTION, "stream": True}
    ) as response:
        events = read_events(response.iter_lines())
    assert [name for name, _ in events][-2:] == ["citations", "done"]
    assert events[-1][1]["fallback"] is True


def test_embedding_down_makes_ready_name_it_and_fails_fast_without_half_writes(
    offline_system: BrunoSystem, offline_edge: httpx.Client
) -> None:
    offline_edge.post("/api/v1/documents", json=DOC)
    assert offline_edge.post("/api/v1/chat", json={"message": QUESTION}).status_code == 200
    offline_system.stop_service("embedding")
    try:
        ready = offline_edge.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"].startswith("application/problem+json")
        assert "embedding" in ready.json()["detail"]

        # A question asked before still finds its passages: retrieval kept its vector.
        again = offline_edge.post("/api/v1/chat", json={"message": QUESTION})
        assert again.status_code == 200, again.text
        assert again.json()["citations"][0]["document_id"] == DOC["id"]

        # A new one needs the model, and fails fast naming what is missing.
        chat = offline_edge.post("/api/v1/chat", json={"message": "Which port does CoreDNS use?"})
        assert chat.status_code == 503
        assert chat.headers["content-type"].startswith("application/problem+json")
        assert "embedding" in chat.json()["detail"]

        doc = {**DOC, "id": "runbooks/never-written", "text": "A document that cannot be embedded."}
        ingest = offline_edge.post("/api/v1/documents", json=doc)
        assert ingest.status_code == 503
        listed = offline_edge.get("/api/v1/documents").json()["documents"]
        assert "runbooks/never-written" not in {d["document_id"] for d in listed}
    finally:
        offline_system.start_service("embedding")
        offline_system.wait_ready()
    assert offline_edge.get("/ready").status_code == 200
