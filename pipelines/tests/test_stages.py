"""What the build, smoke, scan, SBOM, manifests and publish stages ask the engine, read offline."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bruno_pipelines import SERVICES, source
from bruno_pipelines.cli import STAGES, StageContext, run_stages
from bruno_pipelines.images import ImageLabels, all_images
from bruno_pipelines.manifests import KUSTOMIZE_IMAGE, manifests, overlays
from bruno_pipelines.offline import Call, Query, capture, offline_client
from bruno_pipelines.publish import publications
from bruno_pipelines.release import RegistryCredentials
from bruno_pipelines.security import TRIVY_IMAGE, sbom, scan
from bruno_pipelines.smoke import non_root, smoke
from bruno_testing.system import BrunoSystem, free_port

REPO = Path(__file__).resolve().parents[2]


def _targets(query: Query) -> list[str]:
    return [str(call.args["target"]) for call in query.nested("dockerBuild")]


def _bindings(query: Query) -> dict[str, Query]:
    """alias -> the service bound under it, at the top level of this chain."""
    found = {}
    for call in query.find("withServiceBinding"):
        service = call.args["service"]
        assert isinstance(service, Query)
        found[str(call.args["alias"])] = service
    return found


def _env(query: Query) -> dict[object, object]:
    return {c.args["name"]: c.args["value"] for c in query.find("withEnvVariable")}


def _run_as(uid: int, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``argv`` run where ``id -u`` answers ``uid``: the image's user, as the engine runs it."""
    bin_dir = tmp_path / f"uid-{uid}"
    bin_dir.mkdir()
    fake_id = bin_dir / "id"
    fake_id.write_text(f'#!/bin/sh\n[ "$1" = "-u" ] && echo {uid}\n')
    fake_id.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_builds_each_image_and_fails_it_when_it_runs_as_root(
    service: str, tmp_path: Path
) -> None:
    client = offline_client()
    image = all_images(source(client, REPO))[service]

    query = capture(non_root(image))
    (check,) = query.execs()

    assert _targets(query) == [service]
    # The check runs as the image's own user: nothing in the chain switches it.
    assert not query.find("withUser")
    assert _run_as(0, check, tmp_path).returncode != 0
    assert _run_as(10001, check, tmp_path).returncode == 0


def _effective_user(dockerfile: str, target: str) -> str:
    """The USER a target's containers start as, following its FROM chain in the Dockerfile
    (Docker's default, root, when no stage sets one)."""
    stages: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in dockerfile.splitlines():
        found = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE)
        if found:
            name = found[2] or f"stage-{len(stages)}"
            stages[name] = (found[1], [])
        elif line.strip().upper().startswith("USER ") and name:
            stages[name][1].append(line.split(None, 1)[1].strip())
    stage = target
    while stage in stages:
        base, users = stages[stage]
        if users:
            return users[-1]
        stage = base
    return "root"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_image_starts_as_the_unprivileged_user_the_runtime_stage_creates(
    service: str,
) -> None:
    # No engine builds images in the test run, so this reads the Dockerfile as parsed; the
    # built images' uid is checked for real by `make smoke` (`docker exec <container> id -u`).
    dockerfile = (REPO / "Dockerfile").read_text()

    user = _effective_user(dockerfile, service)
    uid, _, gid = user.partition(":")

    assert uid.isdigit(), f"{service}: USER {user} is not numeric (runAsNonRoot needs a uid)"
    assert int(uid) != 0
    assert f"--uid {uid}" in dockerfile
    assert f"--gid {gid or uid}" in dockerfile


def test_the_user_reader_sees_an_image_that_stays_root() -> None:
    assert _effective_user("FROM python AS runtime\nFROM runtime AS edge\n", "edge") == "root"
    assert _effective_user("FROM a AS b\nUSER 1:1\nFROM b AS c\nUSER root\n", "c") == "root"


def _dial(query: Query) -> dict[str, str]:
    """What a container dials: alias → port, from its ``BRUNO_*_ADDR`` settings (host:port)."""
    return {
        str(value).split(":")[0]: str(value).split(":")[1]
        for name, value in _env(query).items()
        if str(name).endswith("_ADDR")
    }


