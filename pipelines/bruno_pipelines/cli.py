"""The CI entry point: pick stages, run them concurrently on one engine session, report.

    dagger run uv run python pipelines/ci.py                # lint, test, build
    dagger run uv run python pipelines/ci.py --only lint,test
    dagger run uv run python pipelines/ci.py --skip build

The same command runs on a laptop and in GitHub Actions (.github/workflows/ci.yml).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
import dagger

from .checks import lint, test
from .images import ImageLabels, all_images
from .source import source

__all__ = [
    "STAGES",
    "Connect",
    "Stage",
    "StageContext",
    "StageResult",
    "format_summary",
    "main",
    "parse_args",
    "run_stages",
]


@dataclass(frozen=True, slots=True)
class StageContext:
    """What every stage gets: the engine client, the repository and the image labels."""

    client: dagger.Client
    source: dagger.Directory
    labels: ImageLabels


Stage = Callable[[StageContext], Awaitable[None]]
Connect = Callable[[], AbstractAsyncContextManager[dagger.Client]]


async def _lint(ctx: StageContext) -> None:
    await lint(ctx.client, ctx.source).sync()


async def _test(ctx: StageContext) -> None:
    await test(ctx.client, ctx.source).sync()


async def _build(ctx: StageContext) -> None:
    async with anyio.create_task_group() as tg:
        for image in all_images(ctx.source, ctx.labels).values():
            tg.start_soon(image.sync)


STAGES: Mapping[str, Stage] = {"lint": _lint, "test": _test, "build": _build}


@dataclass(frozen=True, slots=True)
class StageResult:
    name: str
    result: str  # passed | failed | skipped
    seconds: float | None = None
    error: str = ""


def parse_args(argv: Sequence[str] | None, stage_names: Sequence[str]) -> list[str]:
    """The stages to run, in pipeline order; bad input exits with status 2 (argparse's)."""
    parser = argparse.ArgumentParser(
        prog="ci.py",
        description="Agent Bruno CI: " + ", ".join(stage_names) + " (run under `dagger run`).",
    )
    stage_list = _stage_list(stage_names)
    parser.add_argument(
        "--only",
        action="extend",
        type=stage_list,
        default=[],
        metavar="STAGE[,STAGE]",
        help="run only these stages",
    )
    parser.add_argument(
        "--skip",
        action="extend",
        type=stage_list,
        default=[],
        metavar="STAGE[,STAGE]",
        help="run every stage but these",
    )
    args = parser.parse_args(argv)
    selected = [
        name
        for name in stage_names
        if (not args.only or name in args.only) and name not in args.skip
    ]
    if not selected:
        parser.error("--only and --skip leave no stage to run")
    return selected


def _stage_list(stage_names: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in stage_names]
        if unknown or not names:
            given = ", ".join(repr(name) for name in unknown) or repr(value)
            msg = f"unknown stage {given}; stages are {', '.join(stage_names)}"
            raise argparse.ArgumentTypeError(msg)
        return names

    return parse


async def run_stages(
    ctx: StageContext, selected: Sequence[str], stages: Mapping[str, Stage]
) -> list[StageResult]:
    """Run the selected stages concurrently; one failing does not cancel the others."""
    results: dict[str, StageResult] = {}

    async def timed(name: str) -> None:
        start = time.perf_counter()
        try:
            await stages[name](ctx)
        except Exception as exc:  # a failed stage is reported, not raised
            results[name] = StageResult(name, "failed", time.perf_counter() - start, _describe(exc))
        else:
            results[name] = StageResult(name, "passed", time.perf_counter() - start)

    async with anyio.create_task_group() as tg:
        for name in selected:
            tg.start_soon(timed, name)
    return [results.get(name) or StageResult(name, "skipped") for name in stages]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, dagger.ExecError):
        tail = "\n".join((exc.stderr or exc.stdout).strip().splitlines()[-20:])
        return f"`{' '.join(exc.command)}` exited with {exc.exit_code}\n{tail}".rstrip()
    return f"{type(exc).__name__}: {exc}"


def format_summary(results: Sequence[StageResult]) -> str:
    """A plain-text table: stage, result, seconds."""
    rows = [("stage", "result", "seconds")] + [
        (r.name, r.result, "-" if r.seconds is None else f"{r.seconds:.1f}") for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {result:<{widths[1]}}  {seconds:>{widths[2]}}"
        for name, result, seconds in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def default_connect() -> AbstractAsyncContextManager[dagger.Client]:
    """An engine session; under `dagger run` this joins the CLI's session."""
    return dagger.Connection(dagger.Config(log_output=sys.stderr))


def main(
    argv: Sequence[str] | None = None,
    *,
    repo_root: Path,
    connect: Connect = default_connect,
    stages: Mapping[str, Stage] = STAGES,
    labels: ImageLabels | None = None,
) -> int:
    """Run the pipeline; 0 when every selected stage passed, 1 otherwise, 2 on bad usage."""
    selected = parse_args(argv, list(stages))
    image_labels = labels or ImageLabels.from_env()

    async def pipeline() -> list[StageResult]:
        async with connect() as client:
            ctx = StageContext(client, source(client, repo_root), image_labels)
            return await run_stages(ctx, selected, stages)

    try:
        results = anyio.run(pipeline)
    except dagger.DaggerError as exc:
        # Only connecting can raise here: stage failures are caught per stage.
        print(f"ci.py: no Dagger engine: {exc} (run under `dagger run`)", file=sys.stderr)
        return 1

    print(format_summary(results))
    for result in results:
        if result.error:
            print(f"\n[{result.name}] {result.error}", file=sys.stderr)
    return 0 if all(r.result != "failed" for r in results) else 1
