"""`make run` is honcho over the Procfile: the system it starts serves, and stops cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import SERVICES, BrunoSystem

ROOT = Path(__file__).resolve().parents[2]


def test_the_procfile_serves_prefixes_each_service_and_stops_all_cleanly(
    tmp_path: Path, standin: OllamaStandIn
) -> None:
    system = BrunoSystem(tmp_path, ollama_host=standin.url)  # its ports and environment only
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile")],
        env=system.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        system.wait_ready()
    finally:
        honcho.send_signal(signal.SIGTERM)
        try:
            output, _ = honcho.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            honcho.kill()
            pytest.fail("honcho did not stop within 30 s of SIGTERM")
    for name in SERVICES:
        assert re.search(rf"^\S+ {name}\.1\s+\| \{{", output, re.MULTILINE), name
        assert f"{name}.1 stopped (rc=0)" in output, output[-2000:]
