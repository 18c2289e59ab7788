"""CPU the edge's own process spends per REST search, text and hybrid; optionally against a
base tree's edge in the same run (#14).

    uv run python benchmarks/edge_cpu.py [--rounds 5] [--requests 1000] [--before DIR]
    uv run --with py-spy python benchmarks/edge_cpu.py --py-spy DIR

Starts the four services as processes (``restore_stack``: embedded defaults, one API key with
a rate limit too high to refuse anything, the restore document) beside the Ollama stand-in; with
``--before DIR`` (a source tree, e.g. ``git archive`` of main unpacked) a second edge process
runs beside the first, on the same downstream services, with DIR's ``services/edge/src`` and
``packages/core/src`` first on its ``PYTHONPATH``. Each edge is the real one (``python -m
bruno_edge``: uvicorn, the middleware, the key check and the admission slots), asked over a
kept-alive connection. Each round sends ``--requests`` sequential ``POST /api/v1/search`` of
one question (its vector cached by retrieval after the warm-up) to each edge, text and then
hybrid, the edges taking turns in blocks of ``--block`` (alternating which goes first, so a
change in the machine's load lands on both alike); the edge process's CPU (user + system, from
``/proc``) over its blocks, divided by their searches, is its CPU per search. The downstream
services' CPU is not counted: it is the same work whichever edge asks.

Reported: µs of edge CPU per search of each kind, median and range over the rounds, and with
``--before`` the ratio of the two edges in each round. ``/proc`` counts in clock ticks (10 ms):
a round of 1000 searches at ~1 ms each is resolved to a few per cent. With ``--py-spy DIR`` the
(first) edge is sampled by py-spy during each kind of the last round, one raw file per kind in
DIR. A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md ("Tenth pass: the
edge's admission slots").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from machine import cpu_seconds, footer, header
from request_cpu import py_spy
from restore_stack import KEY, MODEL, QUERY, restore_stack

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem, free_port

KINDS = ("text", "hybrid")


class Edge:
    """One edge process, by name ("branch" or "before"), and its URL."""

    def __init__(self, name: str, pid: int, url: str) -> None:
        self.name = name
        self.pid = pid
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        )

    def search(self, mode: str) -> None:
        self.client.post("/api/v1/search", json={"query": QUERY, "mode": mode}).raise_for_status()

    def cpu_seconds(self, mode: str, requests: int) -> float:
        """This edge's CPU seconds over ``requests`` sequential searches of ``mode``."""
        before = cpu_seconds({self.name: self.pid})[self.name]
        for _ in range(requests):
            self.search(mode)
        return cpu_seconds({self.name: self.pid})[self.name] - before


@contextmanager
def second_edge(system: BrunoSystem, tree: Path, workdir: Path) -> Iterator[Edge]:
    """An edge process running ``tree``'s edge and core on ``system``'s downstream services."""
    port = free_port()
    paths = [tree / "services/edge/src", tree / "packages/core/src"]
    env = {
        **system.env,
        "BRUNO_EDGE_PORT": str(port),
        "PYTHONPATH": os.pathsep.join(str(path) for path in paths),
    }
    with (workdir / "edge-before.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bruno_edge"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the edge of {tree} did not start: see {workdir}")
            time.sleep(0.2)
        yield Edge("before", process.pid, url)
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    standin = OllamaStandIn(models=[MODEL], token_delay=0, reply="It is [1].")
    results: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as stack:
        ollama = stack.enter_context(InBackground(standin))
        workdir = Path(stack.enter_context(TemporaryDirectory()))
        system = stack.enter_context(restore_stack(workdir, ollama.url))
        edges = [Edge("branch", system.processes["edge"].pid, system.edge_url)]
        if args.before:
            edges.append(stack.enter_context(second_edge(system, args.before, workdir)))
        for edge in edges:
            for _ in range(20):  # warm: connections, the query's vector, the table's handle
                for kind in KINDS:
                    edge.search(kind)
        blocks = max(1, args.requests // args.block)
        for round_ in range(args.rounds):
            for kind in KINDS:
                spy = None
                if args.py_spy and round_ == args.rounds - 1:
                    spy = py_spy(Path(args.py_spy) / f"{kind}.txt", edges[0].pid)
                    time.sleep(2)  # py-spy attached
                spent = dict.fromkeys((edge.name for edge in edges), 0.0)
                for block in range(blocks):
                    # The edges take turns in short blocks, so a change in the machine's load
                    # lands on both alike.
                    for edge in edges if (round_ + block) % 2 == 0 else edges[::-1]:
                        spent[edge.name] += edge.cpu_seconds(kind, args.block)
                if spy is not None:
                    spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                    spy.wait(timeout=60)
                for name, seconds in spent.items():
                    results.setdefault((name, kind), []).append(
                        1e6 * seconds / (blocks * args.block)
                    )
            print(f"round {round_ + 1} done, load {os.getloadavg()[0]:.2f}", flush=True)
        for edge in edges:
            edge.client.close()
    return results


def report(results: dict[tuple[str, str], list[float]]) -> None:
    def spread(values: list[float], digits: int) -> str:
        low, mid, high = min(values), statistics.median(values), max(values)
        return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"

    names = [name for name in ("branch", "before") if (name, KINDS[0]) in results]
    head = "| search | " + " | ".join(f"edge CPU µs/search, {name}" for name in names)
    head += " | branch / before, per round |" if len(names) == 2 else " |"
    print("\n" + head)
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for kind in KINDS:
        cells = [spread(results[(name, kind)], 0) for name in names]
        if len(names) == 2:
            pairs = zip(results[("branch", kind)], results[("before", kind)], strict=True)
            cells.append(spread([a / b for a, b in pairs], 2))
        print(f"| {kind} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--requests", type=int, default=1000, help="searches of each kind per round"
    )
    parser.add_argument("--block", type=int, default=100, help="searches per turn of an edge")
    parser.add_argument("--before", type=Path, help="a source tree whose edge to compare against")
    parser.add_argument("--py-spy", default="", help="a directory for py-spy's raw profiles")
    args = parser.parse_args()
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    print(header("edge CPU"), flush=True)
    report(run(args))
    print(footer())


if __name__ == "__main__":
    main()
