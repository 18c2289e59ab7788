"""``make load`` keeps working: its Locust scenario, run briefly against the real system, makes
every kind of request, meets no failure but deliberate shedding, and writes its result block."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = (
    "search",
    "chat",
    "chat (stream)",
    "chat (stream): first token",
    "chat (stream): done",
    "list documents",
    "ingest",
)


def test_a_short_load_run_makes_every_kind_of_request_and_records_the_result(
    tmp_path: Path,
) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nEarlier results stay.\n\n## Load\n\n"
        "<!-- make load: begin -->\nthe previous run\n<!-- make load: end -->\n\nThe rest stays.\n"
    )
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "load.py"),
            "--users=8",
            "--seconds=6",
            "--warmup=2",
            f"--output={doc}",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )

    text = doc.read_text()
    # The previous run's block is replaced; the rest of the page stays as it was.
    assert text.startswith("# Benchmarks\n\nEarlier results stay.\n\n## Load\n\n")
    assert text.endswith("<!-- make load: end -->\n\nThe rest stays.\n")
    assert "the previous run" not in text
    assert text.count("<!-- make load: begin -->") == 1
    block = text.split("<!-- make load: begin -->", 1)[1].split("<!-- make load: end -->", 1)[0]
    served = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^\| ([^|\[]+?) \| (\d+) \|", block, re.MULTILINE)
    }
    for kind in KINDS:
        assert served.get(kind, 0) > 0, f"no {kind!r} request was served:\n{block}"
    assert "; 0 others)" in block, block  # only deliberate 429/503 may fail
    for service in ("embedding", "retrieval", "generation", "edge"):
        assert re.search(rf"^\| {service} \| \d+ MiB \| \d+ MiB \| \d+ MiB \|", block, re.M), block
