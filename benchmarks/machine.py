"""What a benchmark says about the machine it ran on, and the CPU time of the processes it
measures; written once for every benchmark that prints them.

    print(header("bench-overhead"))  # "# bench-overhead 2026-12-04 20:32 UTC, x86_64, ..."
    before = cpu_seconds({"edge": edge_pid})
    ...
    print(footer())                   # "load at the end: 0.82 1.32 0.99"

CPU is user + system time from ``/proc/<pid>/stat`` (Linux): on a shared, noisy machine it is
inflated far less than wall time, so benchmarks compare it per call.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``0.38 1.27 0.96``."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def header(name: str) -> str:
    """The first line of a benchmark's output: its name, the UTC time, the machine, Python and
    the load average at the start."""
    return (
        f"# {name} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load {load_average()}"
    )


def footer() -> str:
    """The last line of a benchmark's output: the load average at the end."""
    return f"\nload at the end: {load_average()}"


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """Each named process's CPU seconds so far (user + system); a process that is gone (or a
    machine without ``/proc``) is left out."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds[name] = (int(fields[11]) + int(fields[12])) / tick
    return seconds
