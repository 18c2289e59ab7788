"""The four DORA keys of one overlay, read from the GitOps history the promotions leave in git.

    uv run --package bruno-pipelines python pipelines/dora.py --overlay prod --days 30
    ... --textfile /var/lib/node_exporter/textfile/bruno_dora.prom   # for node_exporter
    ... --pushgateway http://pushgateway.monitoring:9091               # for a Pushgateway

What counts, with nothing recorded anywhere but git:

- a **deployment** is a commit on the first-parent history that changes the image tags of
  ``k8s/overlays/<overlay>/kustomization.yaml`` (``pipelines/deploy.py`` makes them; a revert or
  an edit by hand counts the same). Its time is the commit's, when Flux starts applying it.
- a **rollback** is a deployment that returns the overlay to tags it ran before: ``git revert``
  of a promotion, or a promotion of an older release. The deployment it replaced has
  **failed** (a canary Flagger rolled back is recorded this way: docs/operations.md reverts its
  promotion). Rollbacks are not changes: they count apart from the deployments.
- **lead time for changes**: for each commit a deployment brought out (the commits after the
  previous deployment's source revision, up to its own), the time from commit to deployment.
  The source revision is the commit's ``Source-Revision:`` trailer, else the tag itself when it
  is a commit SHA, else the commit of git tag ``v<tag>``.
- **time to restore**: from a failed deployment to the next deployment that did not fail
  (the rollback itself, or a fix deployed over the failure).

Medians are reported; a metric with nothing to measure in the window is left out of the
Prometheus output rather than shown as zero.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

__all__ = [
    "Deployment",
    "DoraError",
    "Report",
    "deployments",
    "main",
    "measure",
    "registry",
]

OVERLAYS_DIR = "k8s/overlays"
_SHA = re.compile(r"[0-9a-f]{40}")
_TRAILER = re.compile(r"^Source-Revision:\s*([0-9a-f]{40})\s*$", re.MULTILINE)
_RECORD, _FIELD = "\x1e", "\x1f"


class DoraError(RuntimeError):
    """The history cannot be read (not a git repository, no such overlay); says what to do."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One change of the overlay's image tags."""

    commit: str
    time: datetime
    tags: Mapping[str, str]
    revision: str | None = None
    rollback: bool = False
    failed: bool = False
    restored_at: datetime | None = None
    lead_times: tuple[timedelta, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """The four keys over ``[since, until)``; None where there was nothing to measure."""

    overlay: str
    since: datetime
    until: datetime
    deployments: int
    rollbacks: int
    failed: int
    lead_time: timedelta | None
    changes: int
    time_to_restore: timedelta | None
    restores: int
    window_deployments: list[Deployment] = field(default_factory=list)

    @property
    def days(self) -> float:
        return (self.until - self.since) / timedelta(days=1)

    @property
    def per_day(self) -> float:
        return self.deployments / self.days if self.days > 0 else 0.0

    @property
    def change_failure_rate(self) -> float | None:
        return self.failed / self.deployments if self.deployments else None

    def text(self) -> str:
        """The report as a person reads it."""
        lines = [
            f"DORA metrics for {self.overlay}, {self.since:%Y-%m-%d %H:%M} to "
            f"{self.until:%Y-%m-%d %H:%M} UTC ({self.days:g} days)",
            f"  deployment frequency   {self.deployments} deployments "
            f"({self.per_day:.2f} a day), {self.rollbacks} rollbacks",
        ]
        lead = (
            f"median {_duration(self.lead_time)} over {self.changes} changes"
            if self.lead_time is not None
            else "none measured"
        )
        lines.append(f"  lead time for changes  {lead}")
        rate = self.change_failure_rate
        failure = (
            f"{rate:.1%} ({self.failed} of {self.deployments} deployments failed)"
            if rate is not None
            else "none measured (no deployment)"
        )
        lines.append(f"  change failure rate    {failure}")
        restore = (
            f"median {_duration(self.time_to_restore)} over {self.restores} failures"
            if self.time_to_restore is not None
            else "none measured"
        )
        lines.append(f"  time to restore        {restore}")
        return "\n".join(lines)


def _duration(value: timedelta | None) -> str:
    seconds = int((value or timedelta()).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def _git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(repo), *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        msg = f"git {' '.join(args)} failed: {result.stderr.strip()}"
        raise DoraError(msg)
    return result.stdout if result.returncode == 0 else ""


def _tags(text: str) -> dict[str, str]:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    entries = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return {}
    return {
        str(e["name"]): str(e.get("newTag", ""))
        for e in entries
        if isinstance(e, dict) and "name" in e
    }


def _revision(repo: Path, message: str, tags: Mapping[str, str]) -> str | None:
    trailer = _TRAILER.search(message)
    if trailer:
        return trailer.group(1)
    values = set(tags.values())
    if len(values) != 1:
        return None
    (tag,) = values
    if _SHA.fullmatch(tag):
        return tag
    found = _git(
        repo, "rev-parse", "--quiet", "--verify", f"refs/tags/v{tag}^{{commit}}", check=False
    )
    return found.strip() or None


def _commit_time(repo: Path, revision: str) -> datetime | None:
    out = _git(repo, "show", "-s", "--format=%ct", f"{revision}^{{commit}}", check=False)
    return datetime.fromtimestamp(int(out), UTC) if out.strip() else None


def _changes(repo: Path, previous: str | None, revision: str) -> list[datetime]:
    """Commit times of what a deployment of ``revision`` brought out after ``previous``."""
    span = f"{previous}..{revision}" if previous else revision
    limit = [] if previous else ["--max-count=1"]
    # Promotions (commits to the overlays' image tags) are deployments, not changes.
    promotions = f":(exclude){OVERLAYS_DIR}/*/kustomization.yaml"
    out = _git(
        repo, "log", "--no-merges", "--format=%ct", *limit, span, "--", ".", promotions,
        check=False,
    )  # fmt: skip
    return [datetime.fromtimestamp(int(line), UTC) for line in out.split()]


def deployments(repo: Path, overlay: str, until: datetime) -> list[Deployment]:
    """Every deployment of ``overlay`` committed before ``until``, oldest first, with the
    rollbacks, failures and restores known by then."""
    path = f"{OVERLAYS_DIR}/{overlay}/kustomization.yaml"
    if not _git(repo, "rev-parse", "--is-inside-work-tree", check=False).strip():
        msg = f"{repo} is not a git repository (the metrics are read from its history)"
        raise DoraError(msg)
    log = _git(
        repo,
        "log",
        "--first-parent",
        "--reverse",
        f"--format=%H{_FIELD}%ct{_FIELD}%B{_RECORD}",
        "--",
        path,
    )
    found: list[Deployment] = []
    previous_tags: dict[str, str] = {}
    for record in filter(str.strip, log.split(_RECORD)):
        commit, timestamp, message = record.strip("\n").split(_FIELD, 2)
        tags = _tags(_git(repo, "show", f"{commit}:{path}", check=False))
        if not tags or tags == previous_tags:
            previous_tags = tags or previous_tags
            continue
        time = datetime.fromtimestamp(int(timestamp), UTC)
        if time >= until:
            break
        found.append(
            Deployment(
                commit,
                time,
                tags,
                _revision(repo, message, tags),
                # Back to tags it ran before: `git revert` of a promotion, or an older release.
                rollback=any(d.tags == tags for d in found),
            )
        )
        previous_tags = tags
    if not found and not _git(repo, "log", "-1", "--format=%H", "--", path, check=False).strip():
        msg = f"no history of {path}: is {overlay!r} an overlay of this repository?"
        raise DoraError(msg)
    return _outcomes(repo, found)


def _outcomes(repo: Path, found: list[Deployment]) -> list[Deployment]:
    """Mark what each rollback replaced as failed, find each failure's restore, and measure
    each change's lead time."""
    failed = {found[i - 1].commit for i in range(1, len(found)) if found[i].rollback}
    result: list[Deployment] = []
    previous_revision: str | None = None
    for index, deployment in enumerate(found):
        restored = None
        if deployment.commit in failed:
            restored = next((d.time for d in found[index + 1 :] if d.commit not in failed), None)
        leads: tuple[timedelta, ...] = ()
        if deployment.revision and not deployment.rollback:
            leads = tuple(
                deployment.time - committed
                for committed in _changes(repo, previous_revision, deployment.revision)
                if committed <= deployment.time
            )
        if deployment.revision:
            previous_revision = deployment.revision
        result.append(
            Deployment(
                deployment.commit,
                deployment.time,
                deployment.tags,
                deployment.revision,
                deployment.rollback,
                failed=deployment.commit in failed,
                restored_at=restored,
                lead_times=leads,
            )
        )
    return result


def measure(repo: Path, overlay: str, since: datetime, until: datetime) -> Report:
    """The four keys of the deployments committed in ``[since, until)``."""
    if since >= until:
        msg = f"the window is empty: {since:%Y-%m-%d %H:%M} is not before {until:%Y-%m-%d %H:%M}"
        raise DoraError(msg)
    window = [d for d in deployments(repo, overlay, until) if since <= d.time]
    changes = [d for d in window if not d.rollback]
    failed = [d for d in changes if d.failed]
    restores = [d.restored_at - d.time for d in failed if d.restored_at is not None]
    leads = [lead for d in changes for lead in d.lead_times]
    return Report(
        overlay=overlay,
        since=since,
        until=until,
        deployments=len(changes),
        rollbacks=len(window) - len(changes),
        failed=len(failed),
        lead_time=_median(leads),
        changes=len(leads),
        time_to_restore=_median(restores),
        restores=len(restores),
        window_deployments=window,
    )


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def registry(report: Report) -> CollectorRegistry:
    """The report as Prometheus gauges, labelled by overlay (the DORA dashboard of
    k8s/components/monitoring reads them)."""
    metrics = CollectorRegistry()
    rate = report.change_failure_rate
    values: list[tuple[Gauge, float | None]] = [
        (
            Gauge(
                "bruno_dora_window_seconds",
                "Length of the measured window",
                ["overlay"],
                registry=metrics,
            ),
            (report.until - report.since).total_seconds(),
        ),
        (
            Gauge(
                "bruno_dora_deployments",
                "Deployments in the window, rollbacks apart",
                ["overlay"],
                registry=metrics,
            ),
            report.deployments,
        ),
        (
            Gauge(
                "bruno_dora_deployments_per_day",
                "Deployment frequency",
                ["overlay"],
                registry=metrics,
            ),
            report.per_day,
        ),
        (
            Gauge("bruno_dora_rollbacks", "Rollbacks in the window", ["overlay"], registry=metrics),
            report.rollbacks,
        ),
        (
            Gauge(
                "bruno_dora_failed_deployments",
                "Deployments later rolled back",
                ["overlay"],
                registry=metrics,
            ),
            report.failed,
        ),
        (
            Gauge(
                "bruno_dora_lead_time_seconds",
                "Median lead time for changes",
                ["overlay"],
                registry=metrics,
            ),
            _seconds(report.lead_time),
        ),
        (
            Gauge(
                "bruno_dora_change_failure_ratio",
                "Failed deployments over deployments",
                ["overlay"],
                registry=metrics,
            ),
            rate,
        ),
        (
            Gauge(
                "bruno_dora_time_to_restore_seconds",
                "Median time to restore",
                ["overlay"],
                registry=metrics,
            ),
            _seconds(report.time_to_restore),
        ),
    ]
    for metric, value in values:
        if value is None:
            # Nothing measured: the series is left out, never reported as a zero.
            metrics.unregister(metric)
        else:
            metric.labels(overlay=report.overlay).set(value)
    return metrics


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"not an ISO date or time: {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 < days <= 3660:
        msg = f"--days takes a number of days between 0 and 3660, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return days


def main(argv: Sequence[str] | None = None, *, repo: Path) -> int:
    """Print the report; write or push the Prometheus form when asked. 2 on bad input."""
    parser = argparse.ArgumentParser(prog="dora.py", description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", default="prod", help="k8s/overlays/<OVERLAY> (default prod)")
    parser.add_argument("--days", type=_days, default=30.0, help="window length (default 30)")
    parser.add_argument("--until", type=_when, help="window end, ISO 8601 (default: now)")
    parser.add_argument("--textfile", type=Path, help="write the Prometheus text format here")
    parser.add_argument("--pushgateway", help="push the metrics to this Prometheus Pushgateway")
    parser.add_argument("--repo", type=Path, default=repo, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z0-9-]+", args.overlay):
        parser.error(f"not an overlay name: {args.overlay!r}")
    until: datetime = args.until or datetime.now(UTC)
    try:
        report = measure(
            args.repo.resolve(), args.overlay, until - timedelta(days=args.days), until
        )
    except DoraError as exc:
        print(f"dora.py: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    metrics = registry(report)
    if args.textfile:
        args.textfile.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: node_exporter never reads half a file.
        partial = args.textfile.with_name(args.textfile.name + ".partial")
        partial.write_bytes(generate_latest(metrics))
        partial.replace(args.textfile)
    if args.pushgateway:
        push_to_gateway(
            args.pushgateway,
            job="bruno_dora",
            grouping_key={"overlay": args.overlay},
            registry=metrics,
            timeout=30,
        )
    return 0
