"""Read what a pipeline would ask the Dagger engine, without an engine.

The Dagger SDK is lazy: ``client.container().from_("python").with_exec([...])`` only records a
chain of GraphQL field selections; nothing is sent until a coroutine such as ``sync()`` is
awaited. :func:`capture` reads that recorded chain back as a :class:`Query`, and
:func:`offline_client` gives a client whose connection refuses to reach an engine, so
building a pipeline under test can never start one::

    client = offline_client()
    query = capture(lint(client, source(client, repo_root)))
    assert ["uv", "run", "ruff", "check", "."] in query.execs()

This reads the SDK's query builder (``Type._ctx.selections``), the same seam the SDK's own
tests use; ``dagger-io`` is pinned in uv.lock, and the tests of this package fail loudly if a
new SDK version moves it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import dagger
from dagger.client._session import BaseConnection
from dagger.client.base import Type

if TYPE_CHECKING:
    from dagger.client._session import ClientSession

__all__ = ["Call", "EngineRequiredError", "OfflineConnection", "Query", "capture", "offline_client"]


class EngineRequiredError(RuntimeError):
    """Raised when code under an offline client tries to talk to a Dagger engine."""


class OfflineConnection(BaseConnection):
    """A connection with no engine behind it: every attempt to use it is counted and refused."""

    def __init__(self) -> None:
        self.attempts = 0

    @property
    def session(self) -> ClientSession:
        self.attempts += 1
        msg = "this client is offline: awaiting a Dagger query needs `dagger run`"
        raise EngineRequiredError(msg)

    @session.setter
    def session(self, _value: ClientSession) -> NoReturn:
        msg = "an offline connection cannot be given a session"
        raise EngineRequiredError(msg)


def offline_client(connection: OfflineConnection | None = None) -> dagger.Client:
    """A Dagger client that builds queries but can never send one."""
    client: dagger.Client = dagger.Client.from_connection(connection or OfflineConnection())
    return client


@dataclass(frozen=True, slots=True)
class Call:
    """One field selection: ``withExec(args: [...])`` is ``Call("withExec", {"args": [...]})``.

    Arguments are JSON-like values as the SDK will send them; an argument that is itself a
    Dagger object (a cache volume, a directory) is the :class:`Query` that produces it,
    where the engine would receive that object's ID.
    """

    type_name: str
    field: str
    args: Mapping[str, object]

    def __str__(self) -> str:
        if not self.args:
            return self.field
        rendered = ", ".join(f"{name}: {_render(value)}" for name, value in self.args.items())
        return f"{self.field}({rendered})"


@dataclass(frozen=True, slots=True)
class Query:
    """The chain of selections behind one lazy Dagger object, root field first."""

    calls: tuple[Call, ...]

    def fields(self) -> list[str]:
        """The selected field names in order, e.g. ``["container", "from", "withExec"]``."""
        return [call.field for call in self.calls]

    def find(self, field_name: str) -> list[Call]:
        """Every selection of ``field_name`` in this chain, in order."""
        return [call for call in self.calls if call.field == field_name]

    def nested(self, field_name: str) -> list[Call]:
        """Every selection of ``field_name`` here or in the queries behind object arguments
        (a bound service's container, a mounted tarball's image), depth first."""
        found: list[Call] = []
        for call in self.calls:
            for value in call.args.values():
                for query in _queries(value):
                    found += query.nested(field_name)
            if call.field == field_name:
                found.append(call)
        return found

    def execs(self) -> list[list[str]]:
        """The argv of every ``withExec`` in this chain, in order."""
        return [_strings(call.args["args"]) for call in self.find("withExec")]

    def __str__(self) -> str:
        return ".".join(str(call) for call in self.calls)


def capture(obj: Type) -> Query:
    """The query chain ``obj`` stands for; nothing is sent anywhere."""
    # The SDK's query builder: one Field(type_name, name, args) per selection, root first.
    selections = obj._ctx.selections
    return Query(
        tuple(
            Call(sel.type_name, sel.name, {k: _value(v) for k, v in sel.args.items()})
            for sel in selections
        )
    )


def _value(value: object) -> object:
    if isinstance(value, Type):
        return capture(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


def _queries(value: object) -> list[Query]:
    if isinstance(value, Query):
        return [value]
    if isinstance(value, Mapping):
        return [q for v in value.values() for q in _queries(v)]
    if isinstance(value, list):
        return [q for v in value for q in _queries(v)]
    return []


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        msg = f"expected a list of strings, got {value!r}"
        raise TypeError(msg)
    return list(value)


def _render(value: object) -> str:
    if isinstance(value, Query):
        return str(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {_render(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return json.dumps(value)
