"""Between ``bruno.embedding.v1`` messages and the embedding domain's own types."""

from __future__ import annotations

from collections.abc import Sequence

from bruno.embedding.v1 import embedding_pb2
from bruno_core.errors import InvalidInput
from bruno_embedding.embedders import EmbedderInfo, InputType

_INPUT_TYPES = {
    embedding_pb2.INPUT_TYPE_UNSPECIFIED: InputType.DOCUMENT,
    embedding_pb2.INPUT_TYPE_DOCUMENT: InputType.DOCUMENT,
    embedding_pb2.INPUT_TYPE_QUERY: InputType.QUERY,
}


def input_type_from_proto(value: embedding_pb2.InputType.ValueType) -> InputType:
    """What the texts are for; unset means documents. InvalidInput for a value not in v1."""
    try:
        return _INPUT_TYPES[value]
    except KeyError:
        raise InvalidInput(f"unknown input_type {value}") from None


def embed_response(
    vectors: Sequence[Sequence[float]], info: EmbedderInfo
) -> embedding_pb2.EmbedResponse:
    return embedding_pb2.EmbedResponse(
        vectors=[embedding_pb2.Vector(values=vector) for vector in vectors],
        model=info.model,
        dimension=info.dimension,
    )


def info_response(infos: Sequence[EmbedderInfo], *, max_texts: int) -> embedding_pb2.InfoResponse:
    """The service's models, the default (``infos[0]``) first and in the top-level fields."""
    default = infos[0]
    return embedding_pb2.InfoResponse(
        model=default.model,
        dimension=default.dimension,
        backend=default.backend,
        max_batch_size=max_texts,
        max_input_tokens=default.max_input_tokens,
        models=[
            embedding_pb2.ModelInfo(
                name=info.model, dimension=info.dimension, max_input_tokens=info.max_input_tokens
            )
            for info in infos
        ],
    )
