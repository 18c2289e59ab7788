"""What the build, smoke, scan, SBOM, manifests and publish stages ask the engine, read offline."""

import asyncio
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
from bruno_pipelines.smoke import PORTS, non_root, smoke

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


@pytest.mark.parametrize("service", SERVICES)
def test_build_stage_builds_each_image_and_checks_it_runs_as_non_root(service: str) -> None:
    client = offline_client()
    image = all_images(source(client, REPO))[service]

    query = capture(non_root(image))

    assert _targets(query) == [service]
    # The exec runs as the image's own user (no user override) and fails on uid 0.
    assert not query.find("withUser")
    (check,) = query.execs()
    assert check[:2] == ["sh", "-c"]
    assert 'test "$uid" != 0' in check[2]


def test_smoke_binds_all_four_services_and_chats_through_the_edge() -> None:
    client = offline_client()
    src = source(client, REPO)
    key = client.set_secret("smoke-api-key", "k")

    query = capture(smoke(client, src, all_images(src), key, "run-1"))

    (edge,) = _bindings(query).values()
    assert list(_bindings(query)) == ["edge"]
    assert edge.fields()[-1] == "asService"
    backends = _bindings(edge)
    assert sorted(backends) == ["embedding", "generation", "retrieval"]
    assert list(_bindings(backends["retrieval"])) == ["embedding"]
    # Each service is its own image, reached at its service name.
    assert set(_targets(edge)) == set(SERVICES)
    assert _env(edge)["BRUNO_RETRIEVAL_ADDR"] == f"retrieval:{PORTS['retrieval']}"
    (exposed,) = [c for c in edge.find("withExposedPort") if c.args["port"] == PORTS["edge"]]
    assert exposed
    assert query.execs()[-1] == ["python", "/smoke/smoke.py", "--edge-url", "http://edge:8080"]


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
