"""GitOps promotion: point an overlay's images at a new tag, for Flux to apply.

    python pipelines/deploy.py --overlay dev --tag <git sha>            # print the diff
    python pipelines/deploy.py --overlay prod --tag 1.2.3 --commit      # write and commit
    python pipelines/deploy.py --overlay prod --tag 1.2.3 --revision <sha> --commit

An overlay names its images in kustomize's ``images:`` list (``name:
ghcr.io/agent-bruno/<service>``, ``newTag: ...``). Only the ``newTag`` lines change; comments
and layout stay as written, so the diff is exactly the promotion and reads well in a pull
request. Each overlay accepts one kind of tag: dev a git commit SHA (what CI publishes from
main), staging and prod a release version (what CI publishes from a ``v*`` tag).

The commit says what it deploys in its subject (``Deploy <tag> to <overlay>``) and which source
commit that is in a ``Source-Revision:`` trailer (the tag itself for dev; ``--revision`` for a
release), which is what the DORA metrics (:mod:`bruno_pipelines.dora`) measure lead time from.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .images import SERVICES
from .release import DEFAULT_REGISTRY

__all__ = [
    "OVERLAY_TAGS",
    "REVISION_TRAILER",
    "Promotion",
    "PromotionError",
    "check_tag",
    "main",
    "overlay_file",
    "promote",
    "set_image_tags",
]

OVERLAYS_DIR = Path("k8s") / "overlays"
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")
# What each overlay runs: dev follows main, staging and prod run releases.
OVERLAY_TAGS: dict[str, tuple[re.Pattern[str], str]] = {
    "dev": (_SHA, "a full git commit SHA (40 hex digits), as CI publishes from main"),
    "staging": (_VERSION, "a release version such as 1.2.3, as CI publishes from tag v1.2.3"),
    "prod": (_VERSION, "a release version such as 1.2.3, as CI publishes from tag v1.2.3"),
}
REVISION_TRAILER = "Source-Revision"
_NAME_LINE = re.compile(r"^(?P<indent>\s*)-\s+name:\s*(?P<name>\S+)\s*$")
_TAG_LINE = re.compile(r"^(?P<indent>\s*)newTag:\s*(?P<tag>.*?)\s*$")


class PromotionError(ValueError):
    """Bad input or an overlay of an unexpected shape; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Promotion:
    overlay: str
    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self, repo: Path) -> str:
        name = self.path.relative_to(repo).as_posix()
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        )


def overlay_file(repo: Path, overlay: str) -> Path:
    path = repo / OVERLAYS_DIR / overlay / "kustomization.yaml"
    if not re.fullmatch(r"[a-z0-9-]+", overlay) or not path.is_file():
        known = sorted(p.parent.name for p in (repo / OVERLAYS_DIR).glob("*/kustomization.yaml"))
        msg = f"unknown overlay {overlay!r}; overlays are {', '.join(known) or 'none'}"
        raise PromotionError(msg)
    return path


def check_tag(overlay: str, tag: str) -> None:
    if overlay in OVERLAY_TAGS:
        pattern, meaning = OVERLAY_TAGS[overlay]
    else:
        pattern, meaning = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"), "an image tag"
    if not pattern.fullmatch(tag):
        msg = f"tag {tag!r} cannot be deployed to {overlay}: it takes {meaning}"
        raise PromotionError(msg)


