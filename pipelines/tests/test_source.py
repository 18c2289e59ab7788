from pathlib import Path

import pytest

from bruno_pipelines import SOURCE_EXCLUDES, source
from bruno_pipelines.offline import capture, offline_client


def test_source_is_the_host_repository_without_local_state(tmp_path: Path) -> None:
    client = offline_client()

    (directory,) = capture(source(client, tmp_path)).find("directory")

    assert directory.args["path"] == str(tmp_path.resolve())
    exclude = directory.args["exclude"]
    assert isinstance(exclude, list)
    for local_state in (".git", "**/.venv", "**/__pycache__", "**/.mypy_cache", "data"):
        assert local_state in exclude
    assert exclude == list(SOURCE_EXCLUDES)


def test_a_relative_repository_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    client = offline_client()

    (directory,) = capture(source(client, Path())).find("directory")

    path = directory.args["path"]
    assert isinstance(path, str)
    assert Path(path).is_absolute()
    assert path == str(tmp_path.resolve())
