"""The ONNX embedder's memory is bounded by its settings, not by what it is asked to embed.

Each case runs in a fresh interpreter, so its resident memory is the embedder's alone: idle
after loading, then the high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``)
after an embedding call; what stays resident afterwards is at most that. Memory does not
depend on the machine's load, so these bounds hold on a busy machine too; they sit far from
both the bounded figures (~110 MiB above idle) and the unbounded ones they guard against (~680 MiB
for 32 texts of 256 tokens in one call, ~2 GiB to tokenize one 16 MiB text).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="reads Linux's /proc memory counters"
)

PROBE = """
import asyncio, json, sys
from pathlib import Path
from bruno_embedding.embedders import InputType
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder

def mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)

async def main():
    texts = json.loads(sys.stdin.read())
    embedder = OnnxMiniLMEmbedder(batch_size=32, threads=1)
    await embedder.start()
    idle = mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again here
    await embedder.embed(texts, InputType.DOCUMENT)
    print(mib("VmHWM") - idle)
    await embedder.aclose()

asyncio.run(main())
"""


def peak_growth_mib(texts: list[str]) -> float:
    """How far one ``embed(texts)`` call took a fresh embedder's memory above idle, in MiB."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout)


def test_a_batch_of_long_texts_costs_a_bounded_peak() -> None:
    # 32 texts past the 256 tokens the model reads: the widest batch the settings allow.
    texts = [" ".join(f"volume{i} restore{j}" for j in range(200)) for i in range(32)]

    assert peak_growth_mib(texts) < 300


def test_one_huge_text_costs_no_more_than_an_ordinary_long_one() -> None:
    huge = "restore the backup volume " * (16 * 1024 * 1024 // 26)

    assert peak_growth_mib([huge]) < 300