def _exposed(service: Query) -> set[str]:
    return {str(c.args["port"]) for c in service.find("withExposedPort")}


def test_smoke_binds_all_four_services_each_reachable_where_its_callers_dial() -> None:
    client = offline_client()
    src = source(client, REPO)
    key = client.set_secret("smoke-api-key", "k")

    query = capture(smoke(client, src, all_images(src), key, "run-1"))

    # The client dials the edge at the URL it is given; every caller's address for a peer is
    # an alias bound in that caller, to a service of that peer's image exposing that port.
    url = query.execs()[-1][query.execs()[-1].index("--edge-url") + 1]
    host, port = url.removeprefix("http://").split(":")
    callers: list[tuple[Query, dict[str, str]]] = [(query, {host: port})]
    reached: set[str] = set()
    while callers:
        caller, dials = callers.pop()
        bound = _bindings(caller)
        assert set(dials) <= set(bound), f"dialled but not bound: {set(dials) - set(bound)}"
        for alias, peer in bound.items():
            assert peer.fields()[-1] == "asService"
            own_image = [str(c.args["target"]) for c in peer.find("dockerBuild")]
            assert own_image == [alias], f"{alias} is bound to another image"
            assert dials.get(alias) in _exposed(peer), f"{alias}: dialled port not exposed"
            reached.add(alias)
            callers.append((peer, _dial(peer)))

    assert reached == set(SERVICES)


@pytest.mark.integration
def test_smoke_chats_through_the_edge_with_the_stages_own_command(tmp_path: Path) -> None:
    # The smoke stage's last exec, run here against the real services on loopback instead of
    # the service containers: the same script, the same flags, the key where the stage puts it.
    client = offline_client()
    src = source(client, REPO)
    query = capture(smoke(client, src, all_images(src), client.set_secret("k", "k"), "run"))
    argv = query.execs()[-1]
    (mounted,) = query.find("withFile")
    script = mounted.args["source"]
    assert isinstance(script, Query)
    (key_var,) = [str(c.args["name"]) for c in query.find("withSecretVariable")]
    api_key = "smoke-test-key"
    dead_ollama = f"http://127.0.0.1:{free_port()}"  # extractive answers, as in the stage
    env = {"BRUNO_API_KEYS": api_key}

    with BrunoSystem(tmp_path, ollama_host=dead_ollama, env=env) as system:
        command = [sys.executable, str(REPO / str(script.calls[-1].args["path"]))]
        command += [*argv[2:-1], system.edge_url]
        chat = subprocess.run(
            command, env={**os.environ, key_var: api_key}, capture_output=True, text=True,
            check=False, timeout=180,
        )  # fmt: skip
        wrong_key = subprocess.run(
            command, env={**os.environ, key_var: "not-the-key"}, capture_output=True, text=True,
            check=False, timeout=180,
        )  # fmt: skip

    assert argv[:2] == ["python", str(mounted.args["path"])]
    assert chat.returncode == 0, chat.stderr
    assert "cites the ingested document" in chat.stderr
    assert wrong_key.returncode == 1


def test_smoke_gives_the_edge_its_api_key_as_a_secret_and_never_caches() -> None:
    client = offline_client()
    src = source(client, REPO)
    key = client.set_secret("smoke-api-key", "k")

    query = capture(smoke(client, src, all_images(src), key, "run-1"))

    edge = _bindings(query)["edge"]
    secret_vars = {c.args["name"]: c.args["secret"] for c in edge.find("withSecretVariable")}
    assert isinstance(secret_vars["BRUNO_API_KEYS"], Query)
    assert "BRUNO_API_KEYS" not in _env(edge)
    assert _env(query)["BRUNO_SMOKE_RUN"] == "run-1"


def test_smoke_refuses_an_incomplete_set_of_images() -> None:
    client = offline_client()
    src = source(client, REPO)
    images = all_images(src)
    del images["generation"]

    with pytest.raises(ValueError, match="missing generation"):
        smoke(client, src, images, client.set_secret("k", "k"), "run")


