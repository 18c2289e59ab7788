"""A job's progress as it is polled: documents and chunks, the rate and the time left — a bar
on a terminal, plain lines anywhere else (a pipe, a log, ``--plain``).

    with progress_for(job, plain=False, out=sys.stdout, err=sys.stderr) as progress:
        progress.update(await get(client, job_id))

A plain line is printed whenever the job moves (a document accounted for, chunks written, a
new state), so a log shows each step without repeating itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class JobProgress(Protocol):
    def update(self, job: dict[str, Any]) -> None: ...


def processed(job: dict[str, Any]) -> int:
    """Documents accounted for: committed, found unchanged or failed."""
    documents = job["documents"]
    return int(documents["done"]) + int(documents["failed"])


class PlainLines:
    """One line each time the job moves; the rate is measured from the first look at it."""

    def __init__(self, job: dict[str, Any], out: TextIO) -> None:
        self.out = out
        self.first = (time.monotonic(), processed(job))
        self.last: tuple[str, int, int] | None = None
        self.update(job)

    def update(self, job: dict[str, Any]) -> None:
        documents = job["documents"]
        now = (job["state"], processed(job), int(job["chunks_written"]))
        if now == self.last:
            return
        self.last = now
        line = (
            f"job {job['id']} {job['state']}: {now[1]}/{documents['total']} documents "
            f"({documents['failed']} failed), {now[2]} chunks"
        )
        rate = self.rate(now[1])
        if rate and not job.get("finished_at"):
            left = (int(documents["total"]) - now[1]) / rate
            line += f", {rate:.2f} documents/s, about {_duration(left)} left"
        print(line, file=self.out, flush=True)

    def rate(self, done: int) -> float:
        started, done_then = self.first
        elapsed = time.monotonic() - started
        return (done - done_then) / elapsed if elapsed > 0 and done > done_then else 0.0


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:.2f} docs/s" if speed else "-- docs/s", style="progress.data.speed")


class Bar:
    """A terminal's progress bar on ``err``, gone when the job ends (the summary follows)."""

    def __init__(self, job: dict[str, Any], err: TextIO) -> None:
        self.progress = Progress(
            TextColumn("job {task.fields[job_id]:.8} {task.fields[state]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("documents, {task.fields[chunks]} chunks"),
            _Rate(),
            TimeRemainingColumn(),
            console=Console(file=err),
            transient=True,
        )
        self.task = self.progress.add_task(
            "job", total=job["documents"]["total"], job_id=job["id"], state="", chunks=0
        )
        self.update(job)

    def update(self, job: dict[str, Any]) -> None:
        self.progress.update(
            self.task,
            completed=processed(job),
            total=job["documents"]["total"],
            state=job["state"],
            chunks=job["chunks_written"],
        )


@contextmanager
def progress_for(
    job: dict[str, Any], *, plain: bool, out: TextIO, err: TextIO
) -> Iterator[JobProgress]:
    """The display for ``job``: a bar when ``err`` is a terminal and ``plain`` is not asked."""
    if plain or not err.isatty():
        yield PlainLines(job, out)
        return
    bar = Bar(job, err)
    with bar.progress:
        yield bar


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
