"""The fakes in ``bruno_testing.fakes`` answer as the real services do: the same calls, sent to
a fake and to the real service (real LanceDB, the real ONNX embedder, generation in front of
the Ollama stand-in), give the same transcript of what a caller can see: ids, outcomes, hashes,
which fields are set, the order of streamed events and the status codes of refusals. Scores,
vectors and wording may differ; the shapes may not, or the edge's tests would pass against a
service that does not exist."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import create_channel
from bruno_embedding import EmbeddingSettings
from bruno_embedding import create_server as create_embedding_server
from bruno_embedding.onnx_embedder import ONNX_MODELS
from bruno_generation import GenerationSettings
from bruno_generation import create_server as create_generation_server
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.server import create_server as create_retrieval_server
from bruno_testing.fakes import FakeServices
from bruno_testing.fakes.embedding import FakeEmbedding, embedding_server
from bruno_testing.fakes.generation import MODEL as FAKE_LLM
from bruno_testing.ollama_standin import OllamaStandIn

pytestmark = pytest.mark.slow  # the real services: an ONNX model and LanceDB tables

T = TypeVar("T")
Transcript = list[Any]

FLUX = "# Flux\n\nFlux reconciles the cluster every ten minutes."
FLUX_CHANGED = "# Flux\n\nFlux reconciles the cluster every five minutes."
VELERO = "# Velero\n\nVelero backs up the cluster nightly."


async def outcome(call: Awaitable[T]) -> T | str:
    """The call's answer, or the name of the status code it was refused with."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        return error.code().name


def ingested(answer: retrieval_pb2.IngestDocumentResponse | str) -> Any:
    if isinstance(answer, str):
        return answer
    outcome_name = retrieval_pb2.IngestOutcome.Name(answer.outcome)
    committed = answer.committed.version > 0 and bool(answer.committed.table)
    return (
        answer.document_id,
        answer.collection,
        outcome_name,
        answer.chunks,
        answer.content_hash,
        committed,
    )


def hit_shape(hit: retrieval_pb2.SearchHit) -> Any:
    return {
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "chunk_index": hit.chunk_index,
        "title": hit.title,
        "source": hit.source,
        "heading_path": hit.heading_path,
        "metadata": dict(hit.metadata),
        "has_text": bool(hit.text),
        "score_in_0_1": 0 < hit.score <= 1,
    }


def summary_shape(document: retrieval_pb2.DocumentSummary) -> Any:
    return {
        "document_id": document.document_id,
        "title": document.title,
        "source": document.source,
        "chunks": document.chunks,
        "content_hash": document.content_hash,
        "metadata": dict(document.metadata),
        "has_ingested_at": document.HasField("ingested_at"),
    }