def _trivy_exec(query: Query) -> list[str]:
    (argv,) = [e for e in query.execs() if e[:2] == ["trivy", "image"]]
    return argv


@pytest.mark.parametrize("service", SERVICES)
def test_scan_fails_on_fixable_high_and_critical_findings_in_the_built_image(
    service: str,
) -> None:
    client = offline_client()
    image = all_images(source(client, REPO))[service]

    query = capture(scan(client, image))

    assert query.find("from")[0].args["address"] == TRIVY_IMAGE
    argv = _trivy_exec(query)
    assert argv[argv.index("--exit-code") + 1] == "1"
    assert argv[argv.index("--severity") + 1] == "HIGH,CRITICAL"
    assert "--ignore-unfixed" in argv
    (mount,) = query.find("withMountedFile")
    tarball = mount.args["source"]
    assert isinstance(tarball, Query)
    assert tarball.fields()[-1] == "asTarball"
    assert _targets(tarball) == [service]


def test_a_failing_scan_fails_the_stage() -> None:
    # The real scan stage awaits Trivy's exec; offline that await fails, as a finding would,
    # and the failure is the stage's result (the CLI then exits 1, see test_cli).
    client = offline_client()
    ctx = StageContext(client, source(client, REPO), ImageLabels(), REPO)

    results = asyncio.run(run_stages(ctx, ["scan"], STAGES))

    scan_result = next(r for r in results if r.name == "scan")
    assert scan_result.result == "failed"
    assert "EngineRequiredError" in scan_result.error


@pytest.mark.parametrize("service", SERVICES)
def test_sbom_is_a_cyclonedx_file_per_image(service: str) -> None:
    client = offline_client()
    image = all_images(source(client, REPO))[service]

    query = capture(sbom(client, image, service))

    argv = _trivy_exec(query)
    assert argv[argv.index("--format") + 1] == "cyclonedx"
    assert query.calls[-1] == Call("Container", "file", {"path": f"/sbom/{service}.cdx.json"})


def test_manifests_render_every_overlay_and_validate_them_strictly() -> None:
    client = offline_client()
    names = overlays(REPO)

    query = capture(manifests(client, source(client, REPO), names))

    assert names  # dev, staging, prod ...
    execs = [c.args["args"] for c in query.nested("withExec")]
    builds = [argv for argv in execs if isinstance(argv, list) and argv[0] == "build"]
    assert [argv[1] for argv in builds] == [f"/src/k8s/overlays/{n}" for n in names]
    assert any(c.args["address"] == KUSTOMIZE_IMAGE for c in query.nested("from"))
    validate = query.execs()[-1]
    assert validate[:5] == ["uv", "run", "kubernetes-validate", "--strict", "-k"]
    assert validate[6:] == [f"/rendered/{n}.yaml" for n in names]


def test_publish_authenticates_with_a_secret_and_pushes_every_image_under_every_tag() -> None:
    client = offline_client()
    images = all_images(source(client, REPO))
    credentials = RegistryCredentials("bruno-ci", "s3cret-token")

    plan = publications(client, images, "ghcr.io/agent-bruno", ["abc1234", "main"], credentials)

    assert sorted(p.address for p in plan) == sorted(
        f"ghcr.io/agent-bruno/{s}:{t}" for s in SERVICES for t in ("abc1234", "main")
    )
    for publication in plan:
        query = capture(publication.image)
        (auth,) = query.find("withRegistryAuth")
        assert auth.args["address"] == "ghcr.io"
        assert auth.args["username"] == "bruno-ci"
        secret = auth.args["secret"]
        assert isinstance(secret, Query)
        assert secret.fields() == ["setSecret"]
        assert _targets(query) == [publication.service]


def test_publish_without_tags_is_refused() -> None:
    client = offline_client()

    with pytest.raises(ValueError, match="no tags"):
        publications(
            client, all_images(source(client, REPO)), "ghcr.io/x", [], RegistryCredentials("u", "p")
        )
