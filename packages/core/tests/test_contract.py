from __future__ import annotations

import hashlib
import re
from typing import Annotated

import pytest
from pydantic import Field, TypeAdapter, ValidationError

from bruno_core import InvalidInput
from bruno_core.contract import (
    COLLECTION_NAME,
    CONVERSATION_ID,
    DOCUMENT_ID,
    IdentifierRule,
    content_hash,
    document_id_from_path,
)

VALID_DOCUMENT_IDS = [
    "runbook.md",
    "docs/backups/restore.md",
    "a:b_c-d.e",
    ".hidden/notes.md",
    "v1.2/...",
    "..x/y..",
    "x" * 200,
]
INVALID_DOCUMENT_IDS = [
    "",
    ".",
    "..",
    "../collections/default",
    "docs/../secrets",
    "docs/./restore.md",
    "docs/..",
    "a//b",
    "/absolute",
    "trailing/",
    " padded",
    "line\nbreak",
    "ends-in-newline\n",
    "nul\x00",
    "has space",
    "quote'd",
    "percent%2E%2E",
    "ü",
    "back\\slash",
    "x" * 201,
]
VALID_CONVERSATION_IDS = ["c1", "chat:2024-05-01.x", "...", "x" * 100]
INVALID_CONVERSATION_IDS = ["", ".", "..", "a/b", "x" * 101, "tab\t", "é"]
VALID_COLLECTIONS = ["default", "homelab", "a", "0-k8s_notes", "a" * 63]
INVALID_COLLECTIONS = ["", "Default", "a" * 64, "-lead", "_lead", "has space", "../up", "a.1", "ü"]

CASES = [
    *((DOCUMENT_ID, value, True) for value in VALID_DOCUMENT_IDS),
    *((DOCUMENT_ID, value, False) for value in INVALID_DOCUMENT_IDS),
    *((CONVERSATION_ID, value, True) for value in VALID_CONVERSATION_IDS),
    *((CONVERSATION_ID, value, False) for value in INVALID_CONVERSATION_IDS),
    *((COLLECTION_NAME, value, True) for value in VALID_COLLECTIONS),
    *((COLLECTION_NAME, value, False) for value in INVALID_COLLECTIONS),
]


@pytest.mark.parametrize(("rule", "value", "valid"), CASES, ids=lambda case: repr(case)[:40])
def test_an_identifier_is_segments_of_safe_characters_none_empty_or_dots(
    rule: IdentifierRule, value: str, valid: bool
) -> None:
    assert rule.is_valid(value) is valid
    if valid:
        assert rule.check(value) == value
    else:
        with pytest.raises(InvalidInput, match=rule.name):
            rule.check(value)


@pytest.mark.parametrize(("rule", "value", "valid"), CASES, ids=lambda case: repr(case)[:40])
def test_the_declared_pattern_gives_pydantic_the_same_verdict(
    rule: IdentifierRule, value: str, valid: bool
) -> None:
    # The edge declares the rule on its fields (checked by pydantic's Rust regex engine, which
    # knows no look-arounds); it must judge exactly as the rule itself.
    field = TypeAdapter(Annotated[str, Field(pattern=rule.pattern, max_length=rule.max_chars)])
    if valid:
        assert field.validate_python(value) == value
    else:
        with pytest.raises(ValidationError):
            field.validate_python(value)


def test_a_refusal_says_what_the_identifier_must_be() -> None:
    with pytest.raises(InvalidInput) as refused:
        DOCUMENT_ID.check("../collections/default")
    assert refused.value.detail == (
        "document_id '../collections/default' is not valid: it must be 1 to 200 characters: "
        "letters, digits, '.', '_', ':' and '-' in segments joined by '/', none of them empty, "
        "'.' or '..'"
    )


_OLD_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]+")


def old_cli_id(path: str) -> str:
    """How `bruno ingest` named a file before the rule."""
    safe = _OLD_UNSAFE.sub("-", path).strip("/")
    return safe[-200:] if len(safe) > 200 else safe


def old_upload_id(name: str) -> str:
    """How the upload route named a file before the rule."""
    return _OLD_UNSAFE.sub("-", name)[:200]


NAMES = [
    "restore.md",
    "docs/backups/restore notes.md",
    "Ünïcode — notes (draft).md",
    "a:b/c_d/e-f.txt",
    ".github/workflows/ci.md",
    "deep/" * 60 + "end.md",
    "x" * 250 + ".md",
    "..",
    ".",
    "docs/../escape.md",
    "a/./b.md",
    "sp ace/..",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_derived_id_follows_the_rule_and_is_unchanged_where_it_already_did(name: str) -> None:
    for derived, old in (
        (document_id_from_path(name), old_cli_id(name)),
        (document_id_from_path(name, keep_end=False), old_upload_id(name)),
    ):
        assert DOCUMENT_ID.is_valid(derived)
        if DOCUMENT_ID.is_valid(old):
            assert derived == old


def test_dot_segments_of_a_derived_id_become_dashes() -> None:
    assert document_id_from_path("..") == "--"
    assert document_id_from_path("docs/../escape.md") == "docs/--/escape.md"
    assert document_id_from_path("///") == ""


def test_content_hash_is_the_sha256_of_the_utf8_text() -> None:
    text = "Velero restores — nightly"
    assert content_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