async def retrieval_transcript(channel: grpc.aio.Channel) -> Transcript:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    said: Transcript = []

    async def ingest(**fields: Any) -> None:
        request = retrieval_pb2.IngestDocumentRequest(**fields)
        said.append(ingested(await outcome(stub.IngestDocument(request))))

    flux = {"document_id": "runbooks/flux.md", "title": "Flux", "source": "runbooks/flux.md"}
    await ingest(**flux, text=FLUX, metadata={"team": "sre"})
    await ingest(**flux, text=FLUX, metadata={"team": "sre"})
    await ingest(**flux, text=FLUX_CHANGED, metadata={"team": "sre"})
    await ingest(title="Velero", source="velero.md", text=VELERO)  # an id derived from the text
    await ingest(document_id="..", text="planted")
    await ingest(document_id="blank", text="  \n")
    await ingest(collection="../x", text="planted")

    found = await stub.Search(retrieval_pb2.SearchRequest(query="flux reconciles", top_k=5))
    said.append(retrieval_pb2.SearchMode.Name(found.mode))
    flux_hits = [hit for hit in found.hits if hit.document_id == "runbooks/flux.md"]
    said.append([hit_shape(hit) for hit in flux_hits])
    filtered = await stub.Search(
        retrieval_pb2.SearchRequest(query="flux reconciles", filters={"team": "nobody"})
    )
    said.append(len(filtered.hits))
    for request in (
        retrieval_pb2.SearchRequest(query="flux", collection="nowhere"),
        retrieval_pb2.SearchRequest(query="  "),
    ):
        refused = await outcome(stub.Search(request))
        said.append(refused if isinstance(refused, str) else "answered")

    first = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(limit=1))
    rest = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(cursor=first.next_cursor))
    everything = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest())
    nowhere = await outcome(
        stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(collection="nowhere"))
    )
    said.append([summary_shape(d) for d in first.documents])
    said.append((first.next_cursor == first.documents[0].document_id, rest.next_cursor))
    said.append([summary_shape(d) for d in rest.documents])
    said.append([d.document_id for d in everything.documents])
    said.append(nowhere if isinstance(nowhere, str) else "answered")

    collections = await stub.ListCollections(retrieval_pb2.ListCollectionsRequest())
    said.append(
        [
            (c.name, c.documents, c.chunks, bool(c.embedding_model), c.dimension > 0)
            for c in collections.collections
        ]
    )
    reindexed = await stub.ReindexCollection(
        retrieval_pb2.ReindexCollectionRequest(collection="default")
    )
    said.append(
        (
            reindexed.collection.name,
            bool(reindexed.previous_model),
            reindexed.committed.version > 0,
        )
    )

    # One after the other: a gRPC call starts when it is made, not when it is awaited.
    deletes = [
        retrieval_pb2.DeleteDocumentRequest(document_id="missing"),
        retrieval_pb2.DeleteDocumentRequest(document_id="runbooks/flux.md"),
        retrieval_pb2.DeleteDocumentRequest(document_id="a/../b"),
    ]
    for delete in deletes:
        deleted = await outcome(stub.DeleteDocument(delete))
        said.append(
            deleted
            if isinstance(deleted, str)
            else (deleted.chunks_deleted, deleted.committed.version > 0)
        )
    reindex = retrieval_pb2.ReindexCollectionRequest(collection="nowhere")
    said.append(await outcome(stub.ReindexCollection(reindex)))
    for collection in ("nowhere", "default", "default"):
        drop = retrieval_pb2.DeleteCollectionRequest(collection=collection)
        dropped = await outcome(stub.DeleteCollection(drop))
        said.append(dropped if isinstance(dropped, str) else dropped.documents_deleted)
    return said


def conversation_shape(found: conversations_pb2.Conversation | str) -> Any:
    if isinstance(found, str):
        return found
    return {
        "conversation_id": found.conversation_id,
        "owner": found.owner,
        "turns": [
            (t.role, t.content, list(t.chunk_ids), t.HasField("created_at")) for t in found.turns
        ],
        "has_times": (found.HasField("created_at"), found.HasField("updated_at")),
    }


async def conversations_transcript(channel: grpc.aio.Channel) -> Transcript:
    stub = conversations_pb2_grpc.ConversationServiceStub(channel)
    turns = [
        conversations_pb2.Turn(role="user", content="How do I restore?"),
        conversations_pb2.Turn(role="assistant", content="Velero [1].", chunk_ids=["velero:0"]),
    ]
    said: Transcript = []

    async def append(**fields: Any) -> None:
        answer = await outcome(stub.AppendTurns(conversations_pb2.AppendTurnsRequest(**fields)))
        said.append(answer if isinstance(answer, str) else answer.turns)

    async def get(**fields: Any) -> None:
        request = conversations_pb2.GetConversationRequest(**fields)
        said.append(conversation_shape(await outcome(stub.GetConversation(request))))

    await append(conversation_id="c1", turns=turns, create=True, owner="ann")
    await append(conversation_id="c1", turns=turns[:1], owner="ann")
    await append(conversation_id="c2", turns=turns)  # not created
    await append(conversation_id="c1", turns=turns, owner="bob")
    await append(conversation_id="../c", turns=turns, create=True)
    await get(conversation_id="c1", owner="ann")
    await get(conversation_id="c1", owner="ann", max_turns=1)
    await get(conversation_id="c1")  # no owner named: unchecked
    await get(conversation_id="c1", owner="bob")
    await get(conversation_id="nobody")
    for owner in ("bob", "ann", "ann"):
        request = conversations_pb2.DeleteConversationRequest(conversation_id="c1", owner=owner)
        answer = await outcome(stub.DeleteConversation(request))
        said.append(answer if isinstance(answer, str) else "deleted")
    return said


