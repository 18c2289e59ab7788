"""Generate the Python gRPC stubs (with .pyi type stubs) from proto/ into the bruno-proto package.

Run through ``make proto``. ``--check`` regenerates into a temporary directory and exits 1 when
the committed stubs differ, which is what the staleness test and CI use.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUTPUT_ROOT = ROOT / "packages" / "proto" / "src"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc with the grpc and mypy-protobuf plugins over every proto file."""
    well_known = Path(protoc.__file__).parent / "_proto"
    plugin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def stale_files() -> list[str]:
    """The generated files that differ between the committed tree and a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        generate(fresh_root)
        fresh, committed = generated_files(fresh_root), generated_files(OUTPUT_ROOT)
        differing = {
            rel
            for rel in fresh & committed
            if not filecmp.cmp(fresh_root / rel, OUTPUT_ROOT / rel, shallow=False)
        }
        return sorted(str(p) for p in (fresh ^ committed) | differing)


def write() -> None:
    for rel in generated_files(OUTPUT_ROOT):
        (OUTPUT_ROOT / rel).unlink()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for rel in generated_files(Path(tmp)):
            target = OUTPUT_ROOT / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / rel, target)
            for parent in rel.parents:
                # grpc's generated imports are absolute (bruno.embedding.v1); every level but
                # the top-level namespace "bruno" is a regular package.
                if parent.parts and parent != Path("bruno"):
                    (OUTPUT_ROOT / parent / "__init__.py").touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when committed stubs are stale")
    if parser.parse_args().check:
        stale = stale_files()
        if stale:
            print("stale generated stubs (run `make proto`):", *stale, sep="\n  ")
            return 1
        print("generated stubs are up to date")
        return 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
