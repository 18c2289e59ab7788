"""Search filters: exact matches on ``source``, ``title``, ``document_id`` or a metadata key.

    where = filter_expression({"tags": "backup", "source": "runbooks/velero.md"})
    # source = 'runbooks/velero.md' AND array_has(filter_terms, '["tags", "backup"]')

Every chunk row carries its document's :func:`filter_terms`, so a metadata filter is one
``array_has`` over that list. The predicate is SQL text, the one form LanceDB applies to
vector, full-text and plain queries alike (its typed expressions have no ``array_has``), so
every value is quoted here, by doubling single quotes: LanceDB's own ``lit().to_sql()`` leaves
a backslash-quote open, which would let a crafted value widen the filter. Nothing but these
quoted values ever reaches SQL text; document ids are matched with typed expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from bruno_core import InvalidInput
from bruno_core.contract import MAX_FILTER_VALUE_CHARS, MAX_FILTERS, MAX_METADATA_KEY_CHARS

# Filter keys that name a column; any other key is looked up in the metadata.
COLUMN_FILTERS = frozenset({"source", "title", "document_id"})

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def filter_terms(metadata: Mapping[str, str]) -> list[str]:
    """The exact-match terms a chunk is found by: one per metadata pair, plus one per item of a
    comma-separated value (so ``tags="k8s, backup"`` matches the filter ``tags=backup``)."""
    terms: set[str] = set()
    for key, value in metadata.items():
        terms.add(_term(key, value))
        if "," in value:
            terms.update(_term(key, item.strip()) for item in value.split(",") if item.strip())
    return sorted(terms)


def filter_expression(filters: Mapping[str, str]) -> str | None:
    """The SQL predicate for exact-match ``filters`` (all must hold), values always quoted."""
    if len(filters) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters")
    clauses = []
    for key, value in sorted(filters.items()):
        if (
            not key
            or len(key) > MAX_METADATA_KEY_CHARS
            or len(value) > MAX_FILTER_VALUE_CHARS
            or _CONTROL_CHARS.search(key)
        ):
            raise InvalidInput(
                f"filter keys must have 1 to {MAX_METADATA_KEY_CHARS} characters (no control "
                f"characters), values at most {MAX_FILTER_VALUE_CHARS}"
            )
        if key in COLUMN_FILTERS:
            clauses.append(f"{key} = {_sql_string(value)}")
        else:
            clauses.append(f"array_has(filter_terms, {_sql_string(_term(key, value))})")
    return " AND ".join(clauses) or None


def _term(key: str, value: str) -> str:
    return json.dumps([key, value], ensure_ascii=False)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