JobPart = jobs_pb2.SubmitIngestJobRequest


def job_shape(job: jobs_pb2.Job | str) -> Any:
    if isinstance(job, str):
        return job
    return {
        "kind": jobs_pb2.JobKind.Name(job.kind),
        "collection": job.collection,
        "owner": job.owner,
        "state": jobs_pb2.JobState.Name(job.state),
        "documents": (job.documents_total, job.documents_done, job.documents_failed),
        "wrote_chunks": job.chunks_written > 0,
        "failed_sources": [error.source for error in job.errors],
        "has_reason": bool(job.reason),
        "has_times": (job.HasField("created_at"), job.HasField("started_at")),
    }


async def jobs_transcript(channel: grpc.aio.Channel) -> Transcript:
    """What a caller sees of jobs once each has ended (the fake's end before they answer)."""
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    said: Transcript = []

    async def ended(job: jobs_pb2.Job) -> jobs_pb2.Job:
        while not job.HasField("finished_at"):
            await asyncio.sleep(0.05)
            job = await stub.GetJob(jobs_pb2.GetJobRequest(id=job.id, owner=job.owner))
        return job

    parts = [
        JobPart(header=jobs_pb2.IngestJobHeader(collection="jobs", owner="ann")),
        JobPart(document=retrieval_pb2.IngestDocumentRequest(document_id="flux", text=FLUX)),
        JobPart(
            rejected=jobs_pb2.DocumentError(document_id="scan", source="scan.pdf", message="!")
        ),
        JobPart(document=retrieval_pb2.IngestDocumentRequest(document_id="blank", source="b.md")),
    ]
    submitted = await stub.SubmitIngestJob(iter(parts))
    said.append((job_shape(submitted)["documents"][0], submitted.collection, submitted.owner))
    ingest = await ended(submitted)
    said.append(job_shape(ingest))
    said.append(await outcome(stub.SubmitIngestJob(iter(parts[1:]))))
    said.append(await outcome(stub.SubmitIngestJob(iter(parts[:1]))))
    said.append(await outcome(stub.GetJob(jobs_pb2.GetJobRequest(id=ingest.id, owner="bob"))))
    cancelled = await stub.CancelJob(jobs_pb2.CancelJobRequest(id=ingest.id, owner="ann"))
    said.append(job_shape(cancelled) == job_shape(ingest))
    for text in (VELERO, " "):
        document = retrieval_pb2.IngestDocumentRequest(collection="jobs", text=text)
        answer = await outcome(
            stub.IngestDocumentOrJob(
                jobs_pb2.IngestDocumentOrJobRequest(document=document, owner="ann", wait_ms=60_000)
            )
        )
        said.append(
            answer
            if isinstance(answer, str)
            else (answer.WhichOneof("result"), ingested(answer.ingested))
        )
    reindex = jobs_pb2.StartReindexJobRequest(collection="jobs", owner="root")
    said.append(job_shape(await ended(await stub.StartReindexJob(reindex))))
    nowhere = jobs_pb2.StartReindexJobRequest(collection="nowhere", owner="root")
    said.append(await outcome(stub.StartReindexJob(nowhere)))
    for request in (
        jobs_pb2.ListJobsRequest(owner="ann"),
        jobs_pb2.ListJobsRequest(collections=["jobs"]),
        jobs_pb2.ListJobsRequest(limit=1),
    ):
        listed = await stub.ListJobs(request)
        said.append(([job_shape(job)["kind"] for job in listed.jobs], bool(listed.next_cursor)))
    return said


