"""The real system for end-to-end tests: four service processes, an Ollama stand-in, real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port


@pytest.fixture(scope="module")
def standin() -> Iterator[OllamaStandIn]:
    with InBackground(OllamaStandIn(models=["llama3.2"])) as ollama:
        yield ollama


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> Iterator[BrunoSystem]:
    with BrunoSystem(tmp_path_factory.mktemp("bruno"), ollama_host=standin.url) as running:
        yield running


@pytest.fixture(scope="module")
def offline_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrunoSystem]:
    """The system with no Ollama anywhere: OLLAMA_HOST points at a port nobody listens on."""
    dead = f"http://127.0.0.1:{free_port()}"
    with BrunoSystem(tmp_path_factory.mktemp("bruno-offline"), ollama_host=dead) as running:
        yield running


def client_for(system: BrunoSystem) -> httpx.Client:
    return httpx.Client(base_url=system.edge_url, timeout=60)


@pytest.fixture
def edge(system: BrunoSystem) -> Iterator[httpx.Client]:
    with client_for(system) as client:
        yield client


@pytest.fixture
def offline_edge(offline_system: BrunoSystem) -> Iterator[httpx.Client]:
    with client_for(offline_system) as client:
        yield client


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "demo"
