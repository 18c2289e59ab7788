from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import dagger
import gql
import pytest
from dagger._exceptions import QueryErrorValue

from bruno_pipelines.cli import (
    STAGES,
    Options,
    Stage,
    StageContext,
    StageResult,
    format_summary,
    main,
    parse_args,
)
from bruno_pipelines.images import ImageLabels
from bruno_pipelines.offline import offline_client

STAGE_NAMES = [
    "lint",
    "sast",
    "proto",
    "test",
    "build",
    "smoke",
    "scan",
    "sbom",
    "manifests",
    "publish",
]
UNGATED = [name for name in STAGE_NAMES if name != "publish"]
CREDENTIALS = {"REGISTRY_USERNAME": "bruno-ci", "REGISTRY_PASSWORD": "s3cret-token"}
GIT = {"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_REF_NAME": "main"}


class Recorder:
    """Stand-in stages and connection that note what the pipeline did."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.connections = 0
        self.ran: list[str] = []
        self.failing = failing

    def connect(self) -> AbstractAsyncContextManager[dagger.Client]:
        @asynccontextmanager
        async def session() -> AsyncIterator[dagger.Client]:
            self.connections += 1
            yield offline_client()

        return session()

    def stage(self, name: str) -> Stage:
        async def run(ctx: StageContext) -> None:
            assert isinstance(ctx.client, dagger.Client)
            self.ran.append(name)
            if name in self.failing:
                msg = f"{name} broke"
                raise RuntimeError(msg)

        return run

    def stages(self) -> dict[str, Stage]:
        return {name: self.stage(name) for name in STAGE_NAMES}


def run_main(
    recorder: Recorder, *argv: str, tmp_path: Path, environ: dict[str, str] | None = None
) -> int:
    return main(
        list(argv),
        repo_root=tmp_path,
        connect=recorder.connect,
        stages=recorder.stages(),
        labels=ImageLabels(),
        environ=environ or {},
    )


def test_the_pipeline_offers_every_stage_in_pipeline_order() -> None:
    assert list(STAGES) == STAGE_NAMES


@pytest.mark.parametrize("argv", [["--only", "lnit"], ["--skip", "deploy"], ["--only", "lint,x"]])
def test_unknown_stage_exits_2_before_any_connection(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    with pytest.raises(SystemExit) as exited:
        run_main(recorder, *argv, tmp_path=tmp_path)

    assert exited.value.code == 2
    assert recorder.connections == 0
    assert recorder.ran == []
    assert "unknown stage" in capsys.readouterr().err


def test_publish_without_credentials_exits_2_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    with pytest.raises(SystemExit) as exited:
        run_main(recorder, "--publish", tmp_path=tmp_path, environ=GIT)

    assert exited.value.code == 2
    assert recorder.connections == 0
    assert recorder.ran == []
    assert "--publish needs registry credentials" in capsys.readouterr().err


def test_publish_stage_without_the_publish_flag_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    with pytest.raises(SystemExit) as exited:
        run_main(recorder, "--only", "publish", tmp_path=tmp_path, environ=CREDENTIALS | GIT)

    assert exited.value.code == 2
    assert recorder.connections == 0
    assert "runs only with --publish" in capsys.readouterr().err


def test_publish_without_a_git_commit_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    with pytest.raises(SystemExit) as exited:
        # tmp_path is no git repository and there is no GITHUB_SHA.
        run_main(recorder, "--publish", tmp_path=tmp_path, environ=CREDENTIALS)

    assert exited.value.code == 2
    assert recorder.connections == 0
    assert "without a git commit" in capsys.readouterr().err


def test_without_the_publish_flag_nothing_is_published(tmp_path: Path) -> None:
    recorder = Recorder()

    code = run_main(recorder, tmp_path=tmp_path, environ=CREDENTIALS | GIT)

    assert code == 0
    assert sorted(recorder.ran) == sorted(UNGATED)
    assert "publish" not in recorder.ran


def test_publish_runs_last_with_credentials_and_commit_tags(tmp_path: Path) -> None:
    recorder = Recorder()
    seen: list[Options] = []

    async def publish(ctx: StageContext) -> None:
        seen.append(ctx.options)
        recorder.ran.append("publish")

    stages = {**recorder.stages(), "publish": publish}
    code = main(
        ["--publish"],
        repo_root=tmp_path,
        connect=recorder.connect,
        stages=stages,
        labels=ImageLabels(),
        environ=CREDENTIALS | GIT,
    )

    assert code == 0
    assert recorder.ran[-1] == "publish"
    (options,) = seen
    assert options.credentials is not None
    assert options.credentials.username == "bruno-ci"
    assert "s3cret-token" not in repr(options)
    assert options.tags == [GIT["GITHUB_SHA"], "main"]


def test_publish_is_blocked_when_any_other_stage_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(failing=("scan",))

    code = run_main(recorder, "--publish", tmp_path=tmp_path, environ=CREDENTIALS | GIT)

    assert code == 1
    assert "publish" not in recorder.ran
    out, err = capsys.readouterr()
    assert _row(out, "scan")[1] == "failed"
    assert _row(out, "publish")[1] == "blocked"
    assert "[publish] not run: scan failed" in err


def test_skipping_every_selected_stage_is_a_usage_error(tmp_path: Path) -> None:
    recorder = Recorder()

    with pytest.raises(SystemExit) as exited:
        run_main(recorder, "--only", "lint", "--skip", "lint", tmp_path=tmp_path)

    assert exited.value.code == 2
    assert recorder.connections == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], UNGATED),
        (["--only", "test"], ["test"]),
        (["--only", "build,lint"], ["lint", "build"]),
        (["--only", "lint", "--only", "test"], ["lint", "test"]),
        (["--skip", "build,smoke,scan,sbom,manifests"], ["lint", "sast", "proto", "test"]),
        (["--skip", "lint,sast,proto,test"], ["build", "smoke", "scan", "sbom", "manifests"]),
        (["--only", "sast"], ["sast"]),
        (["--only", "lint,test", "--skip", "test"], ["lint"]),
    ],
)
def test_only_and_skip_select_stages_in_pipeline_order(
    argv: list[str], expected: list[str]
) -> None:
    assert parse_args(argv, STAGE_NAMES).stages == expected


def test_selected_stages_run_on_one_connection_and_the_rest_are_reported_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    code = run_main(recorder, "--only", "lint,test", tmp_path=tmp_path)

    assert code == 0
    assert recorder.connections == 1
    assert sorted(recorder.ran) == ["lint", "test"]
    summary = capsys.readouterr().out
    assert _row(summary, "lint")[1] == "passed"
    assert _row(summary, "test")[1] == "passed"
    assert _row(summary, "build")[1:] == ["skipped", "-"]


def test_a_failing_stage_fails_the_run_without_stopping_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(failing=("lint",))

    code = run_main(recorder, tmp_path=tmp_path)

    assert code == 1
    assert sorted(recorder.ran) == sorted(UNGATED)
    out, err = capsys.readouterr()
    assert _row(out, "lint")[1] == "failed"
    assert _row(out, "test")[1] == "passed"
    assert "[lint] RuntimeError: lint broke" in err


def test_a_failed_command_is_reported_with_its_exit_code_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def lint_fails(_ctx: StageContext) -> None:
        raise _exec_error(["uv", "run", "ruff", "check", "."], 1, "x.py:1:1: F401 unused import")

    code = main(
        ["--only", "lint"],
        repo_root=tmp_path,
        connect=Recorder().connect,
        stages={"lint": lint_fails},
        labels=ImageLabels(),
    )

    assert code == 1
    err = capsys.readouterr().err
    assert "`uv run ruff check .` exited with 1" in err
    assert "F401 unused import" in err


def test_stages_run_concurrently(tmp_path: Path) -> None:
    # Each stage waits for the other: run one after the other, neither could finish.
    lint_started, test_started = anyio.Event(), anyio.Event()

    def handshake(mine: anyio.Event, theirs: anyio.Event) -> Stage:
        async def run(_ctx: StageContext) -> None:
            mine.set()
            with anyio.fail_after(10):  # guards against a hang, not a speed check
                await theirs.wait()

        return run

    recorder = Recorder()
    code = main(
        ["--only", "lint,test"],
        repo_root=tmp_path,
        connect=recorder.connect,
        stages={
            "lint": handshake(lint_started, test_started),
            "test": handshake(test_started, lint_started),
            "build": recorder.stage("build"),
        },
        labels=ImageLabels(),
    )

    assert code == 0


def test_no_engine_is_a_failed_run_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    class Unreachable(AbstractAsyncContextManager[dagger.Client]):
        async def __aenter__(self) -> dagger.Client:
            raise dagger.ProvisionError("Failed to download the Dagger CLI")

        async def __aexit__(self, *_exc: object) -> None:
            return None

    code = main([], repo_root=tmp_path, connect=Unreachable, stages=recorder.stages(), environ={})

    assert code == 1
    assert recorder.ran == []
    assert "no Dagger engine" in capsys.readouterr().err


def test_summary_is_a_table_of_stage_result_and_seconds() -> None:
    summary = format_summary(
        [
            StageResult("lint", "passed", 12.345),
            StageResult("test", "failed", 3.0, "boom"),
            StageResult("build", "skipped"),
        ]
    )

    lines = summary.splitlines()
    assert lines[0].split() == ["stage", "result", "seconds"]
    assert [line.split() for line in lines[2:]] == [
        ["lint", "passed", "12.3"],
        ["test", "failed", "3.0"],
        ["build", "skipped", "-"],
    ]


def _row(summary: str, stage: str) -> list[str]:
    rows = [line.split() for line in summary.splitlines()]
    return next(row for row in rows if row and row[0] == stage)


def _exec_error(command: list[str], exit_code: int, stderr: str) -> dagger.ExecError:
    """The error the SDK raises for a failed withExec, as the engine reports it."""
    value = QueryErrorValue(
        message=f"exit code: {exit_code}",
        extensions={
            "_type": "EXEC_ERROR",
            "cmd": command,
            "exitCode": exit_code,
            "stdout": "",
            "stderr": stderr,
        },
    )
    # QueryError picks the subclass from the error's _type, as the SDK does for engine replies.
    error = dagger.QueryError([value], gql.GraphQLRequest(gql.gql("{ container { id } }")))
    assert isinstance(error, dagger.ExecError)
    return error
