"""A small reader of server-sent events for the end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def read_events(lines: Iterable[str]) -> list[tuple[str, Any]]:
    """(event name, parsed JSON data) for every event in an SSE stream; comments are skipped."""
    events: list[tuple[str, Any]] = []
    name, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
    if data:
        events.append((name, json.loads("\n".join(data))))
    return events
