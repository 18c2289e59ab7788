"""How long an HTTP ``Retry-After`` asks to wait, for every client of ours that honours one: the
CLI before it asks a busy edge again, retrieval's URL jobs before they fetch a page again.

    retry_after_seconds("120")                            # 120.0
    retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT")  # 0.0: long past
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` value asks to wait: delay-seconds or an HTTP-date (RFC
    9110, each of its three date forms; a date past is no wait), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)  # a number too long for a float is inf: longer than any wait
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # the asctime form names no zone; HTTP dates are all GMT
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