def set_image_tags(text: str, images: Sequence[str], tag: str) -> str:
    """``text`` with the ``newTag`` of each named image set to ``tag``; all else unchanged."""
    lines = text.splitlines(keepends=True)
    found: set[str] = set()
    out: list[str] = []
    current: str | None = None
    item_indent = -1
    for line in lines:
        name = _NAME_LINE.match(line)
        if name:
            current = name["name"] if name["name"] in images else None
            item_indent = len(name["indent"]) + 2
            if current:
                found.add(current)
            out.append(line)
            continue
        tagline = _TAG_LINE.match(line)
        if current and tagline and len(tagline["indent"]) == item_indent:
            out.append(f"{tagline['indent']}newTag: {tag}\n")
            current = None
            continue
        if current and line.strip() and (len(line) - len(line.lstrip())) < item_indent:
            # The entry ended without a newTag: add one after its other keys.
            out.insert(len(out), f"{' ' * item_indent}newTag: {tag}\n")
            current = None
        out.append(line)
    if current:
        out.append(f"{' ' * item_indent}newTag: {tag}\n")
    missing = [image for image in images if image not in found]
    if missing:
        msg = f"the overlay lists no image {', '.join(missing)} under `images:`"
        raise PromotionError(msg)
    return "".join(out)


def _check_result(text: str, images: Sequence[str], tag: str, path: Path) -> None:
    """The edited file must still be a kustomization naming each image at ``tag``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{path}: not valid YAML after the edit: {exc}"
        raise PromotionError(msg) from exc
    entries = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        msg = f"{path}: no kustomize `images:` list"
        raise PromotionError(msg)
    tags = {e.get("name"): str(e.get("newTag")) for e in entries if isinstance(e, dict)}
    wrong = [image for image in images if tags.get(image) != tag]
    if wrong:
        msg = f"{path}: could not set the tag of {', '.join(wrong)}"
        raise PromotionError(msg)


def promote(
    repo: Path,
    overlay: str,
    tag: str,
    services: Sequence[str] = SERVICES,
    registry: str = DEFAULT_REGISTRY,
) -> Promotion:
    """The overlay's kustomization with the services' images at ``tag`` (nothing written)."""
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        msg = f"unknown service {', '.join(unknown)}; services are {', '.join(SERVICES)}"
        raise PromotionError(msg)
    path = overlay_file(repo, overlay)
    check_tag(overlay, tag)
    before = path.read_text()
    _check_result(before, [], tag, path)
    images = [f"{registry.rstrip('/')}/{service}" for service in services]
    after = set_image_tags(before, images, tag)
    _check_result(after, images, tag, path)
    return Promotion(overlay, path, before, after)


def _git(repo: Path, *args: str) -> None:
    result = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(repo), *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        msg = f"git {' '.join(args)} failed: {result.stderr.strip()}"
        raise PromotionError(msg)


def main(argv: Sequence[str] | None = None, *, repo: Path) -> int:
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", required=True, help="k8s/overlays/<OVERLAY>")
    parser.add_argument("--tag", required=True, help="the image tag to deploy")
    parser.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        help="only this service's image (repeatable); default: all four",
    )
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument(
        "--revision",
        help="the source commit the images were built from (default: the tag, when it is one)",
    )
    parser.add_argument(
        "--commit", action="store_true", help="write the change and commit it (default: diff only)"
    )
    parser.add_argument("--repo", type=Path, default=repo, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root: Path = args.repo.resolve()
    revision = args.revision or (args.tag if _SHA.fullmatch(args.tag) else None)
    if revision is not None and not _SHA.fullmatch(revision):
        print(f"deploy.py: --revision takes a full commit SHA, not {revision!r}", file=sys.stderr)
        return 2
    try:
        promotion = promote(root, args.overlay, args.tag, args.service or SERVICES, args.registry)
        if not promotion.changed:
            print(f"{args.overlay} already runs {args.tag}; nothing to do", file=sys.stderr)
            return 0
        print(promotion.diff(root), end="")
        if args.commit:
            promotion.path.write_text(promotion.after)
            relative = promotion.path.relative_to(root).as_posix()
            _git(root, "add", "--", relative)
            message = f"Deploy {args.tag} to {args.overlay}"
            if revision is not None:
                message += f"\n\n{REVISION_TRAILER}: {revision}"
            _git(root, "commit", "--quiet", "-m", message, "--", relative)
            print(f"committed: deploy {args.tag} to {args.overlay}", file=sys.stderr)
    except PromotionError as exc:
        print(f"deploy.py: {exc}", file=sys.stderr)
        return 2
    return 0
