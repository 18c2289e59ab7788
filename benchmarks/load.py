"""Load test: the Locust scenario of ``k8s/components/canary/locustfile.py``, headless, against
the four services, with each service's resident memory before, after a warm-up and at the end.

    uv run python benchmarks/load.py [--users 32] [--seconds 60] [--warmup 15]
    uv run python benchmarks/load.py --url http://127.0.0.1:8080   # a system already running

Without ``--url`` it starts the system itself as ``make run`` does (embedded defaults: the ONNX
model, LanceDB in a temporary directory), with generation pointed at the Ollama stand-in
(``--token-delay`` before each of ``--tokens`` tokens) and ``BRUNO_RATE_LIMIT`` set to
``--rate-limit``: the scenario's users share one caller, so the per-key default would refuse
most of them; set it as an operator would for a household sharing one key. With ``--url`` the
services are found by the ports they listen on (``BRUNO_*_ADDR``, or the defaults), and
``BRUNO_API_KEY`` is sent as the key. (``BRUNO_CONCURRENT_CHATS`` is set to the number of users
for the same reason.)

Locust runs twice: ``--warmup`` seconds (caches, connections, the model's first calls), then
``--seconds`` measured. It reports throughput, p50/p95/p99 per kind of request (a request shed
with 429 or 503 is counted apart, under ``[shed <status>]``), failures by status, and the
resident memory of each service; the result block replaces the previous one in
``docs/benchmarks.md`` (``--output``; ``--no-write`` only prints it). A benchmark, not a test:
it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "k8s" / "components" / "canary" / "locustfile.py"
DEMO = ROOT / "demo"
BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- make load: begin -->"
END = "<!-- make load: end -->"
MODEL = "llama3.2"
DEFAULT_PORTS = {"embedding": 50051, "retrieval": 50052, "generation": 50053}
SHED = ("429", "503")


@dataclass(frozen=True)
class Row:
    """One line of Locust's statistics."""

    name: str
    requests: int
    failures: int
    rate: float
    p50: str
    p95: str
    p99: str


@dataclass(frozen=True)
class Result:
    rows: list[Row]
    total_rate: float
    failures: Counter[str]


