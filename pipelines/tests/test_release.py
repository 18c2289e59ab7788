import subprocess
from pathlib import Path

import pytest

from bruno_pipelines.images import ImageLabels
from bruno_pipelines.release import GitRef, RegistryCredentials, publish_tags

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_push_to_main_is_tagged_with_the_sha_and_the_branch() -> None:
    ref = GitRef.from_env(
        {"GITHUB_SHA": SHA, "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch"}
    )

    assert publish_tags(ref) == [SHA, "main"]


def test_a_version_tag_is_tagged_with_the_sha_and_the_version() -> None:
    ref = GitRef.from_env(
        {"GITHUB_SHA": SHA, "GITHUB_REF_NAME": "v1.2.3", "GITHUB_REF_TYPE": "tag"}
    )

    assert ref.version == "1.2.3"
    assert publish_tags(ref) == [SHA, "1.2.3"]


def test_branch_names_are_made_valid_image_tags() -> None:
    assert publish_tags(GitRef(SHA, "feature/add+chat")) == [SHA, "feature-add-chat"]


def test_a_tag_that_is_not_a_version_adds_only_the_sha() -> None:
    assert publish_tags(GitRef(SHA, "nightly", is_tag=True)) == [SHA]


def test_no_commit_means_no_tags() -> None:
    with pytest.raises(ValueError, match="without a git commit"):
        publish_tags(GitRef("unknown"))


def test_outside_ci_the_ref_comes_from_git(tmp_path: Path) -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
        "HOME": str(tmp_path),
    }
    for argv in (["init", "-q", "-b", "work"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(tmp_path), *argv], check=True, env=env)

    ref = GitRef.from_env({}, tmp_path)

    assert len(ref.sha) == 40
    assert ref.name == "work"
    assert publish_tags(ref) == [ref.sha, "work"]


def test_credentials_need_both_variables_and_never_show_the_password() -> None:
    assert RegistryCredentials.from_env({"REGISTRY_USERNAME": "u"}) is None
    assert RegistryCredentials.from_env({"REGISTRY_PASSWORD": "p"}) is None

    creds = RegistryCredentials.from_env({"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "hunter2"})

    assert creds is not None
    assert "hunter2" not in repr(creds)


def test_image_version_label_is_the_release_version_on_a_tag() -> None:
    labels = ImageLabels.from_env(
        {"GITHUB_SHA": SHA, "GITHUB_REF_NAME": "v2.0.1", "GITHUB_REF_TYPE": "tag"}
    )

    assert labels.version == "2.0.1"
    assert labels.revision == SHA
