"""The whole path a user takes: ingest a document, find it, be answered from it, delete it."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest

from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.sse import read_events
from bruno_testing.system import BrunoSystem

GPU_DOC = {
    "id": "runbooks/gpu-node",
    "title": "GPU node",
    "source": "runbooks/gpu-node.md",
    "text": (
        "# GPU node\n\nOllama runs on the node labelled gpu=true. It has an NVIDIA RTX 3060 "
        "graphics card with 12 GB of memory, enough for 8 billion parameter models."
    ),
    "metadata": {"team": "homelab"},
}
BACKUP_DOC = {
    "id": "runbooks/backups",
    "title": "Backups",
    "source": "runbooks/backups.md",
    "text": (
        "# Backups\n\nVelero takes an hourly backup of the namespace, kept for 30 days, "
        "and a daily backup kept for 90 days."
    ),
}
QUESTION = "Which graphics card does the GPU node have?"


def ingest(edge: httpx.Client, doc: Mapping[str, object]) -> httpx.Response:
    return edge.post("/api/v1/documents", json=doc)


def test_ready_names_every_downstream_when_all_serve(edge: httpx.Client) -> None:
    response = edge.get("/ready")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"retrieval", "generation", "embedding"}


def test_an_ingested_document_is_found_cited_and_gone_after_delete(
    edge: httpx.Client, standin: OllamaStandIn
) -> None:
    created = ingest(edge, GPU_DOC)
    assert created.status_code == 201, created.text
    assert created.json()["document_id"] == GPU_DOC["id"]
    assert created.json()["chunks"] >= 1
    assert ingest(edge, BACKUP_DOC).status_code == 201

    search = edge.post("/api/v1/search", json={"query": QUESTION, "top_k": 2})
    assert search.status_code == 200, search.text
    assert search.json()["results"][0]["document_id"] == GPU_DOC["id"]

    chat = edge.post("/api/v1/chat", json={"message": QUESTION, "top_k": 2})
    assert chat.status_code == 200, chat.text
    body = chat.json()
    assert body["citations"][0]["document_id"] == GPU_DOC["id"]
    assert body["citations"][0]["title"] == "GPU node"
    assert "RTX 3060" in body["citations"][0]["text"]
    assert "[1]" in body["answer"]
    assert body["fallback"] is False
    assert body["model"].startswith("llama3.2")
    assert set(body["timings_ms"]) >= {"retrieval_ms", "generation_ms", "total_ms"}
    # The passage really reached the model, fenced in the prompt.
    prompt = " ".join(m["content"] for m in standin.chat_requests[-1]["messages"])
    assert "RTX 3060" in prompt
    assert QUESTION in prompt

    deleted = edge.delete(f"/api/v1/documents/{GPU_DOC['id']}")
    assert deleted.status_code == 204
    after = edge.post("/api/v1/chat", json={"message": QUESTION, "top_k": 2}).json()
    assert GPU_DOC["id"] not in {c["document_id"] for c in after["citations"]}
    results = edge.post("/api/v1/search", json={"query": QUESTION}).json()["results"]
    assert GPU_DOC["id"] not in {r["document_id"] for r in results}


def test_a_streamed_chat_sends_tokens_then_citations_then_done(edge: httpx.Client) -> None:
    assert ingest(edge, GPU_DOC).status_code in (200, 201)
    with edge.stream(
        "POST", "/api/v1/chat", json={"message": QUESTION, "top_k": 1, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"]
    assert set(names[:-2]) == {"token"}
    assert events[-2][1][0]["document_id"] == GPU_DOC["id"]
    assert events[-2][1][0]["cited"] is True
    answer = "".join(data["text"] for name, data in events if name == "token")
    assert "[1]" in answer
    assert events[-1][1]["fallback"] is False


def test_reingesting_the_same_text_is_a_noop(edge: httpx.Client) -> None:
    ingest(edge, BACKUP_DOC)
    again = ingest(edge, BACKUP_DOC)
    assert again.status_code == 200
    assert again.json()["status"] == "unchanged"
    listed = edge.get("/api/v1/documents").json()["documents"]
    assert [d["document_id"] for d in listed].count(BACKUP_DOC["id"]) == 1


def test_bad_input_is_a_problem_document(edge: httpx.Client) -> None:
    for payload in ({"message": ""}, {"message": "x" * 100_000}, {"message": "hi", "top_k": 0}):
        response = edge.post("/api/v1/chat", json=payload)
        assert response.status_code == 422, payload
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 422
    missing = edge.delete("/api/v1/documents/no-such-document")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_every_service_stops_cleanly_on_sigterm(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> None:
    system = BrunoSystem(tmp_path_factory.mktemp("sigterm"), ollama_host=standin.url)
    try:
        system.start()
    finally:
        exit_codes = system.stop()
    assert exit_codes == dict.fromkeys(("edge", "generation", "retrieval", "embedding"), 0)


def test_an_uploaded_pdf_is_found_by_a_fact_on_its_second_page(edge: httpx.Client) -> None:
    manual = pdf_bytes(
        [
            PdfPage(heading="Installation", paragraphs=["Mount the rack ears with four screws."]),
            PdfPage(
                heading="Specifications",
                paragraphs=["On battery at half load the UPS 1500 keeps running for 14 minutes."],
                table=[["Model", "Output"], ["UPS 1500", "900 W"]],
            ),
            PdfPage(heading="Battery care", paragraphs=["Replace the battery every three years."]),
        ],
        title="UPS 1500 manual",
    )

    upload = edge.post(
        "/api/v1/documents/upload?collection=manuals",
        files={"file": ("ups-manual.pdf", manual, "application/pdf")},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["files"][0]["status"] == "created"

    search = edge.post(
        "/api/v1/search",
        json={
            "query": "How long does the UPS run on battery at half load?",
            "collection": "manuals",
        },
    )
    assert search.status_code == 200, search.text
    best = search.json()["results"][0]
    assert (best["document_id"], best["title"]) == ("ups-manual.pdf", "UPS 1500 manual")
    assert "keeps running for 14 minutes" in best["text"]
    assert "Specifications" in best["heading_path"]


ROUTER_PAGES = [
    PdfPage(
        heading="Installation", paragraphs=["Mount the router on the rack rails with M6 screws."]
    ),
    PdfPage(scan=True, paragraphs=["Warranty card"]),
    PdfPage(heading="Power", paragraphs=["The router draws 45 watts from its 12 volt input."]),
    PdfPage(heading="Reset", paragraphs=["Hold the pinhole button for ten seconds to reset it."]),
]
ROUTER_FACTS = {
    "How is the router mounted on the rack rails?": 1,
    "How many watts does the router draw?": 3,  # page 2 is a scan: page numbers stay true
    "How long must the pinhole button be held?": 4,
}


def test_each_fact_of_a_pdf_is_cited_and_shown_to_the_model_with_its_own_page(
    edge: httpx.Client, standin: OllamaStandIn
) -> None:
    upload = edge.post(
        "/api/v1/documents/upload?collection=pages",
        files={"file": ("router.pdf", pdf_bytes(ROUTER_PAGES), "application/pdf")},
    )
    assert upload.status_code == 200, upload.text

    for question, page in ROUTER_FACTS.items():
        search = edge.post("/api/v1/search", json={"query": question, "collection": "pages"})
        best = search.json()["results"][0]
        assert (best["page"], best["link"]) == (page, f"router.pdf#page={page}"), question

        chat = edge.post(
            "/api/v1/chat", json={"message": question, "collection": "pages", "top_k": 1}
        )
        cited = chat.json()["citations"][0]
        assert (cited["page"], cited["link"]) == (page, f"router.pdf#page={page}"), question
        # The model is told the page too, so it can say "router.pdf, p. 3" itself.
        prompt = standin.chat_requests[-1]["messages"][-1]["content"]
        assert f"[1] {cited['title']} — router.pdf, p. {page}\n" in prompt, question


def test_openai_inline_sources_name_the_page(edge: httpx.Client) -> None:
    upload = edge.post(
        "/api/v1/documents/upload?collection=default",
        files={"file": ("router-manual.pdf", pdf_bytes(ROUTER_PAGES), "application/pdf")},
    )
    assert upload.status_code == 200, upload.text

    completion = edge.post(
        "/v1/chat/completions",
        json={
            "model": "bruno",
            "messages": [{"role": "user", "content": "How many watts does the router draw?"}],
        },
    )

    assert completion.status_code == 200, completion.text
    answer = completion.json()["choices"][0]["message"]["content"]
    assert "router-manual.pdf, p. 3" in answer


def test_pages_sent_with_json_text_reach_search_and_bad_ones_are_refused(
    edge: httpx.Client,
) -> None:
    pages = ["# Fan\n\nThe fan spins at 3000 rpm.", "# Fuse\n\nThe fuse is rated 5 amperes."]
    text = "\n\n".join(pages)
    document = {"id": "psu.pdf", "source": "docs/psu.pdf", "text": text, "collection": "json"}
    bad = {**document, "segments": [{"start": 0, "page": 1}, {"start": len(text), "page": 2}]}

    refused = edge.post("/api/v1/documents", json=bad)
    segments = [{"start": 0, "page": 1}, {"start": len(pages[0]) + 2, "page": 2}]
    created = edge.post("/api/v1/documents", json={**document, "segments": segments})

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "past the end of the text" in refused.json()["detail"]
    assert created.status_code == 201, created.text
    search = edge.post("/api/v1/search", json={"query": "fuse amperes", "collection": "json"})
    best = search.json()["results"][0]
    assert (best["page"], best["link"]) == (2, "docs/psu.pdf#page=2")
