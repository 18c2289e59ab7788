"""compose.yaml runs the four images as the smoke test does: one network, hardened, keyed."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bruno_pipelines import SERVICES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOC: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
PORTS = {"embedding": 50051, "retrieval": 50052, "generation": 50053}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_its_published_image_or_builds_its_dockerfile_target(
    service: str,
) -> None:
    spec = DOC["services"][service]

    assert spec["image"] == f"ghcr.io/agent-bruno/{service}:${{BRUNO_TAG:-main}}"
    assert spec["build"] == {"context": ".", "target": service}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_hardened(service: str) -> None:
    spec = DOC["services"][service]

    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert "user" not in spec  # the image's non-root user


def test_services_reach_each_other_by_name_and_the_edge_needs_keys() -> None:
    services = DOC["services"]
    edge = services["edge"]["environment"]

    for name, port in PORTS.items():
        assert edge[f"BRUNO_{name.upper()}_ADDR"] == f"{name}:{port}"
    assert services["retrieval"]["environment"]["BRUNO_EMBEDDING_ADDR"] == "embedding:50051"
    assert edge["BRUNO_API_KEYS"].startswith("${BRUNO_API_KEYS:?")
    assert services["edge"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["retrieval"]["volumes"] == ["lancedb:/data"]


def test_ollama_is_optional_behind_a_profile() -> None:
    ollama = DOC["services"]["ollama"]

    assert ollama["profiles"] == ["ollama"]
    assert all("profiles" not in DOC["services"][s] for s in SERVICES)
    assert DOC["services"]["generation"]["environment"]["OLLAMA_HOST"].endswith("ollama:11434}")


def test_open_webui_is_optional_and_talks_to_the_edge_with_a_plain_task_model() -> None:
    webui = DOC["services"]["open-webui"]
    env = webui["environment"]

    assert webui["profiles"] == ["open-webui"]
    assert env["OPENAI_API_BASE_URL"] == "http://edge:8080/v1"
    assert env["DEFAULT_MODELS"] == "bruno"
    assert env["TASK_MODEL_EXTERNAL"] != "bruno"  # tasks must not go through retrieval
    assert env["ENABLE_OLLAMA_API"] == "false"
    assert webui["ports"] == ["127.0.0.1:3000:8080"]  # 8080 is the edge's
    assert webui["depends_on"] == {"edge": {"condition": "service_healthy"}}


def test_docker_compose_accepts_the_file() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make smoke's Debian set-up has it)")
    result = subprocess.run(
        [compose, "-f", str(COMPOSE), "--profile", "ollama", "config", "--services"],
        capture_output=True,
        text=True,
        check=False,
        env={"BRUNO_API_KEYS": "k", "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted([*SERVICES, "ollama"])
