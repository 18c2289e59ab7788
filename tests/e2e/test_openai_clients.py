"""The OpenAI API as an OpenAI client sees it: the official ``openai`` client against the real
system, with the Ollama stand-in recording what reached the model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn, echo_reply
from bruno_testing.system import BrunoSystem

DOC = {
    "id": "runbooks/velero",
    "title": "Velero",
    "source": "https://wiki.home.lan/velero",
    "text": "Velero backs up the cluster every night to the MinIO bucket.",
}
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How often does Velero back up the cluster?"}
]


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaStandIn]:
    models = ["llama3.2", "qwen3:4b", "nomic-embed-text"]
    with InBackground(OllamaStandIn(models=models)) as standin:
        yield standin


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, ollama: OllamaStandIn
) -> Iterator[BrunoSystem]:
    with BrunoSystem(tmp_path_factory.mktemp("openai"), ollama_host=ollama.url) as running:
        with httpx.Client(base_url=running.edge_url, timeout=60) as client:
            assert client.post("/api/v1/documents", json=DOC).status_code in (200, 201)
        yield running


@pytest.fixture
def client(system: BrunoSystem) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{system.edge_url}/v1", api_key="none", max_retries=0)


def test_a_plain_completion_shows_its_sources_in_the_text(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    completion = client.chat.completions.create(model="bruno", messages=ASK)

    text = completion.choices[0].message.content or ""
    answer, _, sources = text.partition("\n\nSources:\n")
    assert "[1]" in answer
    assert sources == "- [1] [Velero](<https://wiki.home.lan/velero>)"
    assert completion.model == "bruno"
    assert completion.choices[0].finish_reason == "stop"
    sent = ollama.chat_requests[-1]
    assert sent["model"] == "llama3.2"
    assert sent["options"]["temperature"] == pytest.approx(0.2)  # BRUNO_OLLAMA_TEMPERATURE
    assert "Velero backs up the cluster" in sent["messages"][-1]["content"]
    assert completion.usage is not None
    # The stand-in counts a token per word of its answer: the usage is Ollama's own count.
    assert completion.usage.completion_tokens == len(echo_reply(sent).split())


def test_a_stream_has_one_id_and_model_the_sources_and_usage_only_when_asked(
    client: openai.OpenAI,
) -> None:
    plain = list(client.chat.completions.create(model="bruno", messages=ASK, stream=True))
    counted = list(
        client.chat.completions.create(
            model="bruno", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )

    for chunks in (plain, counted):
        assert len({(c.id, c.created, c.model) for c in chunks}) == 1
        assert chunks[0].model == "bruno"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.endswith("\n\nSources:\n- [1] [Velero](<https://wiki.home.lan/velero>)")
    assert all(c.usage is None for c in plain)
    assert plain[-1].choices[0].finish_reason == "stop"
    *answer, usage = counted
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + usage.usage.completion_tokens
    assert answer[-1].choices[0].finish_reason == "stop"


def test_max_tokens_reaches_ollama_and_the_cut_says_length(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    completion = client.chat.completions.create(model="bruno", messages=ASK, max_tokens=3)

    assert ollama.chat_requests[-1]["options"]["num_predict"] == 3
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    assert len((completion.choices[0].message.content or "").split()) == 3


def test_stop_reaches_ollama_and_the_answer_ends_before_it(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    completion = client.chat.completions.create(
        model="bruno", messages=ASK, stop=["here is"], seed=11, temperature=0.0
    )

    sent = ollama.chat_requests[-1]["options"]
    assert (sent["stop"], sent["seed"], sent["temperature"]) == (["here is"], 11, 0.0)
    text = completion.choices[0].message.content or ""
    assert text.startswith("According to the passages [1], \n\nSources:")
    assert "here is" not in text


def test_a_json_schema_reaches_ollama_and_the_answer_is_that_json(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"answer": {"type": "string"}}}
    wanted: ResponseFormatJSONSchema = {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": schema},
    }

    completion = client.chat.completions.create(model="bruno", messages=ASK, response_format=wanted)

    assert ollama.chat_requests[-1]["format"] == schema
    parsed = json.loads(completion.choices[0].message.content or "")
    assert set(parsed) == {"answer"}  # no sources written into the JSON
    assert (completion.model_extra or {})["citations"][0]["document_id"] == DOC["id"]


def test_an_unknown_model_is_model_not_found_and_reaches_no_model(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    before = len(ollama.chat_requests)

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=ASK)

    assert caught.value.code == "model_not_found"
    assert len(ollama.chat_requests) == before


def test_n_above_one_is_refused_by_name(client: openai.OpenAI, ollama: OllamaStandIn) -> None:
    before = len(ollama.chat_requests)

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="bruno", messages=ASK, n=2)

    assert caught.value.param == "n"
    assert len(ollama.chat_requests) == before


def test_models_list_and_retrieve_the_served_models(client: openai.OpenAI) -> None:
    listed = [m.id for m in client.models.list().data]

    assert listed == ["bruno", "llama3.2:latest", "qwen3:4b"]  # no embedding model
    assert client.models.retrieve("bruno").id == "bruno"
    assert client.models.retrieve("qwen3:4b").owned_by == "ollama"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nomic-embed-text")


def test_a_plain_model_gets_the_clients_own_prompt_and_no_passages(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Write a 3-word title for the chat."},
        {"role": "user", "content": "How often does Velero back up the cluster?"},
    ]

    completion = client.chat.completions.create(model="qwen3:4b", messages=messages)

    sent = ollama.chat_requests[-1]
    assert sent["model"] == "qwen3:4b"
    assert sent["messages"] == messages
    assert completion.model == "qwen3:4b"
    assert "Sources:" not in (completion.choices[0].message.content or "")
    assert (completion.model_extra or {}).get("citations") is None
