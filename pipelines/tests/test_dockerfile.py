"""The Dockerfile read as a specification: targets, users, ports, layers, health checks.

No Docker engine runs here, so the health-check commands are run directly against real
servers on loopback, exactly as Docker would run them inside the container.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bruno_pipelines import PYTHON_IMAGE, SERVICES, UV_VERSION

REPO = Path(__file__).resolve().parents[2]
STAGING_SCRIPT = REPO / "scripts" / "stage-workspace-layer.sh"
PRUNE_SCRIPT = REPO / "scripts" / "prune-venv.sh"
PORTS = {"edge": 8080, "embedding": 50051, "retrieval": 50052, "generation": 50053}
GRPC_SERVICES = [s for s in SERVICES if s != "edge"]


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        pairs = re.findall(r'(\w+)=("[^"]*"|\S+)', " ".join(self.all("ENV")))
        return {k: v.strip('"') for k, v in pairs}


def _parse(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and stages by name, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            current = stages[name.strip()] = Stage(base.strip(), name.strip())
        elif current is None:
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                global_args[name] = default
        else:
            current.instructions.append((keyword, rest.strip()))
    return global_args, stages


DOCKERFILE_TEXT = (REPO / "Dockerfile").read_text()
GLOBAL_ARGS, STAGES = _parse(DOCKERFILE_TEXT)


def _members() -> dict[str, Path]:
    """Workspace package name -> member directory (relative to the repo)."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    found: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for manifest in sorted(REPO.glob(f"{pattern}/pyproject.toml")):
            project = tomllib.loads(manifest.read_text())["project"]
            found[project["name"]] = manifest.parent.relative_to(REPO)
    return found


def _workspace_closure(package: str, members: dict[str, Path]) -> set[str]:
    """The package and every workspace member it depends on, transitively."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        manifest = tomllib.loads((REPO / members[name] / "pyproject.toml").read_text())
        for requirement in manifest["project"].get("dependencies", []):
            dep = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
            if dep in members:
                todo.append(dep)
    return seen


def _healthcheck_code(service: str) -> str:
    (healthcheck,) = STAGES[service].all("HEALTHCHECK")
    command = json.loads(healthcheck.partition("CMD ")[2])
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert isinstance(code, str)
    return code


def test_there_is_no_syntax_directive_so_builds_need_no_frontend_image() -> None:
    assert not re.search(r"^#\s*syntax=", DOCKERFILE_TEXT, re.MULTILINE)


def test_base_image_and_uv_version_match_the_pipeline_checks() -> None:
    assert GLOBAL_ARGS["PYTHON_IMAGE"] == PYTHON_IMAGE
    assert STAGES["builder"].base == "${PYTHON_IMAGE}"
    assert STAGES["runtime"].base == "${PYTHON_IMAGE}"
    assert f"UV_VERSION={UV_VERSION}" in STAGES["builder"].all("ARG")
    assert any("uv==${UV_VERSION}" in run for run in STAGES["builder"].all("RUN"))


def test_builder_copies_every_workspace_manifest_before_any_source() -> None:
    copies = STAGES["builder"].all("COPY")

    assert copies[0] == "pyproject.toml uv.lock ./"
    for member in _members().values():
        assert f"{member.as_posix()}/pyproject.toml {member.as_posix()}/" in copies
    assert not any("/src" in copy for copy in copies)


@pytest.mark.parametrize("service", SERVICES)
def test_deps_stage_installs_only_the_locked_third_party_dependencies(service: str) -> None:
    stage = STAGES[f"{service}-deps"]

    assert stage.base == "builder"
    assert [kw for kw, _ in stage.instructions] == ["RUN", "RUN"]
    sync, prune = stage.all("RUN")
    assert "uv sync --frozen --no-editable --no-dev --no-install-workspace" in sync
    assert sync.endswith(f"--package bruno-{service}")
    # The venv the image copies is the pruned one: pruning runs last in the stage.
    assert prune == "prune-venv"


@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_copies_sources_then_installs_and_stages_the_workspace(service: str) -> None:
    stage = STAGES[f"{service}-build"]
    kinds = [kw for kw, _ in stage.instructions]
    full_sync, staging = stage.all("RUN")

    assert stage.base == f"{service}-deps"
    assert kinds == [*["COPY"] * len(stage.all("COPY")), "RUN", "RUN"]
    assert "uv sync --frozen --no-editable --no-dev" in full_sync
    assert full_sync.endswith(f"--package bruno-{service}")
    assert "--no-install-workspace" not in full_sync
    assert staging.startswith("stage-workspace-layer ")


@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_copies_the_sources_of_every_workspace_package_it_needs(
    service: str,
) -> None:
    members = _members()
    needed = _workspace_closure(f"bruno-{service}", members)

    copied = set(STAGES[f"{service}-build"].all("COPY"))

    assert copied == {f"{members[p].as_posix()}/src {members[p].as_posix()}/src" for p in needed}


@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_stages_exactly_the_workspace_packages_it_installed(service: str) -> None:
    needed = _workspace_closure(f"bruno-{service}", _members())
    staging = STAGES[f"{service}-build"].all("RUN")[1]

    dists = re.fullmatch(r"stage-workspace-layer ([\w ]+)", staging)

    assert dists is not None
    assert set(dists.group(1).split()) == {name.replace("-", "_") for name in needed}


def _install(site: Path, dist: str, files: dict[str, str]) -> None:
    """Write files as an installer would, and the dist's RECORD listing them."""
    for relative, text in files.items():
        target = (site / relative).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    record = site / f"{dist}.dist-info" / "RECORD"
    record.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{relative},sha256=x,1" for relative in files]
    record.write_text("\n".join([*lines, f"{dist}.dist-info/RECORD,,", ""]))


