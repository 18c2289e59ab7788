"""Who is calling and what they may do: one API-key check for every public surface (``/api``,
``/v1``, ``/mcp``), answering a :class:`Caller` with the key's name, scopes and collections.

    caller = authenticate(settings, keyring, request.headers.get("authorization"))
    caller.require(Scope.WRITE)              # Forbidden (403) without the scope
    caller.check_collection("docs")          # NotFound (404) for a collection not its own

The routers depend on it through :func:`bruno_edge.api.deps.require_api_key`; the MCP endpoint,
which is a plain ASGI app, calls it itself (both through :class:`bruno_edge.admission.Gate`,
which adds the per-key rate limits and the per-address throttle of failed keys). A collection
outside the key's list is answered exactly as one that does not exist, so its name never
leaks. Every refusal is logged with the key's name, never the key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bruno_core import NotFound, Unauthenticated
from bruno_edge.config import EdgeSettings, is_loopback
from bruno_edge.keys import ALL_SCOPES, OPEN_NAME, KeyRecord, Keyring, Scope
from bruno_edge.refusals import Forbidden

log = logging.getLogger(__name__)

_SCHEME = "bearer"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a name for logs and ownership (never the key itself), what it
    may do and which collections it sees (None: every one)."""

    name: str
    scopes: frozenset[Scope] = ALL_SCOPES
    collections: frozenset[str] | None = None
    #: This key's own limits (None: the settings').
    rate_limit: str | None = None
    concurrent_chats: int | None = None

    @classmethod
    def of(cls, record: KeyRecord) -> Caller:
        return cls(
            name=record.name,
            scopes=record.scopes,
            collections=record.collections,
            rate_limit=record.rate_limit,
            concurrent_chats=record.concurrent_chats,
        )

    def require(self, scope: Scope) -> None:
        """Raise :class:`Forbidden` unless the key has ``scope``."""
        if scope not in self.scopes:
            refused(self.name, f"lacks the {scope.value} scope")
            raise Forbidden(f"this API key lacks the {scope.value!r} scope")

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def check_collection(self, collection: str, *, not_found: str | None = None) -> None:
        """Raise :class:`NotFound` for a collection the key does not see, worded as retrieval
        words an unknown one (``not_found`` where the route's own wording differs)."""
        if not self.sees(collection):
            refused(self.name, "asked for a collection outside its list")
            raise NotFound(not_found or f"collection {collection!r} not found")

    def visible(self, collections: Iterable[str]) -> list[str]:
        return [name for name in collections if self.sees(name)]


#: Every caller of an edge without keys (served on loopback only).
OPEN = Caller(OPEN_NAME)


def refused(name: str | None, why: str, **fields: object) -> None:
    """Log a refusal with the key's name (None: no valid key), never the key."""
    log.warning("request refused", extra={"key_name": name, "reason": why, **fields})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


def authenticate(settings: EdgeSettings, keyring: Keyring, authorization: str | None) -> Caller:
    """The caller behind ``authorization`` (the header's value); raises
    :class:`~bruno_core.Unauthenticated` for a missing or wrong key."""
    if settings.open_mode:
        if is_loopback(settings.edge_host):
            return OPEN
        # server.main refuses this configuration; an app built some other way fails closed.
        raise Unauthenticated("no API keys are configured and the edge is not on loopback")
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    record = keyring.find(token)
    if record is None:
        raise Unauthenticated("the API key is not valid")
    return Caller.of(record)