def run_locust(url: str, *, users: int, seconds: int, csv_prefix: Path | None) -> None:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(SCENARIO),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--host",
        url,
        "--stop-timeout",
        "30",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if csv_prefix is not None:
        command += ["--csv", str(csv_prefix)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own command


def read_result(csv_prefix: Path) -> Result:
    rows: list[Row] = []
    total_rate = 0.0
    with Path(f"{csv_prefix}_stats.csv").open(newline="") as stats:
        for line in csv.DictReader(stats):
            if line["Name"] == "Aggregated":
                continue
            row = Row(
                name=line["Name"],
                requests=int(line["Request Count"]),
                failures=int(line["Failure Count"]),
                rate=float(line["Requests/s"]),
                p50=line["50%"],
                p95=line["95%"],
                p99=line["99%"],
            )
            rows.append(row)
            if line["Type"] != "SSE":  # a stream's first token and end are not requests
                total_rate += row.rate
    failures: Counter[str] = Counter()
    with Path(f"{csv_prefix}_failures.csv").open(newline="") as failed:
        for line in csv.DictReader(failed):
            status = re.search(r"HTTP (\d{3})", line["Error"])
            failures[status.group(1) if status else line["Error"]] += int(line["Occurrences"])
    return Result(sorted(rows, key=lambda r: r.name), total_rate, failures)


def resident_mib(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: psutil.Process(pid).memory_info().rss / 2**20 for name, pid in pids.items()}


def pids_by_port(edge_url: str) -> dict[str, int]:
    """The process listening on each service's port (``BRUNO_*_ADDR``, else the default)."""
    ports = {
        name: int(os.environ.get(f"BRUNO_{name.upper()}_ADDR", f":{port}").rsplit(":", 1)[1])
        for name, port in DEFAULT_PORTS.items()
    }
    ports["edge"] = urlsplit(edge_url).port or 80
    listening = {
        c.laddr.port: c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid is not None and c.laddr
    }
    missing = [name for name, port in ports.items() if port not in listening]
    if missing:
        raise SystemExit(f"no process listens for {', '.join(missing)} on this machine")
    return {name: listening[port] for name, port in ports.items()}


def ingest_demo(url: str) -> None:
    key = os.environ.get("BRUNO_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        for path in sorted(DEMO.glob("*.md")):
            doc = {"id": path.name, "title": path.stem, "text": path.read_text()}
            client.post("/api/v1/documents", json=doc).raise_for_status()


@contextmanager
def own_system(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, dict[str, int]]]:
    reply = " ".join(f"word{n}" for n in range(args.tokens - 1)) + " [1]."
    standin = OllamaStandIn(models=[MODEL], token_delay=args.token_delay, reply=reply)
    env = {
        "BRUNO_LOG_LEVEL": "WARNING",
        "BRUNO_RATE_LIMIT": args.rate_limit,
        "BRUNO_CONCURRENT_CHATS": str(args.users),
    }
    with (
        InBackground(standin) as ollama,
        BrunoSystem(workdir, ollama_host=ollama.url, env=env) as system,
    ):
        pids = {name: process.pid for name, process in system.processes.items()}
        yield system.edge_url, pids


def report(
    args: argparse.Namespace,
    result: Result,
    memory: list[tuple[str, dict[str, float]]],
    setup: str,
) -> str:
    load = os.getloadavg()
    lines = [
        BEGIN,
        f"Command: `make load` (= `uv run python benchmarks/load.py {' '.join(args.argv)}`)"
        if args.argv
        else "Command: `make load` (= `uv run python benchmarks/load.py`)",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min).",
        f"Setup: {setup}; {args.users} users for {args.seconds} s after a {args.warmup} s "
        f"warm-up (scenario: `k8s/components/canary/locustfile.py`).",
        "",
        f"Throughput: {result.total_rate:.1f} requests/s in all.",
        "",
        "| request | count | req/s | failures | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {r.requests} | {r.rate:.1f} | {r.failures} | {r.p50} | {r.p95} | {r.p99} |"
        for r in result.rows
    ]
    deliberate = sum(n for error, n in result.failures.items() if error in SHED)
    other = {e: n for e, n in result.failures.items() if e not in SHED}
    lines += [
        "",
        "Failures by status: "
        + (", ".join(f"`{e}`: {n}" for e, n in sorted(result.failures.items())) or "none")
        + f" ({deliberate} deliberate 429/503; {sum(other.values())} others).",
        "",
        "| service | " + " | ".join(stage for stage, _ in memory) + " | end vs warm-up |",
        "|---|" + "---|" * len(memory) + "---|",
    ]
    warm = dict(memory)["after warm-up"]
    end = memory[-1][1]
    for name in end:
        values = " | ".join(f"{stage[name]:.0f} MiB" for _, stage in memory)
        lines.append(f"| {name} | {values} | {100 * (end[name] / warm[name] - 1):+.1f}% |")
    lines.append(END)
    return "\n".join(lines)


def write_block(block: str, path: Path) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n## Load (`make load`)\n\n" + block + "\n"
    path.write_text(text)


def measure(args: argparse.Namespace, url: str, pids: dict[str, int], setup: str) -> str:
    memory = [("before", resident_mib(pids))]
    run_locust(url, users=args.users, seconds=args.warmup, csv_prefix=None)
    memory.append(("after warm-up", resident_mib(pids)))
    with tempfile.TemporaryDirectory() as stats:
        prefix = Path(stats) / "load"
        run_locust(url, users=args.users, seconds=args.seconds, csv_prefix=prefix)
        result = read_result(prefix)
    memory.append(("end", resident_mib(pids)))
    return report(args, result, memory, setup)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="drive the system already running there")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--rate-limit", default="100/second;6000/minute")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_DOC)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.url:
        pids = pids_by_port(args.url)
        block = measure(args, args.url, pids, f"the system at {args.url}")
    else:
        with tempfile.TemporaryDirectory() as workdir, own_system(args, Path(workdir)) as started:
            url, pids = started
            ingest_demo(url)
            setup = (
                "`make run`'s four services, embedded defaults, the demo corpus, the Ollama "
                f"stand-in ({args.tokens} tokens, {args.token_delay * 1000:.0f} ms before each), "
                f'`BRUNO_RATE_LIMIT="{args.rate_limit}"`, `BRUNO_CONCURRENT_CHATS={args.users}`'
            )
            block = measure(args, url, pids, setup)
    print(block)
    if not args.no_write:
        write_block(block, args.output)
        print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
