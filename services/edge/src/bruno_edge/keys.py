"""API keys with names, scopes and collections: the keys file, and a command that makes a key.

The keys file (``BRUNO_API_KEYS_FILE``, TOML) holds one table per key, named by the key's name;
it stores the key's SHA-256, never the key::

    [keys.family]
    hash = "sha256:5b3c…"            # `bruno-edge keys new` prints the key and this table
    scopes = ["read"]                # read: search, chat; write: documents; admin: collections
    collections = ["docs", "recipes"]  # or ["*"] for every collection
    rate_limit = "60/minute"         # optional, else BRUNO_RATE_LIMIT
    concurrent_chats = 2             # optional, else BRUNO_CONCURRENT_CHATS

A fast hash is the right one here: an API key is 256 random bits, so no dictionary or brute
force can reverse its SHA-256, and a slow password hash (bcrypt, argon2) would only cost CPU on
every request. Keys from ``BRUNO_API_KEYS`` are kept too, as one all-powerful key named
``api-key``.

    keyring = Keyring.from_settings(settings)   # KeysFileError naming the line, at start
    record = keyring.find(token)                # or None
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bruno_core.contract import COLLECTION_NAME
from bruno_edge.config import EdgeSettings

HASH_PREFIX = "sha256:"
EVERY_COLLECTION = "*"
#: The name of the keys of ``BRUNO_API_KEYS``, all-powerful (and of one owner: rotating them
#: keeps their conversations).
ENV_KEY_NAME = "api-key"
#: The caller of an edge without keys (loopback only). Both names own the conversations stored
#: before owners existed (``bruno_core.contract.OWNERS_BEFORE_OWNERSHIP``).
OPEN_NAME = "open"
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TOKEN_PREFIX = "bruno_"  # noqa: S105 - a prefix secret scanners can match, no secret


class Scope(StrEnum):
    """What a key may do: ``read`` (search, chat, list), ``write`` (ingest and delete
    documents), ``admin`` (delete and reindex collections)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class KeyRecord:
    """One key as configured: never the key itself, only its digest."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]
    #: None: every collection.
    collections: frozenset[str] | None
    #: Overrides of the settings' limits for this key (None: the settings').
    rate_limit: str | None = None
    concurrent_chats: int | None = None


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def hash_line(token: str) -> str:
    """What the keys file stores for ``token``: ``sha256:<hex>``."""
    return HASH_PREFIX + digest_of(token).hex()


class _KeyEntry(BaseModel):
    """A table of the keys file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)
    collections: list[str] = Field(min_length=1)
    rate_limit: str | None = None
    concurrent_chats: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("collections")
    @classmethod
    def _check_collections(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != EVERY_COLLECTION and not COLLECTION_NAME.is_valid(name):
                raise ValueError(f"{name!r} is not a collection name (or '*')")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_many(value)
        return value


@dataclass(frozen=True)
class Keyring:
    """Every configured key; finds the one a bearer token is, in constant time per key."""

    records: tuple[KeyRecord, ...]

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> Keyring:
        """The keys of ``BRUNO_API_KEYS`` (all-powerful) and of ``BRUNO_API_KEYS_FILE``."""
        records = [
            KeyRecord(ENV_KEY_NAME, digest_of(key.get_secret_value()), ALL_SCOPES, None)
            for key in settings.api_keys
        ]
        if settings.api_keys_file is not None:
            records.extend(load_keys_file(settings.api_keys_file))
        return cls(tuple(records))

    def find(self, token: str) -> KeyRecord | None:
        """The record of ``token``, or None; every record is compared (no early exit)."""
        digest = digest_of(token)
        found: KeyRecord | None = None
        for record in self.records:
            if hmac.compare_digest(digest, record.digest):
                found = record
        return found


def load_keys_file(path: Path) -> list[KeyRecord]:
    """The keys of a keys file; :class:`KeysFileError` naming the line of what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeysFileError(f"{path}: cannot be read ({error})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends "(at line N, column M)".
        raise KeysFileError(f"{path}: not valid TOML: {error}") from None
    unknown = set(document) - {"keys"}
    if unknown:
        raise KeysFileError(f"{path}: unknown top-level entries {sorted(unknown)}; use [keys.NAME]")
    tables = document.get("keys", {})
    if not isinstance(tables, dict) or not tables:
        raise KeysFileError(f"{path}: no keys; add one [keys.NAME] table per key")
    records: list[KeyRecord] = []
    digests: dict[bytes, str] = {}
    for name, table in tables.items():
        where = f"{path}:{_line_of(text, name)}"
        if not re.fullmatch(KEY_NAME_PATTERN, name) or name in (ENV_KEY_NAME, OPEN_NAME):
            raise KeysFileError(
                f"{where}: key name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                f"and not {ENV_KEY_NAME!r} or {OPEN_NAME!r}"
            )
        if not isinstance(table, dict):
            raise KeysFileError(f"{where}: keys.{name} must be a table")
        try:
            entry = _KeyEntry.model_validate(table)
        except ValidationError as error:
            field, message = _describe(error)
            line = _line_of(text, name, field)
            raise KeysFileError(f"{path}:{line}: keys.{name}.{field}: {message}") from None
        digest = bytes.fromhex(entry.hash.removeprefix(HASH_PREFIX))
        if digest in digests:
            raise KeysFileError(f"{where}: keys.{name} has the same hash as {digests[digest]}")
        digests[digest] = name
        records.append(
            KeyRecord(
                name=name,
                digest=digest,
                scopes=frozenset(entry.scopes),
                collections=None
                if EVERY_COLLECTION in entry.collections
                else frozenset(entry.collections),
                rate_limit=entry.rate_limit,
                concurrent_chats=entry.concurrent_chats,
            )
        )
    return records


def _describe(error: ValidationError) -> tuple[str, str]:
    """The field of the first problem in ``error`` and what is wrong with it."""
    problem = error.errors(include_url=False)[0]
    field = str(problem["loc"][0]) if problem["loc"] else ""
    if field == "scopes" and problem["type"] == "enum":
        scopes = ", ".join(s.value for s in Scope)
        return field, f"unknown scope {problem['input']!r}; the scopes are {scopes}"
    if field == "hash":
        return field, 'must be "sha256:" and 64 lowercase hex digits (bruno-edge keys new)'
    return field, str(problem["msg"])


def _line_of(text: str, name: str, field: str = "") -> int | str:
    """The line of ``[keys.<name>]`` (or of ``field`` within that table); '?' when the file
    writes the key some other way (inline tables, dotted keys)."""
    header = re.compile(rf"^\s*\[\s*keys\s*\.\s*(\"{re.escape(name)}\"|{re.escape(name)})\s*\]")
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not header.match(line):
            continue
        if field:
            for offset, later in enumerate(lines[number:], start=number + 1):
                if later.lstrip().startswith("["):
                    break
                if re.match(rf"^\s*{re.escape(field)}\s*=", later):
                    return offset
        return number
    return "?"


def new_key(name: str, scopes: Iterable[Scope], collections: Sequence[str]) -> tuple[str, str]:
    """A new random key and the keys-file table that admits it."""
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    listed = ", ".join(f'"{s.value}"' for s in sorted(set(scopes), key=list(Scope).index))
    names = ", ".join(f'"{c}"' for c in collections)
    table = (
        f"[keys.{name}]\n"
        f'hash = "{hash_line(token)}"\n'
        f"scopes = [{listed}]\n"
        f"collections = [{names}]\n"
    )
    return token, table


def keys_command(argv: Sequence[str]) -> int:
    """``bruno-edge keys new NAME --scopes read,write --collections docs``: print a new key
    (to give to its client) and the table to add to the keys file (which never holds the key)."""
    parser = argparse.ArgumentParser(prog="bruno-edge keys")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key and its keys-file table")
    new.add_argument("name")
    new.add_argument("--scopes", default="read", help="comma-separated: read, write, admin")
    new.add_argument("--collections", default="*", help="comma-separated names, or *")
    arguments = parser.parse_args(argv)
    scopes = [s.strip() for s in arguments.scopes.split(",") if s.strip()]
    collections = [c.strip() for c in arguments.collections.split(",") if c.strip()]
    table_for_check = {
        "hash": hash_line("check"),
        "scopes": scopes,
        "collections": collections,
    }
    if not re.fullmatch(KEY_NAME_PATTERN, arguments.name) or arguments.name in (
        ENV_KEY_NAME,
        OPEN_NAME,
    ):
        parser.error(f"{arguments.name!r} cannot name a key")
    try:
        entry = _KeyEntry.model_validate(table_for_check)
    except ValidationError as error:
        field, message = _describe(error)
        parser.error(f"--{field}: {message}")
    token, table = new_key(arguments.name, entry.scopes, entry.collections)
    print(f"# The key, shown once: give it to the client.\n{token}\n")
    print(f"# Add this to the keys file (BRUNO_API_KEYS_FILE):\n{table}", end="")
    sys.stdout.flush()
    return 0
