"""The LanceDB backup procedure, run for real: a copy taken while another process writes comes
back, after ``recover``, equal to the source at the version it restored (rows and a query)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import lancedb
import pytest

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "k8s"
    / "components"
    / "velero-backup"
    / ("lancedb_backup.py")
)


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    """The drill as an operator runs it: its own process, which starts the writer process."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lancedb_backup", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> Run:
    """The script's command line in this process (the hooks' commands, without the start-up)."""

    def call(*args: str) -> tuple[int, str, str]:
        status = script.main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call


def rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "vector": [float(i % 7), 1.0, float(i % 3)]} for i in range(start, start + count)
    ]


def test_a_backup_taken_under_concurrent_writes_restores_to_a_consistent_version(
    tmp_path: Path,
) -> None:
    # Manifests copied last: a commit made during the copy leaves a newest version whose data
    # files the copy missed; recover must step back to a complete one, never before the
    # checkpoint.
    result = drill("drill", str(tmp_path), "--rows", "300", "--order", "manifests-last")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mismatches"] == []
    assert report["writer_commits"] > 0
    for table, version in report["restored_from"].items():
        assert report["checkpoint"][table] <= version <= report["source_latest"][table]
    assert any(
        report["restored_from"][t] < report["source_latest"][t] for t in report["checkpoint"]
    ), "the writer kept writing after the copy, so the source must be ahead"


def test_a_copy_in_plain_order_also_restores(tmp_path: Path) -> None:
    result = drill("drill", str(tmp_path), "--rows", "100", "--order", "sorted")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mismatches"] == []


def _newest_data_file(table_dir: Path) -> Path:
    return max((table_dir / "data").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def test_recover_rolls_a_restored_table_back_past_a_commit_with_missing_files(
    tmp_path: Path, run: Run
) -> None:
    source = tmp_path / "db"
    table = lancedb.connect(str(source)).create_table("chunks", data=rows(0, 50))
    assert run("checkpoint", str(source))[0] == 0
    checkpointed = table.version
    table.add(rows(50, 10))
    restored = tmp_path / "restored"
    shutil.copytree(source, restored)
    _newest_data_file(restored / "chunks.lance").unlink()  # the copy missed the last commit

    status, _, err = run("recover", str(restored))

    assert status == 0, err
    assert f"rolled back from incomplete {checkpointed + 1} to {checkpointed}" in err
    back = lancedb.connect(str(restored)).open_table("chunks")
    assert back.count_rows() == 50
    assert not (restored / "_bruno_checkpoint.json").exists()
    assert json.loads(run("verify", str(restored))[1]) == {"chunks": 50}


def test_recover_refuses_when_even_the_checkpointed_version_is_damaged(
    tmp_path: Path, run: Run
) -> None:
    source = tmp_path / "db"
    lancedb.connect(str(source)).create_table("chunks", data=rows(0, 50))
    assert run("checkpoint", str(source))[0] == 0
    _newest_data_file(source / "chunks.lance").unlink()

    status, _, err = run("recover", str(source))

    assert status == 1
    assert "chunks: no complete version at or after checkpoint" in err


def test_recover_leaves_a_live_volume_alone(tmp_path: Path, run: Run) -> None:
    source = tmp_path / "db"
    table = lancedb.connect(str(source)).create_table("chunks", data=rows(0, 5))
    version = table.version
    status, _, err = run("recover", str(source))
    assert status == 0
    assert "nothing to do" in err
    assert lancedb.connect(str(source)).open_table("chunks").version == version


def test_release_without_a_checkpoint_fails_clearly(tmp_path: Path, run: Run) -> None:
    lancedb.connect(str(tmp_path / "db")).create_table("chunks", data=rows(0, 5))
    status, _, err = run("release", str(tmp_path / "db"))
    assert status == 1
    assert "did the pre-backup hook run?" in err


def test_the_hooks_do_nothing_where_lancedb_is_not_on_the_volume(tmp_path: Path, run: Run) -> None:
    # The lancedb-s3 component keeps the volume but not the data: hooks must not fail backups.
    for verb in ("checkpoint", "release", "recover"):
        status, _, err = run(verb, str(tmp_path / "absent"))
        assert status == 0, (verb, err)


def test_the_hooks_call_commands_the_script_has(script: ModuleType) -> None:
    commands = script.build_parser()._subparsers._group_actions[0].choices
    assert {"checkpoint", "release", "recover", "verify", "drill"} <= set(commands)
