"""Search scaled out on object storage, as real processes: retrieval's writer and two readers
on one ``s3://`` knowledge base (moto's S3 server on loopback), the edge writing to the one and
reading from the others. A document ingested through the edge is found by each reader within
the lag (and at once with the write's consistency token), its deletion is seen by each, search
goes on through a reindex's switch, with the writer killed, and with a reader killed too. On a
reader lagging far behind, a chat sending the write's token cites what the write added."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.s3_standin import S3StandIn
from bruno_testing.system import BrunoSystem

pytestmark = pytest.mark.slow  # six processes and an S3 stand-in

READERS = ("retrieval-reader-1", "retrieval-reader-2")
LAG_SECONDS = 0.5
# The longest lag retrieval accepts: a reader that opened a table looks for newer versions of
# it no sooner than this, far longer than the test takes.
LONG_LAG_SECONDS = 300
TOKEN = "Bruno-Consistency-Token"
RUNBOOK = (
    "# Restoring the NAS\n\nStop the Jellyfin pods, then run velero restore create nas-nightly "
    "and wait for the persistent volume claims to bind before starting them again.\n"
)
UPS = (
    "# UPS runtime\n\nThe Eaton 5P UPS in the rack holds the NAS and the switch for 38 minutes "
    "on battery, then NUT shuts the NAS down cleanly.\n"
)


@pytest.fixture(scope="module")
def scaled(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> Iterator[BrunoSystem]:
    with S3StandIn() as s3:
        env = {
            **s3.env,
            "BRUNO_LANCEDB_URI": s3.uri("e2e"),
            "BRUNO_RETRIEVAL_READ_CONSISTENCY_SECONDS": str(LAG_SECONDS),
        }
        workdir: Path = tmp_path_factory.mktemp("bruno-readers")
        with BrunoSystem(
            workdir, ollama_host=standin.url, env=env, retrieval_readers=len(READERS)
        ) as system:
            yield system


@pytest.fixture(scope="module")
def lagging(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> Iterator[BrunoSystem]:
    """The writer and one reader that follows it only every ``LONG_LAG_SECONDS``."""
    with S3StandIn() as s3:
        env = {
            **s3.env,
            "BRUNO_LANCEDB_URI": s3.uri("lagging"),
            "BRUNO_RETRIEVAL_READ_CONSISTENCY_SECONDS": str(LONG_LAG_SECONDS),
        }
        workdir: Path = tmp_path_factory.mktemp("bruno-lagging")
        with BrunoSystem(workdir, ollama_host=standin.url, env=env, retrieval_readers=1) as system:
            yield system


def reader_search(system: BrunoSystem, reader: str, query: str) -> list[str]:
    """The document ids one reader finds, asked directly (no token: what it has followed)."""
    with grpc.insecure_channel(f"127.0.0.1:{system.ports[reader]}") as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        found = stub.Search(retrieval_pb2.SearchRequest(query=query, top_k=3), timeout=10)
    return [hit.document_id for hit in found.hits]


def finds(system: BrunoSystem, reader: str, document: str, *, present: bool = True) -> bool:
    """Whether ``reader`` finds ``document`` by "velero" (or, not ``present``, does not)."""
    return (document in reader_search(system, reader, "velero")) is present


def eventually(
    check: Callable[..., bool], *args: object, attempts: int = 100, **kw: object
) -> bool:
    """Whether ``check`` comes true within ``attempts`` looks 0.1 s apart (far above the lag,
    so a loaded machine does not fail the test; what is asserted is the outcome)."""
    for _ in range(attempts):
        if check(*args, **kw):
            return True
        threading.Event().wait(0.1)
    return False


def job_state(edge: httpx.Client, job: str) -> str:
    looked = edge.get(job)
    assert looked.status_code == 200, looked.text
    return str(looked.json()["state"])


def search(edge: httpx.Client, query: str, **headers: str) -> httpx.Response:
    return edge.post("/api/v1/search", json={"query": query, "top_k": 3}, headers=headers)


def test_readers_follow_the_writer_and_keep_answering_when_processes_die(
    scaled: BrunoSystem,
) -> None:
    edge = httpx.Client(base_url=scaled.edge_url, timeout=60)
    ready = edge.get("/ready").json()
    ingested = edge.post("/api/v1/documents", json={"id": "nas.md", "text": RUNBOOK})
    assert ingested.status_code == 201, f"{ingested.text}\n{scaled.logs()}"
    token = ingested.headers[TOKEN]
    # With the write's token the read sees it at once, whichever reader answers.
    at_once = [search(edge, "velero restore nas", **{TOKEN: token}) for _ in range(4)]
    followed = {reader: eventually(finds, scaled, reader, "nas.md") for reader in READERS}

    deleted = edge.delete("/api/v1/documents/nas.md")
    gone = {
        reader: eventually(finds, scaled, reader, "nas.md", present=False) for reader in READERS
    }
    after_delete = search(edge, "velero", **{TOKEN: deleted.headers[TOKEN]})

    # Searches through the edge go on while the collection is rebuilt and switched over.
    edge.post("/api/v1/documents", json={"id": "nas.md", "text": RUNBOOK})
    statuses: list[int] = []
    done = threading.Event()

    def keep_searching() -> None:
        with httpx.Client(base_url=scaled.edge_url, timeout=60) as searcher:
            # Ten searches a second: well under the edge's per-caller rate limit however long
            # the reindex takes on a loaded machine (a 429 is not what this test is about).
            while not done.wait(0.1):
                statuses.append(search(searcher, "velero").status_code)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        reindexed = edge.post("/api/v1/collections/default/reindex")  # a job now
        job = reindexed.headers["Location"]
        finished = eventually(lambda: job_state(edge, job) in ("succeeded", "failed"), attempts=600)
        state = job_state(edge, job)
        switched = {reader: eventually(finds, scaled, reader, "nas.md") for reader in READERS}
    finally:
        done.set()
        searcher.join()

    scaled.processes["retrieval"].kill()  # the writer, without a chance to clean up
    scaled.processes.pop("retrieval").wait()
    without_writer = [search(edge, "velero") for _ in range(4)]
    degraded = edge.get("/ready").json()
    refused_write = edge.post("/api/v1/documents", json={"id": "b.md", "text": RUNBOOK})

    scaled.processes[READERS[0]].kill()
    scaled.processes.pop(READERS[0]).wait()
    one_reader_left = [search(edge, "velero") for _ in range(6)]
    edge.close()

    assert ready["checks"]["retrieval"] == ready["checks"]["retrieval-reader"] == "SERVING"
    assert all(r.json()["results"][0]["document_id"] == "nas.md" for r in at_once)
    assert followed == dict.fromkeys(READERS, True)
    assert deleted.status_code == 204
    assert gone == dict.fromkeys(READERS, True)
    assert after_delete.json()["results"] == []
    assert reindexed.status_code == 202, reindexed.text
    assert finished
    assert state == "succeeded"
    assert switched == dict.fromkeys(READERS, True)
    assert statuses
    assert set(statuses) == {200}
    assert [r.status_code for r in without_writer] == [200] * 4
    assert all(r.json()["results"][0]["document_id"] == "nas.md" for r in without_writer)
    assert degraded["status"] == "degraded"
    assert refused_write.status_code == 503
    assert [r.status_code for r in one_reader_left] == [200] * 6
    assert all(r.json()["results"][0]["document_id"] == "nas.md" for r in one_reader_left)


def test_a_chat_with_the_writes_token_cites_what_a_lagging_reader_has_not_followed(
    lagging: BrunoSystem,
) -> None:
    edge = httpx.Client(base_url=lagging.edge_url, timeout=60)
    first = edge.post("/api/v1/documents", json={"id": "nas.md", "text": RUNBOOK})
    # The reader opens the table at this write; it looks for a newer version a long lag later.
    opened = search(edge, "velero restore nas", **{TOKEN: first.headers[TOKEN]})
    added = edge.post("/api/v1/documents", json={"id": "ups.md", "text": UPS})
    token = {TOKEN: added.headers[TOKEN]}
    question = "How long does the UPS hold the NAS on battery?"

    behind = edge.post("/api/v1/chat", json={"message": question})
    chat = edge.post("/api/v1/chat", json={"message": question}, headers=token)
    completion = edge.post(
        "/v1/chat/completions",
        json={"model": "bruno", "messages": [{"role": "user", "content": question}]},
        headers=token,
    )
    edge.close()

    assert first.status_code == added.status_code == 201, added.text
    assert [r["document_id"] for r in opened.json()["results"]] == ["nas.md"]
    # Without the token the reader answers from before the write: the chat misses it.
    assert behind.status_code == 200, behind.text
    assert "ups.md" not in {c["document_id"] for c in behind.json()["citations"]}
    assert chat.status_code == 200, chat.text
    assert chat.json()["citations"][0]["document_id"] == "ups.md"
    assert chat.json()["citations"][0]["cited"] is True
    assert completion.status_code == 200, completion.text
    assert completion.json()["citations"][0]["document_id"] == "ups.md"
