"""The keys file: named keys with scopes and collections, stored as hashes; a file the edge
cannot use stops it at start, naming the line; `bruno-edge keys new` makes a usable key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bruno_core.contract import OWNERS_BEFORE_OWNERSHIP
from bruno_edge import server
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import (
    ENV_KEY_NAME,
    OPEN_NAME,
    Keyring,
    KeysFileError,
    Scope,
    hash_line,
    keys_command,
    load_keys_file,
)

GOOD = f"""\
# the family's reader
[keys.family]
hash = "{hash_line("family-key")}"
scopes = ["read"]
collections = ["recipes", "docs"]

[keys.ingester]
hash = "{hash_line("ingester-key")}"
scopes = ["write", "read"]
collections = ["*"]
rate_limit = "5/minute"
concurrent_chats = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_a_keys_file_names_each_key_with_its_scopes_and_collections(tmp_path: Path) -> None:
    family, ingester = load_keys_file(write(tmp_path, GOOD))

    assert (family.name, family.scopes, family.collections) == (
        "family",
        frozenset({Scope.READ}),
        frozenset({"recipes", "docs"}),
    )
    assert (ingester.scopes, ingester.collections) == (frozenset({Scope.READ, Scope.WRITE}), None)
    assert (ingester.rate_limit, ingester.concurrent_chats) == ("5/minute", 1)


def test_a_token_is_found_by_its_hash_and_env_keys_are_all_powerful(tmp_path: Path) -> None:
    settings = EdgeSettings(api_keys="env-key", api_keys_file=write(tmp_path, GOOD))
    keyring = Keyring.from_settings(settings)

    found = keyring.find("family-key")
    env = keyring.find("env-key")

    assert found is not None
    assert found.name == "family"
    assert env is not None
    assert (env.name, env.scopes, env.collections) == (
        ENV_KEY_NAME,
        frozenset(Scope),
        None,
    )
    assert keyring.find("family-key ") is None
    assert keyring.find(hash_line("family-key")) is None


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ('[keys.a]\nhash = "sha256:00"\nscopes = [read]\n', 3, "not valid TOML"),
        (GOOD.replace('["read"]', '["read", "wrte"]'), 4, "unknown scope 'wrte'"),
        (GOOD.replace('rate_limit = "5/minute"', 'rate_limit = "often"'), 11, "often"),
        (GOOD.replace('"recipes", "docs"', '"recipes", "../etc"'), 5, "'../etc'"),
        (GOOD.replace(hash_line("family-key"), "sha256:abc"), 3, "64 lowercase hex"),
        (GOOD.replace("concurrent_chats = 1", "concurent_chats = 1"), 12, "concurent_chats"),
        (GOOD.replace("[keys.ingester]", '[keys."api-key"]'), 7, "must be 1-64"),
        (GOOD.replace(hash_line("ingester-key"), hash_line("family-key")), 7, "same hash"),
    ],
)
def test_a_bad_keys_file_is_refused_naming_the_line(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(KeysFileError) as refused:
        load_keys_file(path)

    message = str(refused.value)
    assert f"{path}:{line}" in message or f"line {line}" in message, message
    assert says in message


def test_the_edge_does_not_start_with_a_bad_keys_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace('["write", "read"]', '["write", "superuser"]'))
    monkeypatch.setenv("BRUNO_API_KEYS_FILE", str(path))

    with pytest.raises(SystemExit) as stopped:
        server.main([])

    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}:9" in err
    assert "unknown scope 'superuser'" in err


def test_keys_new_prints_a_key_and_the_table_that_admits_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keys_command(["new", "laptop", "--scopes", "read,write", "--collections", "docs"]) == 0

    lines = capsys.readouterr().out.splitlines()
    token = lines[1]
    table = "\n".join(lines[lines.index("[keys.laptop]") :]) + "\n"
    [record] = load_keys_file(write(tmp_path, table))
    assert token.startswith("bruno_")
    assert len(token) > 40
    assert token not in table
    assert (record.name, record.scopes, record.collections) == (
        "laptop",
        frozenset({Scope.READ, Scope.WRITE}),
        frozenset({"docs"}),
    )
    assert Keyring((record,)).find(token) == record


def test_keys_new_refuses_an_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        keys_command(["new", "laptop", "--scopes", "root"])

    assert "unknown scope 'root'" in capsys.readouterr().err


def test_the_callers_that_existed_before_owners_are_those_retrieval_gives_old_conversations() -> (
    None
):
    # Retrieval lets these names reach conversations stored before owners existed.
    assert {ENV_KEY_NAME, OPEN_NAME} == OWNERS_BEFORE_OWNERSHIP
