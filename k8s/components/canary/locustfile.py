"""The load scenario of Agent Bruno: the mix of what people and jobs send to the edge at once.

One file serves ``make load`` (``benchmarks/load.py`` runs it headless against the four
services) and the canary's load test in Kubernetes (the ``bruno-load`` Locust pod of this
component loads it from a ConfigMap; Flagger's webhook starts a swarm against the canary).

    locust -f k8s/components/canary/locustfile.py --headless -u 32 -r 32 -t 60s \\
        --host http://127.0.0.1:8080

Different clients do different things at once, so the users are of four kinds, in these
shares: people chatting (3/8; two of three read the answer as a stream, whose first token and
``done`` are timed too), an agent or a search box searching (3/8), someone browsing the
documents (1/8) and a job ingesting (1/8: documents of a bounded set of ids in their own
collection, re-ingested with new text, so the data stays the same size however long the run).
Each asks again as soon as it is answered, and politely: a 429 or 503 (the edge shedding on
purpose) is recorded as ``<name> [shed <status>]`` and its ``Retry-After`` waited out, as the
``bruno`` command line does. ``BRUNO_API_KEY`` (else the first of ``BRUNO_API_KEYS``), when set,
is sent as the bearer key; ``BRUNO_LOAD_COLLECTION`` names the collection searched and chatted
about (default ``default``).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, constant, events, task
from locust.contrib.fasthttp import ResponseContextManager

QUESTIONS = [
    "Which GPU does the Ollama node have?",
    "How do I restore the LanceDB volume?",
    "How often does Velero take backups?",
    "Where does Pi-hole forward the cluster domain?",
    "How do I rotate the API keys?",
    "What happens when the embedding service restarts?",
    "How do I force Flux to reconcile now?",
    "Which alerts page the operator at night?",
]
# Ingested text on the questions' subjects, so it competes with the demo corpus in searches.
WORDS = sorted({word.strip("?").lower() for question in QUESTIONS for word in question.split()})
INGEST_IDS = 20  # per user: re-ingesting replaces, so the collection does not grow
SHED = (429, 503)
MAX_RETRY_AFTER = 5.0


def _headers() -> dict[str, str]:
    # In the cluster the pod has the edge's own Secret: the first of its keys.
    keys = os.environ.get("BRUNO_API_KEYS", "").split(",")
    key = os.environ.get("BRUNO_API_KEY") or keys[0].strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _document(rng: random.Random, words: int = 300) -> str:
    sentences = []
    for _ in range(max(1, words // 12)):
        sentence = " ".join(rng.choices(WORDS, k=12))
        sentences.append(sentence.capitalize() + ".")
    return " ".join(sentences)


def _record(
    name: str, started: float, response: Any = None, error: Exception | None = None
) -> None:
    """A measurement that is not a request of its own (a stream's first token, its end)."""
    events.request.fire(  # type: ignore[no-untyped-call]  # locust leaves it untyped
        request_type="SSE",
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=0,
        response=response,
        context={},
        exception=error,
    )


class _Client(FastHttpUser):
    """What every kind of client shares: the key, the polite handling of refusals."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 130.0
    connection_timeout = 10.0
    started = 0

    def on_start(self) -> None:
        self.rng = random.Random()  # noqa: S311 - load, not secrets
        self.collection = os.environ.get("BRUNO_LOAD_COLLECTION", "default")
        _Client.started += 1
        self.number = _Client.started  # stable across runs: the ingested ids stay the same
        self.pause = 0.0

    def _checked(self, response: ResponseContextManager, *expected: int) -> None:
        """Success, a deliberate refusal (renamed, and its Retry-After kept), or a failure."""
        status = response.status_code
        if status in expected:
            response.success()  # type: ignore[no-untyped-call]  # locust leaves it untyped
            return
        if status in SHED:
            response.request_meta["name"] = f"{response.request_meta['name']} [shed {status}]"
            value = response.headers.get("retry-after") if response.headers else None
            retry_after = str(value or "1")
            try:
                self.pause = min(float(retry_after), MAX_RETRY_AFTER)
            except ValueError:
                self.pause = 1.0
        problem = f"HTTP {status}" if status else f"no answer: {getattr(response, 'error', None)!r}"
        response.failure(problem)  # type: ignore[no-untyped-call]  # locust leaves it untyped

    def _wait_out(self) -> None:
        if self.pause:
            time.sleep(self.pause)  # gevent-patched: only this user waits
            self.pause = 0.0


class Searcher(_Client):
    """An agent or a search box."""

    weight = 3

    @task
    def search(self) -> None:
        body = {"query": self.rng.choice(QUESTIONS), "collection": self.collection}
        with self.client.post(
            "/api/v1/search", json=body, headers=_headers(), name="search", catch_response=True
        ) as response:
            self._checked(response, 200)
        self._wait_out()


class Chatter(_Client):
    """A person asking questions, mostly reading the answer as it streams."""

    weight = 3

    @task(1)
    def chat(self) -> None:
        body = {"message": self.rng.choice(QUESTIONS), "collection": self.collection}
        with self.client.post(
            "/api/v1/chat", json=body, headers=_headers(), name="chat", catch_response=True
        ) as response:
            self._checked(response, 200)
        self._wait_out()

    @task(2)
    def chat_streamed(self) -> None:
        body = {
            "message": self.rng.choice(QUESTIONS),
            "collection": self.collection,
            "stream": True,
        }
        started = time.perf_counter()
        with self.client.post(
            "/api/v1/chat",
            json=body,
            headers=_headers(),
            name="chat (stream)",
            stream=True,
            catch_response=True,
        ) as response:
            self._checked(response, 200)
            if response.status_code == 200:
                self._read_stream(response, started)
        self._wait_out()

    def _read_stream(self, response: ResponseContextManager, started: float) -> None:
        first = ended = False
        buffer = ""
        chunks = response.iter_content(chunk_size=1024)  # type: ignore[no-untyped-call]
        for chunk in chunks:
            buffer += chunk if isinstance(chunk, str) else chunk.decode("utf-8", "replace")
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                line = line.rstrip("\r")
                if line == "event: token" and not first:
                    first = True
                    _record("chat (stream): first token", started)
                elif line == "event: done":
                    ended = True
                    _record("chat (stream): done", started)
                elif line == "event: error":
                    _record("chat (stream): done", started, error=RuntimeError("error event"))
                    return
        if not ended:
            _record("chat (stream): done", started, error=RuntimeError("stream cut short"))


class Browser(_Client):
    """Someone paging through the documents."""

    weight = 1

    @task
    def list_documents(self) -> None:
        with self.client.get(
            f"/api/v1/documents?collection={self.collection}&limit=20",
            headers=_headers(),
            name="list documents",
            catch_response=True,
        ) as response:
            self._checked(response, 200)
        self._wait_out()


class Ingester(_Client):
    """A job re-ingesting a folder."""

    weight = 1

    @task
    def ingest(self) -> None:
        body = {
            "id": f"load-{self.number}-{self.rng.randrange(INGEST_IDS)}",
            "title": "Load test document",
            "text": _document(self.rng),
            "collection": "load",
            "metadata": {"source": "locust"},
        }
        with self.client.post(
            "/api/v1/documents",
            data=json.dumps(body),
            headers={**_headers(), "Content-Type": "application/json"},
            name="ingest",
            catch_response=True,
        ) as response:
            self._checked(response, 200, 201)
        self._wait_out()
