"""Agent Bruno's generation service: streamed answers from Ollama, or an extractive fallback."""

from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.config import GenerationSettings
from bruno_generation.extractive import ExtractiveGenerator
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.server import GenerationServicer, create_server, main

__all__ = [
    "AnswerStream",
    "ExtractiveGenerator",
    "Finished",
    "GenerationServicer",
    "GenerationSettings",
    "ModelNotFound",
    "OllamaGenerator",
    "OllamaUnreachable",
    "create_server",
    "main",
]
