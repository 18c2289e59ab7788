"""DORA metrics read from a synthetic GitOps history: real git, real deploy.py promotions.

Every commit gets a chosen time (GIT_AUTHOR_DATE/GIT_COMMITTER_DATE), so the expected figures
are exact: the history is built the way CI and an operator build it (source commits, then
``deploy.py --commit``, then ``git revert`` or a promotion back to an older tag).
"""

import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bruno_pipelines import gitops
from bruno_pipelines.dora import DoraError, Report, deployments, main, measure, registry

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class History:
    """A scratch repository with the project's overlays, written commit by commit."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        shutil.copytree(REPO / "k8s" / "overlays", root / "k8s" / "overlays")
        self.git("init", "-q", "-b", "main")
        self.at(START - 30 * DAY)
        self.git("add", ".")
        self.git("commit", "-q", "-m", "Start")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    def at(self, when: datetime) -> None:
        stamp = f"@{int(when.timestamp())} +0000"
        self.monkeypatch.setenv("GIT_AUTHOR_DATE", stamp)
        self.monkeypatch.setenv("GIT_COMMITTER_DATE", stamp)

    def change(self, name: str, when: datetime) -> str:
        """A source commit (what a deployment brings out); its SHA."""
        self.at(when)
        (self.root / f"{name}.py").write_text(f"# {name}\n")
        self.git("add", f"{name}.py")
        self.git("commit", "-q", "-m", f"Change {name}")
        return self.git("rev-parse", "HEAD")

    def deploy(self, overlay: str, tag: str, when: datetime, revision: str | None = None) -> str:
        """A promotion by deploy.py, exactly as CD commits it; its SHA."""
        self.at(when)
        argv = ["--overlay", overlay, "--tag", tag, "--commit"]
        if revision:
            argv += ["--revision", revision]
        assert gitops.main(argv, repo=self.root) == 0
        return self.git("rev-parse", "HEAD")

    def revert(self, commit: str, when: datetime) -> str:
        self.at(when)
        self.git("revert", "--no-edit", commit)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> History:
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
        "HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    return History(tmp_path / "repo", monkeypatch)


def _window(history: History, overlay: str = "prod", days: int = 14) -> Report:
    return measure(history.root, overlay, START, START + days * DAY)


# --- the four keys -----------------------------------------------------------------------------


def test_deployment_frequency_counts_the_promotions_in_the_window(history: History) -> None:
    before = history.change("before", START - 3 * DAY)
    history.deploy("prod", "0.9.0", START - 2 * DAY, before)  # before the window
    for day, version in ((1, "1.0.0"), (4, "1.1.0"), (9, "1.2.0")):
        sha = history.change(version, START + day * DAY - HOUR)
        history.deploy("prod", version, START + day * DAY, sha)

    report = _window(history)

    assert report.deployments == 3
    assert report.per_day == pytest.approx(3 / 14)
    assert report.rollbacks == 0


def test_lead_time_runs_from_each_change_to_the_deployment_that_brought_it_out(
    history: History,
) -> None:
    first = history.change("first", START + 1 * HOUR)
    history.deploy("prod", "1.0.0", START + 2 * HOUR, first)  # lead time 1 h
    history.change("second", START + 3 * HOUR)
    third = history.change("third", START + 5 * HOUR)
    history.deploy("prod", "1.1.0", START + 9 * HOUR, third)  # 6 h and 4 h

    report = _window(history)

    assert report.changes == 3
    assert report.lead_time == 4 * HOUR  # the median of 1, 4 and 6 hours
    # Only what each deployment brought out: the first change is not counted twice.
    window = report.window_deployments
    assert [sorted(d.lead_times) for d in window] == [[HOUR], [4 * HOUR, 6 * HOUR]]


def test_dev_promotions_name_their_source_revision_by_the_tag_itself(history: History) -> None:
    sha = history.change("feature", START + HOUR)
    history.deploy("dev", sha, START + 3 * HOUR)

    report = _window(history, overlay="dev")

    assert report.deployments == 1
    assert report.lead_time == 2 * HOUR


def test_a_reverted_promotion_is_a_failure_restored_by_the_revert(history: History) -> None:
    good = history.change("good", START)
    history.deploy("prod", "1.0.0", START + HOUR, good)
    bad = history.change("bad", START + DAY)
    bad_deploy = history.deploy("prod", "1.1.0", START + DAY + HOUR, bad)
    history.revert(bad_deploy, START + DAY + 3 * HOUR)

    report = _window(history)

    assert report.deployments == 2
    assert report.rollbacks == 1
    assert report.failed == 1
    assert report.change_failure_rate == pytest.approx(0.5)
    assert report.time_to_restore == 2 * HOUR


def test_promoting_an_earlier_release_again_is_a_rollback(history: History) -> None:
    one = history.change("one", START)
    history.deploy("prod", "1.0.0", START + HOUR, one)
    two = history.change("two", START + 2 * DAY)
    history.deploy("prod", "1.1.0", START + 2 * DAY + HOUR, two)
    history.deploy("prod", "1.0.0", START + 2 * DAY + 2 * HOUR, one)  # back to what ran
    three = history.change("three", START + 3 * DAY)
    history.deploy("prod", "1.1.1", START + 3 * DAY + HOUR, three)

    report = _window(history)

    failed = [d.tags["ghcr.io/agent-bruno/edge"] for d in report.window_deployments if d.failed]
    assert failed == ["1.1.0"]
    assert report.deployments == 3
    assert report.rollbacks == 1
    assert report.change_failure_rate == pytest.approx(1 / 3)
    assert report.time_to_restore == HOUR


def test_a_rollback_rolled_back_in_turn_restores_at_the_last_one(history: History) -> None:
    one = history.change("one", START)
    history.deploy("prod", "1.0.0", START + HOUR, one)
    two = history.change("two", START + DAY)
    history.deploy("prod", "1.1.0", START + DAY + HOUR, two)
    history.deploy("prod", "1.0.0", START + DAY + 2 * HOUR, one)  # a rollback that fails too
    history.deploy("prod", "0.1.0", START + DAY + 4 * HOUR)  # back to the first release

    report = _window(history)

    assert (report.deployments, report.rollbacks, report.failed) == (2, 2, 1)
    assert report.time_to_restore == 3 * HOUR


def test_an_empty_window_measures_nothing_and_exports_only_the_counts(history: History) -> None:
    sha = history.change("old", START - 10 * DAY)
    history.deploy("prod", "1.0.0", START - 9 * DAY, sha)

    report = _window(history)
    families = {
        f.name: f.samples[0].value
        for f in text_string_to_metric_families(_exposition(registry(report)))
    }

    assert (report.deployments, report.failed, report.rollbacks) == (0, 0, 0)
    assert report.lead_time is None
    assert report.change_failure_rate is None
    assert report.time_to_restore is None
    assert "none measured" in report.text()
    assert families == {
        "bruno_dora_window_seconds": 14 * 86400,
        "bruno_dora_deployments": 0,
        "bruno_dora_deployments_per_day": 0,
        "bruno_dora_rollbacks": 0,
        "bruno_dora_failed_deployments": 0,
    }


def test_what_happens_after_the_window_is_not_known_inside_it(history: History) -> None:
    one = history.change("one", START)
    history.deploy("prod", "1.0.0", START + HOUR, one)
    two = history.change("two", START + DAY)
    bad = history.deploy("prod", "1.1.0", START + DAY + HOUR, two)
    history.revert(bad, START + 20 * DAY)  # after the window's end

    report = _window(history)

    assert report.failed == 0
    assert len(deployments(history.root, "prod", START + 30 * DAY)) == 4  # start, 2, revert


# --- the Prometheus form and the command ---------------------------------------------------------


def _exposition(metrics: CollectorRegistry) -> str:
    return generate_latest(metrics).decode()


def test_the_textfile_is_prometheus_text_with_every_key_labelled_by_overlay(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = history.change("good", START)
    history.deploy("prod", "1.0.0", START + HOUR, good)
    bad = history.change("bad", START + DAY)
    history.revert(history.deploy("prod", "1.1.0", START + DAY + HOUR, bad), START + DAY + 2 * HOUR)
    out = tmp_path / "textfile" / "bruno_dora.prom"

    code = main(
        ["--overlay", "prod", "--days", "14", "--until", (START + 14 * DAY).isoformat(),
         "--textfile", str(out), "--repo", str(history.root)],
        repo=REPO,
    )  # fmt: skip

    assert code == 0
    samples = [s for f in text_string_to_metric_families(out.read_text()) for s in f.samples]
    values = {s.name: s.value for s in samples}
    assert all(s.labels == {"overlay": "prod"} for s in samples)
    assert values["bruno_dora_deployments"] == 2
    assert values["bruno_dora_change_failure_ratio"] == 0.5
    assert values["bruno_dora_time_to_restore_seconds"] == 3600
    assert values["bruno_dora_lead_time_seconds"] == 3600
    printed = capsys.readouterr().out
    assert "change failure rate    50.0% (1 of 2 deployments failed)" in printed
    assert not list(out.parent.glob("*.partial"))


class _Pushgateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    # The Pushgateway's push API at the wire level (no Pushgateway runs here).
    _Pushgateway.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Pushgateway.received
    server.shutdown()
    server.server_close()


def test_pushing_replaces_the_overlays_group_on_the_pushgateway(
    history: History, pushgateway: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    url, received = pushgateway
    sha = history.change("one", START)
    history.deploy("prod", "1.0.0", START + HOUR, sha)

    code = main(
        ["--until", (START + 14 * DAY).isoformat(), "--pushgateway", url,
         "--repo", str(history.root)],
        repo=REPO,
    )  # fmt: skip

    assert code == 0
    ((method, path, body),) = received
    assert (method, path) == ("PUT", "/metrics/job/bruno_dora/overlay/prod")
    assert 'bruno_dora_deployments{overlay="prod"} 1.0' in body.decode()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "0"], "--days takes a number of days"),
        (["--days", "many"], "--days takes a number of days"),
        (["--until", "yesterday"], "not an ISO date"),
        (["--overlay", "../prod"], "not an overlay name"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    argv: list[str], message: str, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--repo", str(history.root)], repo=REPO)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_overlay_or_a_folder_outside_git_exits_2(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--overlay", "qa", "--repo", str(history.root)], repo=REPO) == 2
    assert "no history of k8s/overlays/qa" in capsys.readouterr().err

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert main(["--repo", str(outside)], repo=REPO) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_measure_refuses_a_window_that_ends_before_it_starts(history: History) -> None:
    with pytest.raises(DoraError, match="the window is empty"):
        measure(history.root, "prod", START, START - DAY)
