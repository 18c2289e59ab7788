"""What URL jobs fetch: the address policy and the fetcher that keeps to it and to the limits.

fetcher = UrlFetcher(AddressPolicy.parse(settings.fetch_allowed_networks), limits)
page = await fetcher.fetch("https://wiki.home.arpa/ups")
"""

from __future__ import annotations

from bruno_retrieval.fetching.addresses import AddressPolicy, embedded_ipv4, is_public
from bruno_retrieval.fetching.fetcher import (
    MAX_REDIRECTS,
    AddressRefused,
    FetchedPage,
    FetchFailed,
    FetchLimits,
    FetchRefused,
    FetchTooSlow,
    Resolver,
    UrlFetcher,
)

__all__ = [
    "MAX_REDIRECTS",
    "AddressPolicy",
    "AddressRefused",
    "FetchFailed",
    "FetchLimits",
    "FetchRefused",
    "FetchTooSlow",
    "FetchedPage",
    "Resolver",
    "UrlFetcher",
    "embedded_ipv4",
    "is_public",
]