PASSAGES = [
    generation_pb2.Passage(marker=1, document_id="flux", chunk_id="flux:0", text=FLUX),
    generation_pb2.Passage(marker=2, document_id="velero", chunk_id="velero:0", text=VELERO),
]


def stream_shape(events: list[generation_pb2.GenerateResponse] | str) -> Any:
    if isinstance(events, str):
        return events
    done = events[-1].done
    return {
        "kinds": [event.WhichOneof("event") for event in events],
        "tokens": [event.token.text for event in events[:-1]],
        "model": done.model,
        "completion_tokens": done.usage.completion_tokens,
        "counts_prompt": done.usage.prompt_tokens > 0,
        "fallback": done.fallback,
        "passages_used": done.passages_used,
        "passages_dropped": done.passages_dropped,
        "finish_reason": done.finish_reason,
    }


async def generation_transcript(channel: grpc.aio.Channel) -> Transcript:
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    said: Transcript = []

    async def streamed(call: Any) -> None:
        async def read() -> list[generation_pb2.GenerateResponse]:
            return [event async for event in call]

        said.append(stream_shape(await outcome(read())))

    question = "How often does flux reconcile?"
    await streamed(
        stub.Generate(generation_pb2.GenerateRequest(question=question, passages=PASSAGES))
    )
    capped = generation_pb2.SamplingOptions(max_tokens=2)
    await streamed(
        stub.Generate(
            generation_pb2.GenerateRequest(question=question, passages=PASSAGES, options=capped)
        )
    )
    await streamed(stub.Generate(generation_pb2.GenerateRequest(question=" ", passages=PASSAGES)))
    message = generation_pb2.ChatMessage(role="user", content="Title this chat")
    for model in ("absent:1b", f"{FAKE_LLM}:latest"):
        await streamed(
            stub.Converse(generation_pb2.ConverseRequest(model=model, messages=[message]))
        )
    models = await stub.ListModels(generation_pb2.ListModelsRequest())
    said.append((models.reachable, FAKE_LLM in [m.split(":")[0] for m in models.models]))
    unchanged = await stub.RewriteQuestion(generation_pb2.RewriteQuestionRequest(question=question))
    said.append((unchanged.question, unchanged.rewritten))
    info = await stub.Info(generation_pb2.InfoRequest())
    said.append((info.backend, info.model, info.model_available, info.context_window > 0))
    return said


async def embedding_transcript(channel: grpc.aio.Channel, models: list[str]) -> Transcript:
    """What a caller of the embedding service sees: the models it lists (the default first),
    which model answers a request naming none or each served one, the vectors' count and
    dimension, and the refusals of an unserved model, no texts, a blank text and too many."""
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    info = await stub.Info(embedding_pb2.InfoRequest())
    said: Transcript = [
        (info.model, info.dimension, info.max_batch_size > 0, info.max_input_tokens > 0),
        [(m.name, m.dimension, m.max_input_tokens > 0) for m in info.models],
    ]

    async def embed(texts: list[str], model: str = "") -> None:
        answer = await outcome(
            stub.Embed(
                embedding_pb2.EmbedRequest(
                    texts=texts, input_type=embedding_pb2.INPUT_TYPE_QUERY, model=model
                )
            )
        )
        if isinstance(answer, str):
            said.append(answer)
        else:
            said.append((answer.model, answer.dimension, [len(v.values) for v in answer.vectors]))

    await embed(["how often does flux reconcile?", "velero"])
    for model in models:
        await embed(["velero backups"], model)
    await embed(["velero"], "absent-model")
    await embed([])
    await embed(["velero", "  "])
    await embed(["velero"] * (info.max_batch_size + 1))
    return said


