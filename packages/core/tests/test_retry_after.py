from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bruno_core.retry_after import retry_after_seconds

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("9" * 400, math.inf),  # longer than any wait, not an error
        ("Fri, 04 Dec 2026 12:01:30 GMT", 90.0),  # IMF-fixdate
        ("Friday, 04-Dec-26 12:00:10 GMT", 10.0),  # RFC 850, obsolete
        ("Fri Dec  4 12:00:05 2026", 5.0),  # asctime, obsolete: no zone, GMT
        ("Fri, 04 Dec 2026 11:00:00 GMT", 0.0),  # past
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("\u00b2", None),  # a digit to str.isdigit, not to HTTP
        ("\u0663", None),  # a digit to float(), not to HTTP
        ("Fri, 32 Dec 2026", None),
        (None, None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, NOW) == seconds
