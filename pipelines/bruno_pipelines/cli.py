"""The CI entry point: pick stages, run them concurrently on one engine session, report.

    dagger run uv run python pipelines/ci.py                  # every stage but publish
    dagger run uv run python pipelines/ci.py --only lint,test
    dagger run uv run python pipelines/ci.py --skip smoke,scan
    dagger run uv run python pipelines/ci.py --publish        # ... then publish to ghcr.io
    dagger run uv run python pipelines/ci.py --only scan --scan-tag main   # published images
    dagger run uv run python pipelines/ci.py --only sast --sast-registry-packs   # + semgrep.dev

The same command runs on a laptop and in GitHub Actions (.github/workflows/ci.yml).
Bad usage (an unknown stage, ``--publish`` without registry credentials) exits 2 before
any engine work starts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import dagger

from .checks import WORKDIR, lint, proto_check, test
from .coverage import COVERAGE_DIR
from .images import SERVICES, ImageLabels, all_images
from .manifests import manifests, overlays
from .publish import publications
from .release import (
    DEFAULT_REGISTRY,
    PASSWORD_ENV,
    USERNAME_ENV,
    GitRef,
    RegistryCredentials,
    image_address,
    publish_tags,
)
from .sast import SARIF_DIR, sast
from .security import sbom, scan
from .smoke import non_root, smoke
from .source import source

__all__ = [
    "GATED_STAGES",
    "STAGES",
    "Connect",
    "Options",
    "Stage",
    "StageContext",
    "StageResult",
    "format_summary",
    "main",
    "parse_args",
    "run_stages",
]

SBOM_DIR = Path("build") / "sbom"


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for, checked."""

    stages: list[str]
    publish: bool = False
    registry: str = DEFAULT_REGISTRY
    scan_tag: str | None = None
    credentials: RegistryCredentials | None = None
    tags: list[str] = field(default_factory=list)
    sast_registry_packs: bool = False


@dataclass(frozen=True, slots=True)
class StageContext:
    """What every stage gets: the engine client, the repository and the run's options."""

    client: dagger.Client
    source: dagger.Directory
    labels: ImageLabels
    repo_root: Path = Path()
    options: Options = field(default_factory=lambda: Options(stages=[]))
    run_id: str = ""

    def images(self) -> dict[str, dagger.Container]:
        """The service images, built lazily (the engine builds each once per session)."""
        return all_images(self.source, self.labels)


Stage = Callable[[StageContext], Awaitable[None]]
Connect = Callable[[], AbstractAsyncContextManager[dagger.Client]]


async def _all(awaitables: Iterable[Awaitable[object]]) -> None:
    """Await all concurrently; the first failure cancels the rest and is raised."""

    async def wait(awaitable: Awaitable[object]) -> None:
        await awaitable

    async with anyio.create_task_group() as tg:
        for awaitable in awaitables:
            tg.start_soon(wait, awaitable)


async def _lint(ctx: StageContext) -> None:
    await lint(ctx.client, ctx.source).sync()


async def _sast(ctx: StageContext) -> None:
    scanned = sast(ctx.client, ctx.source, registry_packs=ctx.options.sast_registry_packs)
    # The SARIF files are exported before the verdict, so a failing gate still reaches code
    # scanning (.github/workflows/ci.yml uploads build/sast/).
    report = scanned.directory(f"{WORKDIR}/{SARIF_DIR}")
    await report.export(str(ctx.repo_root / SARIF_DIR))
    if await scanned.exit_code() != 0:
        findings = "\n".join((await scanned.stdout()).strip().splitlines()[-40:])
        msg = f"Semgrep found problems (SARIF in {SARIF_DIR}/):\n{findings}"
        raise RuntimeError(msg)


async def _proto(ctx: StageContext) -> None:
    await proto_check(ctx.client, ctx.source).sync()


async def _test(ctx: StageContext) -> None:
    tested = test(ctx.client, ctx.source)
    # Exported before the verdict: a failing run's figures still reach the job summary.
    await tested.directory(f"{WORKDIR}/{COVERAGE_DIR}").export(str(ctx.repo_root / COVERAGE_DIR))
    if await tested.exit_code() != 0:
        report = [
            *(await tested.stdout()).splitlines()[-30:],
            *(await tested.stderr()).splitlines(),
        ]
        tail = "\n".join(line for line in report if line.strip())
        msg = f"tests failed or a package fell below its coverage floor:\n{tail}"
        raise RuntimeError(msg)


async def _build(ctx: StageContext) -> None:
    await _all(non_root(image).sync() for image in ctx.images().values())


async def _smoke(ctx: StageContext) -> None:
    api_key = ctx.client.set_secret("smoke-api-key", secrets.token_urlsafe(24))
    await smoke(ctx.client, ctx.source, ctx.images(), api_key, ctx.run_id).sync()


def _scanned_images(ctx: StageContext) -> dict[str, dagger.Container]:
    tag = ctx.options.scan_tag
    if tag is None:
        return ctx.images()
    return {
        s: ctx.client.container().from_(image_address(ctx.options.registry, s, tag))
        for s in SERVICES
    }


