from pathlib import Path

import pytest

from bruno_pipelines import DOCKERFILE, SERVICES, ImageLabels, all_images, build_image, source
from bruno_pipelines.offline import Call, Query, capture, offline_client

REPO = Path(__file__).resolve().parents[2]


def _docker_build(query: Query) -> Call:
    (call,) = query.find("dockerBuild")
    return call


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_is_built_from_the_dockerfile_with_its_own_target(
    service: str,
) -> None:
    client = offline_client()

    query = capture(build_image(source(client, REPO), service))

    build = _docker_build(query)
    assert build.args["target"] == service
    # The SDK leaves out arguments equal to their default ("Dockerfile").
    assert build.args.get("dockerfile", "Dockerfile") == DOCKERFILE == "Dockerfile"
    (context,) = query.find("directory")
    assert context.args["path"] == str(REPO)
    assert query.fields()[:2] == ["host", "directory"]


def test_all_images_builds_every_service_once() -> None:
    client = offline_client()

    images = all_images(source(client, REPO))

    assert list(images) == list(SERVICES)
    targets = [_docker_build(capture(image)).args["target"] for image in images.values()]
    assert targets == list(SERVICES)


def test_labels_reach_the_dockerfile_as_build_arguments() -> None:
    client = offline_client()
    labels = ImageLabels(version="1.2.3", revision="abc123", source="https://example.test/bruno")

    build = _docker_build(capture(build_image(source(client, REPO), "edge", labels)))

    assert build.args["buildArgs"] == [
        {"name": "IMAGE_VERSION", "value": "1.2.3"},
        {"name": "IMAGE_REVISION", "value": "abc123"},
        {"name": "IMAGE_SOURCE", "value": "https://example.test/bruno"},
    ]


def test_unknown_service_is_refused() -> None:
    client = offline_client()

    with pytest.raises(ValueError, match="unknown service 'web'"):
        build_image(source(client, REPO), "web")


def test_labels_come_from_github_actions_environment() -> None:
    labels = ImageLabels.from_env(
        {
            "GITHUB_SHA": "0123abcd",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "owner/agent-bruno",
        }
    )

    assert labels == ImageLabels(
        version="dev", revision="0123abcd", source="https://github.com/owner/agent-bruno"
    )


def test_labels_outside_ci_are_the_defaults() -> None:
    assert ImageLabels.from_env({}) == ImageLabels()
    assert ImageLabels().revision == "unknown"
