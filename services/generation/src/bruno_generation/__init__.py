"""Agent Bruno's generation service: streamed answers from Ollama, or an extractive fallback."""

from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.answering import Answerer, BackendInfo
from bruno_generation.config import GenerationSettings
from bruno_generation.extractive import ExtractiveGenerator
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.server import build_ollama, create_server
from bruno_generation.servicer import SERVICE, GenerationServicer

__all__ = [
    "SERVICE",
    "AnswerStream",
    "Answerer",
    "BackendInfo",
    "ExtractiveGenerator",
    "Finished",
    "GenerationServicer",
    "GenerationSettings",
    "ModelNotFound",
    "OllamaGenerator",
    "OllamaUnreachable",
    "build_ollama",
    "create_server",
]