async def _scan(ctx: StageContext) -> None:
    await _all(scan(ctx.client, image).sync() for image in _scanned_images(ctx).values())


async def _sbom(ctx: StageContext) -> None:
    out = ctx.repo_root / SBOM_DIR
    await _all(
        sbom(ctx.client, image, service).export(str(out / f"{service}.cdx.json"))
        for service, image in ctx.images().items()
    )


async def _manifests(ctx: StageContext) -> None:
    await manifests(ctx.client, ctx.source, overlays(ctx.repo_root)).sync()


async def _publish(ctx: StageContext) -> None:
    credentials = ctx.options.credentials
    if credentials is None:  # parse_args refuses this; kept as a guard
        msg = "publish needs registry credentials"
        raise RuntimeError(msg)
    plan = publications(
        ctx.client, ctx.images(), ctx.options.registry, ctx.options.tags, credentials
    )

    async def push(address: str, image: dagger.Container) -> None:
        print(f"published {await image.publish(address)}", file=sys.stderr)

    await _all(push(p.address, p.image) for p in plan)


STAGES: Mapping[str, Stage] = {
    "lint": _lint,
    "sast": _sast,
    "proto": _proto,
    "test": _test,
    "build": _build,
    "smoke": _smoke,
    "scan": _scan,
    "sbom": _sbom,
    "manifests": _manifests,
    "publish": _publish,
}
# Gated stages start only after every other selected stage passed.
GATED_STAGES = frozenset({"publish"})


@dataclass(frozen=True, slots=True)
class StageResult:
    name: str
    result: str  # passed | failed | skipped | blocked
    seconds: float | None = None
    error: str = ""


def parse_args(
    argv: Sequence[str] | None,
    stage_names: Sequence[str],
    environ: Mapping[str, str] | None = None,
    repo_root: Path | None = None,
) -> Options:
    """The checked options; bad input exits with status 2 (argparse's) before any work."""
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
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"publish the images (needs {USERNAME_ENV} and {PASSWORD_ENV}); off by default",
    )
    parser.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        help=f"where to publish (default {DEFAULT_REGISTRY})",
    )
    parser.add_argument(
        "--scan-tag", metavar="TAG", help="scan the published images with this tag, not new builds"
    )
    parser.add_argument(
        "--sast-registry-packs",
        action="store_true",
        help="sast also runs Semgrep's registry packs (needs semgrep.dev; never fails the stage)",
    )
    args = parser.parse_args(argv)
    if "publish" in args.only and not args.publish:
        parser.error("the publish stage runs only with --publish")
    selected = [
        name
        for name in stage_names
        if (not args.only or name in args.only)
        and name not in args.skip
        and (name != "publish" or args.publish)
    ]
    if not selected:
        parser.error("--only and --skip leave no stage to run")
    packs = bool(args.sast_registry_packs)
    if not args.publish:
        return Options(
            selected, registry=args.registry, scan_tag=args.scan_tag, sast_registry_packs=packs
        )
    credentials = RegistryCredentials.from_env(environ)
    if credentials is None:
        parser.error(f"--publish needs registry credentials in {USERNAME_ENV} and {PASSWORD_ENV}")
    if "publish" not in selected:
        parser.error("--publish given but the publish stage is skipped")
    try:
        tags = publish_tags(GitRef.from_env(environ, repo_root))
    except ValueError as exc:
        parser.error(f"--publish: {exc}")
    return Options(
        selected, True, args.registry, args.scan_tag, credentials, tags, sast_registry_packs=packs
    )


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
    """Run the selected stages concurrently; one failing does not cancel the others.

    Gated stages (publish) run afterwards, and only when every other stage passed.
    """
    results: dict[str, StageResult] = {}

    async def timed(name: str) -> None:
        start = time.perf_counter()
        try:
            await stages[name](ctx)
        except Exception as exc:  # a failed stage is reported, not raised
            results[name] = StageResult(name, "failed", time.perf_counter() - start, _describe(exc))
        else:
            results[name] = StageResult(name, "passed", time.perf_counter() - start)

    ungated = [name for name in selected if name not in GATED_STAGES]
    gated = [name for name in selected if name in GATED_STAGES]
    async with anyio.create_task_group() as tg:
        for name in ungated:
            tg.start_soon(timed, name)
    failed = [name for name in ungated if results[name].result == "failed"]
    for name in gated:
        if failed:
            why = f"not run: {', '.join(failed)} failed"
            results[name] = StageResult(name, "blocked", None, why)
        else:
            await timed(name)
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
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the pipeline; 0 when every selected stage passed, 1 otherwise, 2 on bad usage."""
    env = os.environ if environ is None else environ
    options = parse_args(argv, list(stages), env, repo_root)
    image_labels = labels or ImageLabels.from_env(env)

    async def pipeline() -> list[StageResult]:
        async with connect() as client:
            ctx = StageContext(
                client,
                source(client, repo_root),
                image_labels,
                repo_root,
                options,
                run_id=secrets.token_hex(8),
            )
            return await run_stages(ctx, options.stages, stages)

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
    return 0 if all(r.result not in ("failed", "blocked") for r in results) else 1
