"""Consistent file-level backups of a LanceDB directory, and the drill that proves they restore.

LanceDB keeps each table as immutable data files plus one manifest per version; a write
commits by renaming the next manifest into ``_versions/`` after its data files are written.
A version whose manifest and files are all present is therefore a consistent snapshot, and a
copy taken while the retrieval service keeps writing holds every version committed before the
copy started, complete. What the copy may also hold is a newer manifest whose data files it
missed. So:

``checkpoint DB``  (Velero pre-backup hook) records every table's current version in
                   ``DB/_bruno_checkpoint.json``, which the copy then carries.
``release DB``     (Velero post-backup hook) checks the recorded versions still exist on the live
                   volume (nothing cleaned them up during the copy) and removes the marker there.
``recover DB``     (init container, before retrieval starts) does nothing unless the marker is
                   present, i.e. the volume was restored from a backup. Then each table is set
                   back to its newest version that reads completely, never older than the
                   checkpoint; the marker is removed.
``verify DB``      reads every table's latest version and prints the row counts.
``drill WORKDIR``  backs up a LanceDB directory while another process writes to it, restores
                   the copy elsewhere and checks row counts and a known query against the
                   source at the restored version. Exit status 0 when everything matches.

Needs only ``lancedb`` and ``pyarrow`` (the retrieval image has both). See docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lancedb

MARKER = "_bruno_checkpoint.json"
DIMENSION = 8
QUERY_VECTOR = [0.5] * DIMENSION
QUERY_LIMIT = 5
DRILL_TABLES = ("chunks", "conversations")


class BackupError(Exception):
    """A check failed: the message says which table and why."""


def log(message: str) -> None:
    print(f"lancedb-backup: {message}", file=sys.stderr, flush=True)


# --- reading tables --------------------------------------------------------------------------


def table_names(db: Any) -> list[str]:
    names: list[str] = sorted(db.list_tables().tables)
    return names


def versions(table: Any) -> list[int]:
    return sorted(int(v["version"]) for v in table.list_versions())


def read_completely(table: Any) -> int:
    """Read every row of the checked-out version (one small column, but every data and deletion
    file) and return the row count; raises when a file the version needs is missing."""
    first = table.schema.names[0]
    rows: int = table.search().select([first]).limit(None).to_arrow().num_rows
    for index in table.list_indices():
        table.index_stats(index.name)
    return rows


def readable(table: Any, version: int) -> int | None:
    """The row count of ``version``, or None when it cannot be read completely."""
    try:
        table.checkout(version)
        return read_completely(table)
    except Exception as error:
        log(f"{table.name}: version {version} is incomplete ({type(error).__name__})")
        return None


# --- the hooks -------------------------------------------------------------------------------


def checkpoint(uri: Path) -> dict[str, Any]:
    if not uri.is_dir():
        # LanceDB on object storage (or nothing ingested yet): no volume data to make consistent.
        log(f"checkpoint: no LanceDB directory at {uri}; nothing to record")
        return {"tables": {}}
    db = lancedb.connect(str(uri))
    tables = {}
    for name in table_names(db):
        table = db.open_table(name)
        tables[name] = {"version": int(table.version), "rows": int(table.count_rows())}
    marker = {"created_at": datetime.now(UTC).isoformat(), "tables": tables}
    temporary = uri / f".{MARKER}.tmp"
    temporary.write_text(json.dumps(marker, indent=2))
    temporary.replace(uri / MARKER)  # atomic: the copy sees the whole marker or none
    log(f"checkpoint: {json.dumps(tables)}")
    return marker


def load_marker(uri: Path) -> dict[str, Any] | None:
    path = uri / MARKER
    if not path.exists():
        return None
    marker: dict[str, Any] = json.loads(path.read_text())
    return marker


def release(uri: Path) -> None:
    if not uri.is_dir():
        log(f"release: no LanceDB directory at {uri}; nothing to release")
        return
    marker = load_marker(uri)
    if marker is None:
        raise BackupError(f"no {MARKER} in {uri}: did the pre-backup hook run?")
    db = lancedb.connect(str(uri))
    for name, entry in marker["tables"].items():
        if entry["version"] not in versions(db.open_table(name)):
            raise BackupError(f"{name}: version {entry['version']} was removed during the copy")
    (uri / MARKER).unlink()
    log("release: every checkpointed version was still there; marker removed")


def recover(uri: Path) -> dict[str, int]:
    """Set each table of a restored directory to its newest complete version (see module doc).
    Returns table → the version the restored table now equals."""
    marker = load_marker(uri) if uri.is_dir() else None
    if marker is None:
        log("recover: no checkpoint marker, not a restored volume; nothing to do")
        return {}
    db = lancedb.connect(str(uri))
    restored: dict[str, int] = {}
    for name in table_names(db):
        table = db.open_table(name)
        floor = marker["tables"].get(name, {}).get("version", 0)
        candidates = [v for v in versions(table) if v >= floor]
        chosen = next((v for v in reversed(candidates) if readable(table, v) is not None), None)
        if chosen is None:
            raise BackupError(f"{name}: no complete version at or after checkpoint {floor}")
        latest = max(candidates)
        if chosen != latest:
            table.checkout(chosen)
            table.restore()  # a new latest version equal to `chosen`
            log(f"recover: {name} rolled back from incomplete {latest} to {chosen}")
        else:
            table.checkout_latest()  # type: ignore[no-untyped-call]
        restored[name] = chosen
    (uri / MARKER).unlink()
    log(f"recover: {json.dumps(restored)}")
    return restored


def verify(uri: Path) -> dict[str, int]:
    db = lancedb.connect(str(uri))
    counts = {}
    for name in table_names(db):
        table = db.open_table(name)
        rows = readable(table, int(table.version))
        if rows is None:
            raise BackupError(f"{name}: latest version {table.version} is incomplete")
        counts[name] = rows
    return counts


# --- the drill -------------------------------------------------------------------------------


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "text": f"passage {i}",
            "vector": [((i * 7 + d * 13) % 101) / 100.0 for d in range(DIMENSION)],
        }
        for i in range(start, start + count)
    ]


def write_forever(uri: Path, stop: Path) -> None:
    """The concurrent writer: adds batches, deletes, optimizes (as the retrieval service does,
    with the default 7-day cleanup) until ``stop`` exists."""
    db = lancedb.connect(str(uri))
    tables = [db.open_table(name) for name in DRILL_TABLES]
    next_id = 1_000_000
    writes = 0
    while not stop.exists():
        for table in tables:
            table.add(_rows(next_id, 20))
            next_id += 20
            writes += 1
            if writes % 7 == 0:
                # Only an integer this loop computes reaches the filter text.
                # nosemgrep: bruno-lancedb-filter-from-interpolated-text
                table.delete(f"id % 11 = {writes % 11} AND id >= 1000000")
            if writes % 10 == 0:
                table.optimize()
    print(writes, flush=True)


def copy_tree(source: Path, target: Path, *, delay: float, manifests_last: bool) -> int:
    """Copy ``source`` file by file (like a file-system backup) and return the file count.
    ``manifests_last`` copies each table's ``_versions`` after its data: the order in which a
    commit made during the copy leaves a manifest whose data files the copy missed."""

    def ordered(directory: Path) -> Iterator[Path]:
        entries = sorted(directory.iterdir())
        if manifests_last:
            entries.sort(key=lambda p: p.name == "_versions")
        for entry in entries:
            if entry.is_dir():
                yield from ordered(entry)
            else:
                yield entry

    copied = 0
    for path in ordered(source):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, destination)
        except FileNotFoundError:
            continue  # removed between listing and copying, as a file-system backup would see
        copied += 1
        time.sleep(delay)
    return copied


def snapshot(table: Any) -> dict[str, Any]:
    """What must match after a restore: row count, every id, and a known query's answer."""
    ids = sorted(table.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist())
    hits = table.search(QUERY_VECTOR).limit(QUERY_LIMIT).to_arrow()
    return {"rows": table.count_rows(), "ids": ids, "query": hits.column("id").to_pylist()}


