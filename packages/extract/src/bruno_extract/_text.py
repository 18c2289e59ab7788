"""Titles of Markdown and reStructuredText files, which are stored as they are (the retrieval
service's chunker reads their headings).

    markdown_title(["# Disk full", "", "Delete snapshots."])   # "Disk full"
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def markdown_title(lines: Sequence[str]) -> str:
    in_code = False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        elif not in_code and (match := _MD_HEADING.match(line)):
            return match["title"]
    return ""


def rst_title(lines: Sequence[str]) -> str:
    for above, line, below in zip(["", *lines], lines, [*lines[1:], ""], strict=True):
        text = line.strip()
        underlined = bool(_RST_UNDERLINE.match(below)) and not _RST_UNDERLINE.match(line)
        if text and underlined and (len(below.strip()) >= len(text) or _RST_UNDERLINE.match(above)):
            return text
    return ""
