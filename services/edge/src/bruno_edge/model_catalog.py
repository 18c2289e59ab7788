"""The models ``/v1`` serves: ``bruno`` (answers grounded in the knowledge base, by the
configured model) and each chat model Ollama has pulled, plain (:mod:`bruno_edge.plain_chat`).

    served = await resolve(downstreams, "llama3.2")   # ModelNotFound, or Unavailable
    served.rag, served.ollama_model                   # False, "llama3.2:latest"

A name nobody serves is :class:`ModelNotFound` (OpenAI's ``404 model_not_found``), never an
answer: a typo must not look like an outage. When Ollama cannot be asked, a plain model cannot
be checked either, and that is an outage (503).
"""

from __future__ import annotations

from dataclasses import dataclass

from bruno.generation.v1 import generation_pb2
from bruno_core import NotFound, Unavailable
from bruno_edge.clients import Downstreams, rpc_errors

RAG_MODEL = "bruno"
LIST_TIMEOUT_SECONDS = 5.0


class ModelNotFound(NotFound):
    slug = "model-not-found"
    param = "model"


@dataclass(frozen=True)
class ServedModel:
    """A model ``/v1`` answers with: ``ollama_model`` is None for ``bruno``."""

    id: str
    ollama_model: str | None = None

    @property
    def rag(self) -> bool:
        return self.ollama_model is None


async def served_models(downstreams: Downstreams) -> list[ServedModel]:
    """``bruno``, then the plain models (none while Ollama cannot be asked)."""
    listed = await _list(downstreams)
    return [ServedModel(RAG_MODEL), *(ServedModel(name, name) for name in listed.models)]


async def resolve(downstreams: Downstreams, requested: str) -> ServedModel:
    """The model ``requested`` names (``llama3.2`` is ``llama3.2:latest``, as in Ollama)."""
    if requested == RAG_MODEL:
        return ServedModel(RAG_MODEL)
    listed = await _list(downstreams)
    if not listed.reachable:
        raise Unavailable(f"the model {requested!r} cannot be checked: {listed.detail}")
    wanted = _canonical(requested)
    for name in listed.models:
        if _canonical(name) == wanted:
            return ServedModel(requested, name)
    raise ModelNotFound(
        f"The model `{requested}` does not exist here; GET /v1/models lists the models served "
        f"(`{RAG_MODEL}` answers from the knowledge base)."
    )


async def _list(downstreams: Downstreams) -> generation_pb2.ListModelsResponse:
    with rpc_errors("generation"):
        return await downstreams.generation.ListModels(
            generation_pb2.ListModelsRequest(), timeout=LIST_TIMEOUT_SECONDS
        )


def _canonical(model: str) -> str:
    return model if ":" in model else f"{model}:latest"
