#!/usr/bin/env bash
# Remove from a service's dependency venv what a running service never reads, so the image's
# dependency layer is smaller. Run in the Dockerfile's <service>-deps stages, right after the
# `--no-install-workspace` sync; the workspace packages are installed later and never pruned.
#
#   prune-venv [VENV]        (default /app/.venv)
#
# Needs binutils (strip, readelf), which the builder stage installs; the runtime stage has none.
#
# Every rule says why it is safe. What the rules keep working is checked end to end by
# `make smoke` (real images: ingest, embed, search, chat) and by the import check at the end.
# The dist-info RECORD files still list the removed files: nothing reads them at run time, and
# the image never runs pip or uv (an uninstall would merely skip the missing files).
set -euo pipefail
venv=${1:-/app/.venv}
site="$venv/lib/python3.11/site-packages"
[[ -d "$site" ]] || { echo "prune-venv: no site-packages in $venv" >&2; exit 1; }
before=$(du -sk "$venv" | cut -f1)

# Packaged test suites (numpy, pyarrow, fsspec, certifi, lance_namespace, ...). Only
# directories named exactly `tests`: no package imports its own test suite at run time, and
# `numpy.testing`, which is public API, is named differently and kept.
find "$site" -depth -type d -name tests -exec rm -rf {} +
# Also pyarrow's C++ test module, loaded only by pyarrow/tests (removed above).
rm -f "$site"/pyarrow/_pyarrow_cpp_tests.*

# C/C++ headers and Cython sources: inputs for compiling extensions against numpy/pyarrow.
# The image compiles nothing (no compiler, no uv), and Python never imports .pyx/.pxd/.pxi.
# The numpy licence copy under *.dist-info is kept: licences stay.
find "$site" -depth -type d -name include -not -path '*.dist-info/*' -exec rm -rf {} +
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' \
    -o -name '*.hpp' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -not -path '*.dist-info/*' -delete
rm -rf "$site"/pyarrow/includes "$site"/pyarrow/src

# Type stubs (*.pyi) are read by type checkers only, never by the interpreter.
find "$site" -type f -name '*.pyi' -delete

# Arrow Flight (an RPC framework for Arrow data): loaded only by `import pyarrow.flight`.
# LanceDB does not use it (no reference in lancedb/), and no other module links
# libarrow_flight (checked with readelf: only _flight and libarrow_python_flight need it).
# pyarrow's S3 file system is kept on purpose: lancedb/util.py names pa_fs.S3FileSystem, and
# BRUNO_LANCEDB_URI=s3://... is a supported deployment that cannot be exercised offline.
rm -f "$site"/pyarrow/_flight.* "$site"/pyarrow/libarrow_flight.so* \
    "$site"/pyarrow/libarrow_python_flight.so*

# ONNX Runtime's quantization tool kit (and its transformers kit, which the quantizer imports)
# stay: the image's embedding-model stage quantizes the default all-MiniLM-L6-v2-int8-dynamic
# model with this venv, and a service pointed at another BRUNO_EMBEDDING_CACHE_DIR builds it
# there at its first start (bruno_embedding.quantized_model); 3.6 MB.

# numpy's Fortran-wrapper generator (f2py) and its distutils: build tools for compiling
# Fortran/C extensions; `import numpy` loads neither (f2py only on attribute access).
rm -rf "$site"/numpy/f2py "$site"/numpy/distutils "$site"/numpy/_pyinstaller "$venv"/bin/f2py

# Identical copies of one shared library (wheels cannot hold symlinks, so pyarrow ships
# libarrow_python.so, .so.2600 and .so.2600.1.0 as three files): keep the file named by the
# library's SONAME (what the dynamic loader opens) and point the other names at it.
while IFS= read -r -d '' lib; do
    soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    dir=$(dirname "$lib")
    if [[ -n "$soname" && "$(basename "$lib")" != "$soname" && -f "$dir/$soname" \
        && ! -L "$dir/$soname" ]] && cmp -s "$lib" "$dir/$soname"; then
        ln -sf "$soname" "$lib"
    fi
done < <(find "$site" -type f -name 'lib*.so*' -print0)

# Debug symbols and the static symbol table: the dynamic loader uses only .dynsym, which
# --strip-unneeded keeps; tracebacks of Python code are unaffected. Only files that still
# carry a .symtab section (what `file` calls "not stripped") are touched: most wheels already
# ship stripped libraries (lancedb, onnxruntime, grpcio), pyarrow's are not. The
# libraries auditwheel vendored into <package>.libs/ are left alone: patchelf rewrote their
# program headers, and strip then breaks them ("ELF load command address/offset not
# page-aligned", seen with numpy.libs/libscipy_openblas).
while IFS= read -r -d '' lib; do
    if readelf -S "$lib" 2>/dev/null | grep -q '\.symtab'; then
        strip --strip-unneeded "$lib"
    fi
done < <(find "$site" -type f -name '*.so*' -not -path '*.libs/*' -print0)

# Bytecode of removed sources: __pycache__ entries whose .py is gone.
find "$site" -type f -name '*.pyc' -path '*/__pycache__/*' -print0 | while IFS= read -r -d '' pyc; do
    name=$(basename "$pyc")
    [[ -f "$(dirname "$(dirname "$pyc")")/${name%%.*}.py" ]] || rm -f "$pyc"
done
find "$site" -depth -type d -empty -delete

# Every top-level package must still import: a rule that removed something needed fails the
# build here rather than at run time.
"$venv/bin/python" - "$site" <<'PY'
import importlib
import pathlib
import sys

site = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(site))  # exactly this venv's packages, whichever python runs the check
# Modules that are imported only in other contexts (tools, optional back ends) are skipped.
skip = {"_distutils_hack", "_virtualenv", "tqdm", "six"}
names = sorted(
    {p.name.split(".")[0] for p in site.iterdir()
     if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    - skip
)
# Namespace packages (google, opentelemetry: no __init__.py of their own) hold the packages
# that matter (google.protobuf, opentelemetry.sdk): each such directory's child packages.
names += sorted(
    f"{ns.name}.{child.name}"
    for ns in site.iterdir()
    if ns.is_dir() and ns.name.isidentifier() and not (ns / "__init__.py").exists()
    for child in ns.iterdir()
    if child.is_dir() and (child / "__init__.py").exists()
)
for name in names:
    importlib.import_module(name)
if "pyarrow" in names:  # the pyarrow modules lancedb loads lazily
    for name in ("pyarrow.compute", "pyarrow.dataset", "pyarrow.fs", "pyarrow.parquet"):
        importlib.import_module(name)
print(f"prune-venv: {len(names)} top-level and namespace packages import", file=sys.stderr)
PY
after=$(du -sk "$venv" | cut -f1)
echo "prune-venv: $venv $((before / 1024)) MB -> $((after / 1024)) MB" >&2
