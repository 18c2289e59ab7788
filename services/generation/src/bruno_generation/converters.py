"""Between the generation domain's answers and ``bruno.generation.v1`` messages."""

from __future__ import annotations

from bruno.generation.v1 import generation_pb2
from bruno_generation.answer import Finished
from bruno_generation.answering import BackendInfo


def generate_response(piece: str | Finished) -> generation_pb2.GenerateResponse:
    """One streamed event: a ``Token`` for a piece of the answer, the ``Done`` for its end."""
    if not isinstance(piece, Finished):
        return generation_pb2.GenerateResponse(token=generation_pb2.Token(text=piece))
    return generation_pb2.GenerateResponse(
        done=generation_pb2.Done(
            model=piece.model,
            usage=generation_pb2.Usage(
                prompt_tokens=piece.prompt_tokens,
                completion_tokens=piece.completion_tokens,
            ),
            fallback=piece.fallback,
            passages_used=piece.passages_used,
            passages_dropped=piece.passages_dropped,
            finish_reason=piece.finish_reason,
        )
    )


def list_models_response(models: list[str] | str) -> generation_pb2.ListModelsResponse:
    """The model names, or (a ``str``) why Ollama could not be asked."""
    if isinstance(models, str):
        return generation_pb2.ListModelsResponse(reachable=False, detail=models)
    return generation_pb2.ListModelsResponse(models=models, reachable=True)


def rewrite_response(
    question: str, rewritten: str | None
) -> generation_pb2.RewriteQuestionResponse:
    """The standalone question, or ``question`` itself when nothing was rewritten."""
    if rewritten is None:
        return generation_pb2.RewriteQuestionResponse(question=question)
    return generation_pb2.RewriteQuestionResponse(question=rewritten, rewritten=True)


def info_response(info: BackendInfo) -> generation_pb2.InfoResponse:
    return generation_pb2.InfoResponse(
        backend=info.backend,
        model=info.model,
        model_available=info.model_available,
        context_window=info.context_window,
        detail=info.detail,
    )