def test_staging_copies_the_workspace_packages_with_bytecode_and_scripts_only(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "app" / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    _install(site, "fastapi-1.0", {"fastapi/__init__.py": "", "../../../bin/fastapi": ""})
    _install(site, "bruno_proto-0.1.0", {"bruno/edge/v1/pb2.py": "proto"})
    _install(site, "bruno_core-0.1.0", {"bruno_core/__init__.py": "core"})
    _install(site, "bruno_extract-0.1.0", {"bruno_extract/__init__.py": "extract"})
    _install(
        site,
        "bruno_edge-0.1.0",
        {"bruno_edge/app.py": "edge", "../../../bin/bruno-edge": "#!", "../../../bin/bruno": "#!"},
    )
    (site / "bruno_edge" / "__pycache__").mkdir()
    (site / "bruno_edge" / "__pycache__" / "app.cpython-311.pyc").write_text("pyc")
    (venv / "bin" / "python").write_text("")
    layer = tmp_path / "app" / "workspace-layer"
    layer.mkdir()
    dists = STAGES["edge-build"].all("RUN")[1].split()[1:]
    env = {**os.environ, "VENV": str(venv), "LAYER": str(layer), "ROOT": str(tmp_path)}

    subprocess.run([str(STAGING_SCRIPT), *dists], check=True, env=env)

    staged = {p.relative_to(layer).as_posix() for p in layer.rglob("*") if p.is_file()}
    sp = "app/.venv/lib/python3.11/site-packages"
    assert staged == {
        f"{sp}/bruno/edge/v1/pb2.py",
        f"{sp}/bruno_proto-0.1.0.dist-info/RECORD",
        f"{sp}/bruno_core/__init__.py",
        f"{sp}/bruno_core-0.1.0.dist-info/RECORD",
        f"{sp}/bruno_extract/__init__.py",
        f"{sp}/bruno_extract-0.1.0.dist-info/RECORD",
        f"{sp}/bruno_edge/app.py",
        f"{sp}/bruno_edge/__pycache__/app.cpython-311.pyc",
        f"{sp}/bruno_edge-0.1.0.dist-info/RECORD",
        "app/.venv/bin/bruno-edge",
        "app/.venv/bin/bruno",
    }


def _fake_venv(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    return venv, site


def test_pruning_drops_tests_headers_sources_stubs_and_orphaned_bytecode(tmp_path: Path) -> None:
    venv, site = _fake_venv(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import core\n",
            "pkg/core.py": "",
            "pkg/__pycache__/core.cpython-311.pyc": "",
            "pkg/core.pyi": "",
            "pkg/_speedups.pyx": "",
            "pkg/include/pkg.h": "",
            "pkg/tests/__init__.py": "",
            "pkg/tests/test_core.py": "",
            "pkg/__pycache__/gone.cpython-311.pyc": "",
            "pkg-1.0.dist-info/licenses/include/LICENSE.h": "",
        },
    )

    subprocess.run([str(PRUNE_SCRIPT), str(venv)], check=True, capture_output=True)

    left = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert left == {
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/__pycache__/core.cpython-311.pyc",
        "pkg-1.0.dist-info/licenses/include/LICENSE.h",
    }


def test_pruning_fails_when_a_package_no_longer_imports(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "from pkg.tests import fixtures\n", "pkg/tests/fixtures.py": ""}
    venv, _ = _fake_venv(tmp_path, files)

    result = subprocess.run([str(PRUNE_SCRIPT), str(venv)], capture_output=True, text=True)

    assert result.returncode != 0
    assert "No module named 'pkg.tests'" in result.stderr


def test_pruning_imports_the_packages_inside_namespace_packages_too(tmp_path: Path) -> None:
    # `google` has no __init__.py of its own; google.protobuf is what gRPC needs.
    files = {
        "ns/lib/__init__.py": "from ns.lib.tests import helpers\n",
        "ns/lib/tests/helpers.py": "",
    }
    venv, _ = _fake_venv(tmp_path, files)

    result = subprocess.run([str(PRUNE_SCRIPT), str(venv)], capture_output=True, text=True)

    assert result.returncode != 0
    assert "No module named 'ns.lib.tests'" in result.stderr


def test_builder_installs_the_staging_script_the_build_stages_call() -> None:
    copies = STAGES["builder"].all("COPY")

    assert "scripts/stage-workspace-layer.sh /usr/local/bin/stage-workspace-layer" in copies


def test_builder_installs_the_prune_script_and_the_binutils_it_needs() -> None:
    builder = STAGES["builder"]

    assert "scripts/prune-venv.sh /usr/local/bin/prune-venv" in builder.all("COPY")
    assert any("apt-get install" in run and "binutils" in run for run in builder.all("RUN"))


def test_builder_fails_a_run_when_any_command_of_a_pipeline_fails() -> None:
    (shell,) = STAGES["builder"].all("SHELL")

    assert json.loads(shell)[:3] == ["/bin/bash", "-o", "pipefail"]


def test_runtime_stage_has_no_uv_or_build_tools_and_a_non_root_user() -> None:
    runtime = STAGES["runtime"]
    runs = " ".join(runtime.all("RUN"))

    assert "uv" not in runs.split()
    assert "pip" not in runs
    assert "apt-get" not in runs
    assert "--uid 10001" in runs
    env = runtime.env()
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_runtime_stage_labels_the_image_from_build_arguments() -> None:
    labels = " ".join(STAGES["runtime"].all("LABEL"))

    for label, arg in [("source", "IMAGE_SOURCE"), ("revision", "IMAGE_REVISION")]:
        assert f'org.opencontainers.image.{label}="${{{arg}}}"' in labels
    assert 'org.opencontainers.image.version="${IMAGE_VERSION}"' in labels


@pytest.mark.parametrize("service", SERVICES)
def test_service_target_ships_only_its_venv_in_two_layers_and_runs_as_uid_10001(
    service: str,
) -> None:
    stage = STAGES[service]
    # The embedding image also carries its default model, built with the image (below).
    model = ["--from=embedding-model /opt/bruno/embedding /opt/bruno/embedding"]

    assert stage.base == "runtime"
    assert stage.all("COPY") == [
        f"--from={service}-deps /app/.venv /app/.venv",
        *(model if service == "embedding" else []),
        f"--from={service}-build /app/workspace-layer/ /",
    ]
    assert stage.all("USER") == ["10001:10001"]
    assert stage.all("CMD") == [f'["bruno-{service}"]']
    assert f'org.opencontainers.image.title="bruno-{service}"' in " ".join(stage.all("LABEL"))


@pytest.mark.parametrize("service", SERVICES)
def test_service_listens_on_all_interfaces_on_its_exposed_port(service: str) -> None:
    stage = STAGES[service]
    port = PORTS[service]
    env = stage.env()

    assert stage.all("EXPOSE") == [str(port)]
    if service == "edge":
        assert env["BRUNO_EDGE_HOST"] == "0.0.0.0"
        assert env["BRUNO_EDGE_PORT"] == str(port)
    else:
        assert env[f"BRUNO_{service.upper()}_LISTEN_ADDR"] == f"0.0.0.0:{port}"


def test_embedding_ships_its_default_model_built_read_only_where_the_service_looks() -> None:
    model = STAGES["embedding-model"]
    (build,) = model.all("RUN")

    # Only the dependencies and the quantizer's module: a code change reuses the model layer.
    assert model.base == "embedding-deps"
    assert model.all("COPY") == [
        "services/embedding/src/bruno_embedding/quantized_model.py /tmp/quantize/"
    ]
    assert "dynamic_int8_model(Path('/opt/bruno/embedding'))" in build
    assert "chmod -R a+rX,go-w /opt/bruno/embedding" in build  # root's, read-only to 10001
    assert STAGES["embedding"].env()["BRUNO_EMBEDDING_CACHE_DIR"] == "/opt/bruno/embedding"


def test_retrieval_keeps_lancedb_on_a_volume_its_user_owns() -> None:
    stage = STAGES["retrieval"]

    assert stage.all("VOLUME") == ['["/data"]']
    assert stage.env()["BRUNO_LANCEDB_URI"].startswith("/data/")
    assert any("-o 10001" in run and "/data" in run for run in stage.all("RUN"))


def test_final_targets_are_exactly_the_services() -> None:
    final = [name for name, stage in STAGES.items() if stage.base == "runtime"]

    assert final == list(SERVICES)


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    for local_state in (".git", "**/.venv", "**/__pycache__", "**/.mypy_cache", "data", "build"):
        assert local_state in ignored


# --- health checks, run for real ------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def http_health_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def _run_healthcheck(code: str, env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


def _free_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    return port


async def test_edge_healthcheck_passes_while_health_answers(http_health_port: int) -> None:
    code = _healthcheck_code("edge")

    assert await _run_healthcheck(code, {"BRUNO_EDGE_PORT": str(http_health_port)}) == 0
    assert await _run_healthcheck(code, {"BRUNO_EDGE_PORT": str(_free_port())}) != 0


@pytest.mark.parametrize("service", GRPC_SERVICES)
async def test_grpc_healthcheck_follows_the_serving_status(service: str) -> None:
    code = _healthcheck_code(service)
    servicer = health.aio.HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = {f"BRUNO_{service.upper()}_LISTEN_ADDR": f"0.0.0.0:{port}"}
    try:
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert await _run_healthcheck(code, env) == 0

        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await _run_healthcheck(code, env) == 1
    finally:
        await server.stop(None)
