from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ["embedding", "retrieval", "generation"]


def test_committed_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_stubs_import_without_path_rewriting(service: str) -> None:
    messages = importlib.import_module(f"bruno.{service}.v1.{service}_pb2")
    grpc_module = importlib.import_module(f"bruno.{service}.v1.{service}_pb2_grpc")
    assert messages.DESCRIPTOR.package == f"bruno.{service}.v1"
    assert any(name.endswith("ServiceStub") for name in dir(grpc_module))


@pytest.mark.parametrize("service", SERVICES)
def test_every_generated_module_has_a_type_stub(service: str) -> None:
    package = ROOT / "packages" / "proto" / "src" / "bruno" / service / "v1"
    for module in (f"{service}_pb2", f"{service}_pb2_grpc"):
        assert (package / f"{module}.pyi").is_file()
