"""deploy.py on a temporary copy of the repository's k8s/ tree, committed in a scratch git repo."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bruno_pipelines import SERVICES
from bruno_pipelines.gitops import PromotionError, main, promote, set_image_tags

REPO = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.test",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.test",
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def _images(repo: Path, overlay: str) -> dict[str, str]:
    doc = yaml.safe_load((repo / "k8s" / "overlays" / overlay / "kustomization.yaml").read_text())
    return {e["name"]: str(e.get("newTag")) for e in doc["images"]}


def test_dev_promotion_commits_the_sha_for_every_service_image(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (repo / "k8s/overlays/dev/kustomization.yaml").read_text()

    code = main(["--overlay", "dev", "--tag", SHA, "--commit"], repo=repo)

    assert code == 0
    images = _images(repo, "dev")
    for service in SERVICES:
        assert images[f"ghcr.io/agent-bruno/{service}"] == SHA
    assert _git(repo, "log", "-1", "--format=%s").strip() == f"Deploy {SHA} to dev"
    assert _git(repo, "status", "--porcelain") == ""
    # Only newTag lines changed: comments and everything else stay as written.
    after = (repo / "k8s/overlays/dev/kustomization.yaml").read_text()
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == len(SERVICES)
    assert all(b.strip() == f"newTag: {SHA}" for _, b in changed)
    assert f"+    newTag: {SHA}" in capsys.readouterr().out


def test_without_commit_the_diff_is_printed_and_nothing_is_written(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--overlay", "prod", "--tag", "1.4.0"], repo=repo)

    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("--- a/k8s/overlays/prod/kustomization.yaml\n")
    assert "+    newTag: 1.4.0" in out
    assert _git(repo, "status", "--porcelain") == ""


def test_promoting_to_the_current_tag_changes_nothing(repo: Path) -> None:
    assert main(["--overlay", "dev", "--tag", SHA, "--commit"], repo=repo) == 0
    head = _git(repo, "rev-parse", "HEAD")

    assert main(["--overlay", "dev", "--tag", SHA, "--commit"], repo=repo) == 0
    assert _git(repo, "rev-parse", "HEAD") == head


def test_one_service_can_be_promoted_alone(repo: Path) -> None:
    assert main(["--overlay", "dev", "--tag", SHA, "--service", "edge"], repo=repo) == 0

    promotion = promote(repo, "dev", SHA, ["edge"])

    doc = yaml.safe_load(promotion.after)
    tags = {e["name"]: str(e["newTag"]) for e in doc["images"]}
    assert tags["ghcr.io/agent-bruno/edge"] == SHA
    assert tags["ghcr.io/agent-bruno/retrieval"] != SHA


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--overlay", "qa", "--tag", SHA],
            "unknown overlay 'qa'; overlays are dev, prod, staging",
        ),
        (["--overlay", "../base", "--tag", SHA], "unknown overlay '../base'"),
        (["--overlay", "prod", "--tag", SHA], "cannot be deployed to prod: it takes a release"),
        (["--overlay", "dev", "--tag", "latest"], "cannot be deployed to dev: it takes a full git"),
        (["--overlay", "dev", "--tag", "1.2.3"], "cannot be deployed to dev"),
    ],
)
def test_unknown_overlay_or_wrong_kind_of_tag_fails_clearly_and_changes_nothing(
    repo: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--commit"], repo=repo)

    assert code == 2
    assert message in capsys.readouterr().err
    assert _git(repo, "status", "--porcelain") == ""
    assert _git(repo, "rev-list", "--count", "HEAD").strip() == "1"


def test_an_overlay_without_the_image_is_refused(repo: Path) -> None:
    path = repo / "k8s/overlays/dev/kustomization.yaml"
    path.write_text(path.read_text().replace("ghcr.io/agent-bruno/edge", "ghcr.io/other/edge"))

    with pytest.raises(PromotionError, match=r"lists no image ghcr\.io/agent-bruno/edge"):
        promote(repo, "dev", SHA)


def test_an_image_entry_without_new_tag_gets_one() -> None:
    text = "images:\n  - name: ghcr.io/agent-bruno/edge\n    newName: x/edge\nreplicas: []\n"

    result = set_image_tags(text, ["ghcr.io/agent-bruno/edge"], "1.0.0")

    assert yaml.safe_load(result)["images"] == [
        {"name": "ghcr.io/agent-bruno/edge", "newName": "x/edge", "newTag": "1.0.0"}
    ]


def test_a_promotion_records_its_source_commit_in_a_trailer(repo: Path) -> None:
    assert main(["--overlay", "dev", "--tag", SHA, "--commit"], repo=repo) == 0
    assert (
        _git(repo, "log", "-1", "--format=%(trailers:key=Source-Revision,valueonly)").strip() == SHA
    )

    release = "fedcba9876543210fedcba9876543210fedcba98"
    argv = ["--overlay", "prod", "--tag", "1.2.3", "--revision", release, "--commit"]
    assert main(argv, repo=repo) == 0
    assert (
        _git(repo, "log", "-1", "--format=%(trailers:key=Source-Revision,valueonly)").strip()
        == release
    )


def test_a_revision_that_is_not_a_commit_sha_exits_2_before_writing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--overlay", "prod", "--tag", "1.2.3", "--revision", "main", "--commit"], repo=repo
    )

    assert code == 2
    assert "--revision takes a full commit SHA" in capsys.readouterr().err
    assert _git(repo, "status", "--porcelain") == ""
