"""The chat experience through the real system: the official openai client, conversations,
cancellation reaching Ollama, errors mid-stream and readiness without a model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn, echo_reply
from bruno_testing.sse import read_events
from bruno_testing.system import BrunoSystem

DOC = {
    "id": "runbooks/velero",
    "title": "Velero",
    "source": "runbooks/velero.md",
    "text": (
        "# Velero\n\nVelero backs up the cluster every night to the MinIO bucket. "
        "Restore a backup with velero restore create --from-backup NAME."
    ),
}
STANDALONE = "How do I restore a Velero backup?"


def reply(body: dict[str, Any]) -> str:
    """Rewrites when asked to (as a model would), answers from the passages otherwise."""
    if "rewrite follow-up questions" in body["messages"][0]["content"]:
        return STANDALONE
    return echo_reply(body)


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaStandIn]:
    with InBackground(OllamaStandIn(models=["llama3.2"], reply=reply)) as standin:
        yield standin


@pytest.fixture(scope="module")
def chat_system(
    tmp_path_factory: pytest.TempPathFactory, ollama: OllamaStandIn
) -> Iterator[BrunoSystem]:
    with BrunoSystem(tmp_path_factory.mktemp("chat"), ollama_host=ollama.url) as running:
        with httpx.Client(base_url=running.edge_url, timeout=60) as client:
            assert client.post("/api/v1/documents", json=DOC).status_code in (200, 201)
        yield running


@pytest.fixture
def edge(chat_system: BrunoSystem, ollama: OllamaStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chat_system.edge_url, timeout=60) as client:
        yield client
    ollama.token_delay, ollama.fail_after_tokens = 0.0, None


def wait_for_cancelled(ollama: OllamaStandIn, count: int, within: float = 10.0) -> bool:
    """Whether the stand-in saw ``count`` requests closed early, polling for at most ``within``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ollama.cancelled >= count:
            return True
        time.sleep(0.02)
    return False


def test_the_official_openai_client_gets_answers_whole_and_streamed(
    chat_system: BrunoSystem,
) -> None:
    client = openai.OpenAI(base_url=f"{chat_system.edge_url}/v1", api_key="none", max_retries=0)
    question: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "How often does Velero back up the cluster?"}
    ]

    completion = client.chat.completions.create(model="bruno", messages=question)
    chunks = list(client.chat.completions.create(model="bruno", messages=question, stream=True))

    assert completion.model == "bruno"
    assert (completion.model_extra or {})["bruno"]["answered_by"] == "llama3.2"
    assert "[1]" in (completion.choices[0].message.content or "")
    assert (completion.model_extra or {})["citations"][0]["document_id"] == DOC["id"]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == completion.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [m.id for m in client.models.list().data] == ["bruno", "llama3.2:latest"]


def test_a_follow_up_is_rewritten_before_retrieval_and_the_conversation_is_kept(
    edge: httpx.Client, ollama: OllamaStandIn
) -> None:
    first = edge.post("/api/v1/chat", json={"message": "How does Velero back up the cluster?"})
    conversation_id = first.json()["conversation_id"]

    second = edge.post(
        "/api/v1/chat",
        json={"message": "And how do I restore it?", "conversation_id": conversation_id},
    )

    assert second.status_code == 200, second.text
    assert second.json()["search_query"] == STANDALONE
    assert second.json()["citations"][0]["document_id"] == DOC["id"]
    history = ollama.chat_requests[-1]["messages"]
    assert history[1]["content"] == "How does Velero back up the cluster?"
    stored = edge.get(f"/api/v1/conversations/{conversation_id}").json()
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant", "user", "assistant"]
    assert edge.delete(f"/api/v1/conversations/{conversation_id}").status_code == 204
    unknown = edge.post(
        "/api/v1/chat", json={"message": "And then?", "conversation_id": conversation_id}
    )
    assert unknown.status_code == 404


def test_leaving_a_stream_cancels_the_request_to_ollama(
    edge: httpx.Client, ollama: OllamaStandIn
) -> None:
    ollama.token_delay = 0.05
    before = ollama.cancelled
    with edge.stream(
        "POST", "/api/v1/chat", json={"message": "How does Velero back up?", "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # the client goes away after the first token

    assert wait_for_cancelled(ollama, before + 1)


def test_leaving_a_plain_json_chat_cancels_the_request_to_ollama(
    edge: httpx.Client, ollama: OllamaStandIn
) -> None:
    ollama.token_delay = 0.2
    before = ollama.cancelled

    with pytest.raises(httpx.ReadTimeout):
        edge.post(
            "/api/v1/chat",
            json={"message": "How does Velero back up?"},
            timeout=httpx.Timeout(30, read=1.0),
        )

    assert wait_for_cancelled(ollama, before + 1)


def test_ollama_dying_mid_stream_ends_with_an_error_event(
    edge: httpx.Client, ollama: OllamaStandIn
) -> None:
    ollama.fail_after_tokens = 2
    with edge.stream(
        "POST", "/api/v1/chat", json={"message": "How does Velero back up?", "stream": True}
    ) as response:
        events = read_events(response.iter_lines())

    assert [name for name, _ in events][:2] == ["token", "token"]
    name, problem = events[-1]
    assert name == "error"
    assert problem["status"] == 503


def test_without_the_model_ready_is_degraded_and_the_fallback_answers(
    offline_edge: httpx.Client,
) -> None:
    ready = offline_edge.get("/ready")

    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["generation"] == "MODEL_MISSING"
    assert ready.json()["detail"].endswith("answers come from the extractive fallback")
    assert "http://" not in ready.text  # where Ollama lives stays in the logs