@dataclass
class DrillReport:
    checkpoint: dict[str, int]
    restored_from: dict[str, int]
    source_latest: dict[str, int]
    files_copied: int
    writer_commits: int
    mismatches: list[str]

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _wait_for_commits(uri: Path, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    db = lancedb.connect(str(uri))
    while time.monotonic() < deadline:
        if all(db.open_table(n).version >= at_least for n in DRILL_TABLES):
            return
        time.sleep(0.05)
    raise BackupError(f"the writer made fewer than {at_least} commits in {timeout:.0f} s")


def drill(workdir: Path, *, rows: int, copy_delay: float, manifests_last: bool) -> DrillReport:
    source, backup, restored = workdir / "source", workdir / "backup", workdir / "restored"
    for path in (source, backup, restored):
        if path.exists():
            raise BackupError(f"{path} exists; give the drill an empty directory")
    db = lancedb.connect(str(source))
    for offset, name in enumerate(DRILL_TABLES):
        db.create_table(name, data=_rows(offset * rows, rows))

    stop = workdir / "stop-writer"
    writer = subprocess.Popen(  # noqa: S603 - this very script, with our own interpreter
        [sys.executable, __file__, "_write", str(source), "--stop", str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_commits(source, at_least=4)
        marker = checkpoint(source)  # pre-backup hook
        files = copy_tree(source, backup, delay=copy_delay, manifests_last=manifests_last)
        release(source)  # post-backup hook
        _wait_for_commits(source, at_least=max(e["version"] for e in marker["tables"].values()) + 4)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=120)
    if writer.returncode != 0:
        raise BackupError(f"the writer failed with status {writer.returncode}")

    shutil.copytree(backup, restored)  # the restore: the backup's files on a fresh volume
    restored_from = recover(restored)

    mismatches = []
    source_db, restored_db = lancedb.connect(str(source)), lancedb.connect(str(restored))
    checkpointed = {name: int(e["version"]) for name, e in marker["tables"].items()}
    for name in DRILL_TABLES:
        version = restored_from[name]
        if version < checkpointed[name]:
            mismatches.append(f"{name}: restored {version} is older than the checkpoint")
        original = source_db.open_table(name)
        original.checkout(version)
        expected, actual = snapshot(original), snapshot(restored_db.open_table(name))
        for key in ("rows", "ids", "query"):
            if expected[key] != actual[key]:
                mismatches.append(f"{name}: {key} differs from the source at version {version}")
    return DrillReport(
        checkpoint=checkpointed,
        restored_from=restored_from,
        source_latest={n: int(source_db.open_table(n).version) for n in DRILL_TABLES},
        files_copied=files,
        writer_commits=int(out.strip() or 0),
        mismatches=mismatches,
    )


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("checkpoint", "release", "recover", "verify"):
        commands.add_parser(name).add_argument("uri", type=Path, help="the LanceDB directory")
    drill_parser = commands.add_parser("drill", help="back up under writes, restore, compare")
    drill_parser.add_argument("workdir", type=Path)
    drill_parser.add_argument("--rows", type=int, default=500, help="rows per table to start")
    drill_parser.add_argument("--copy-delay", type=float, default=0.002, help="s per file")
    drill_parser.add_argument(
        "--order", choices=("manifests-last", "sorted"), default="manifests-last"
    )
    writer = commands.add_parser("_write", help=argparse.SUPPRESS)
    writer.add_argument("uri", type=Path)
    writer.add_argument("--stop", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "checkpoint":
            checkpoint(args.uri)
        elif args.command == "release":
            release(args.uri)
        elif args.command == "recover":
            recover(args.uri)
        elif args.command == "verify":
            print(json.dumps(verify(args.uri)))
        elif args.command == "_write":
            write_forever(args.uri, args.stop)
        else:
            args.workdir.mkdir(parents=True, exist_ok=True)
            report = drill(
                args.workdir,
                rows=args.rows,
                copy_delay=args.copy_delay,
                manifests_last=args.order == "manifests-last",
            )
            print(json.dumps(report.as_dict(), indent=2))
            return 1 if report.mismatches else 0
    except BackupError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o027)
    raise SystemExit(main())