async def test_the_fake_embedding_answers_as_the_real_one() -> None:
    """The fake as retrieval's tests build it, with the real service's model names."""
    real = await create_embedding_server(
        EmbeddingSettings(embedding_listen_addr="127.0.0.1:0", grpc_grace_seconds=0)
    )
    port = await real.start()
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            info = await embedding_pb2_grpc.EmbeddingServiceStub(channel).Info(
                embedding_pb2.InfoRequest()
            )
            models = [m.name for m in info.models]
            real_said = await embedding_transcript(channel, models)
    finally:
        await real.stop()
    assert sorted(models) == sorted(ONNX_MODELS)  # both built-in models, whichever the default
    fake = FakeEmbedding(
        {m.name: m.dimension for m in info.models}, max_batch_size=info.max_batch_size
    )
    server = embedding_server(fake)
    port = await server.start()
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            fake_said = await embedding_transcript(channel, models)
    finally:
        await server.stop()

    assert fake_said == real_said


@asynccontextmanager
async def real_retrieval(folder: Path) -> AsyncIterator[str]:
    """Retrieval (with conversations) on real LanceDB, embedding with the real ONNX model."""
    embedding = await create_embedding_server(
        EmbeddingSettings(embedding_listen_addr="127.0.0.1:0", grpc_grace_seconds=0)
    )
    embedding_port = await embedding.start()
    try:
        retrieval = await create_retrieval_server(
            RetrievalSettings(
                retrieval_listen_addr="127.0.0.1:0",
                embedding_addr=f"127.0.0.1:{embedding_port}",
                lancedb_uri=str(folder / "lancedb"),
                grpc_grace_seconds=0,
            )
        )
        port = await retrieval.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await retrieval.stop()
    finally:
        await embedding.stop()


def scripted_reply(body: dict[str, Any]) -> str:
    """The fake's answers: its answer to a grounded question (sent with the system prompt),
    its plain tokens to a plain chat."""
    grounded = body["messages"][0]["role"] == "system"
    return "Restart the pod [1]." if grounded else "Pod restarts"


@asynccontextmanager
async def real_generation() -> AsyncIterator[str]:
    """Generation in front of the Ollama stand-in, configured with the fake's model and
    answering with the fake's tokens."""
    async with OllamaStandIn(models=[FAKE_LLM, "mistral:7b"], reply=scripted_reply) as ollama:
        server = await create_generation_server(
            GenerationSettings(
                generation_listen_addr="127.0.0.1:0",
                ollama_host=ollama.url,
                ollama_model=FAKE_LLM,
                grpc_grace_seconds=0,
            )
        )
        port = await server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop()


async def test_the_fake_retrieval_answers_as_the_real_one(tmp_path: Path) -> None:
    async with FakeServices() as fakes, create_channel(fakes.addr("retrieval")) as channel:
        fake = await retrieval_transcript(channel)
    async with real_retrieval(tmp_path) as addr, create_channel(addr) as channel:
        real = await retrieval_transcript(channel)

    assert fake == real


async def test_the_fake_conversations_answer_as_the_real_ones(tmp_path: Path) -> None:
    async with FakeServices() as fakes, create_channel(fakes.addr("retrieval")) as channel:
        fake = await conversations_transcript(channel)
    async with real_retrieval(tmp_path) as addr, create_channel(addr) as channel:
        real = await conversations_transcript(channel)

    assert fake == real


async def test_the_fake_generation_answers_as_the_real_one() -> None:
    async with FakeServices() as fakes, create_channel(fakes.addr("generation")) as channel:
        fake = await generation_transcript(channel)
    async with real_generation() as addr, create_channel(addr) as channel:
        real = await generation_transcript(channel)

    assert fake == real


async def test_the_fake_jobs_answer_as_the_real_ones(tmp_path: Path) -> None:
    async with FakeServices() as fakes, create_channel(fakes.addr("retrieval")) as channel:
        fake = await jobs_transcript(channel)
    async with real_retrieval(tmp_path) as addr, create_channel(addr) as channel:
        real = await jobs_transcript(channel)

    assert fake == real
