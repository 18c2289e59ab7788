"""Who is calling: one API-key check for every public surface (``/api``, ``/v1``, ``/mcp``).

    caller = authenticate(settings, request.headers.get("authorization"))  # or Unauthenticated

The routers depend on it through :func:`bruno_edge.api.deps.require_api_key`; the MCP endpoint,
which is a plain ASGI app, calls it itself. What it answers, a :class:`Caller`, is the seam for
per-key names and scopes: today every configured key may do everything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

from bruno_core import Unauthenticated
from bruno_edge.config import EdgeSettings, is_loopback

_SCHEME = "bearer"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a name for logs (never the key itself)."""

    name: str


#: Every caller of an edge without keys (served on loopback only).
OPEN = Caller("open")
#: A caller with one of the configured keys, each of which may do everything.
KEY_HOLDER = Caller("api-key")


def key_matches(candidate: str, keys: Iterable[SecretStr]) -> bool:
    """Whether ``candidate`` is one of ``keys``, in time independent of where they differ."""
    # Digests make every comparison the same length; no early exit across keys either.
    digest = hashlib.sha256(candidate.encode()).digest()
    matched = False
    for key in keys:
        expected = hashlib.sha256(key.get_secret_value().encode()).digest()
        matched |= hmac.compare_digest(digest, expected)
    return matched


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


def authenticate(settings: EdgeSettings, authorization: str | None) -> Caller:
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
    if not key_matches(token, settings.api_keys):
        raise Unauthenticated("the API key is not valid")
    return KEY_HOLDER
