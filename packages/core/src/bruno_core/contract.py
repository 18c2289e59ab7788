"""The public contract's fixed limits and identifier rules, in one place.

The edge validates requests against them and retrieval enforces them on what it stores, so
the two can never disagree about what a valid document, collection or conversation is. The
wire contract between the services stays ``proto/``; limits an operator may change
(``BRUNO_MAX_DOCUMENT_BYTES``, ``BRUNO_MAX_TOP_K`` …) are settings, not constants here.

    DOCUMENT_ID.check("docs/backups/restore.md")   # returned unchanged
    DOCUMENT_ID.check("../collections/default")    # InvalidInput
    Field(pattern=DOCUMENT_ID.pattern, max_length=DOCUMENT_ID.max_chars)  # the same rule, declared

One rule makes every identifier: one or more *segments* of letters, digits, ``.``, ``_``,
``:`` and ``-`` — only a document id may have several, joined by ``/`` — and no segment is
empty, ``.`` or ``..``. So an identifier can never address anything but itself when it is put
into a URL path or a file name: no segment a client or proxy would resolve away, no
whitespace or control character, nothing to quote. A collection name, which also names its
table (a directory or an object-store prefix), is further a lower-case segment without dots
(``name.N`` is how retrieval names a collection's shadow table during a reindex).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bruno_core.errors import InvalidInput

DEFAULT_COLLECTION = "default"

#: The owners a conversation stored before conversations had owners belongs to: the callers
#: that existed then, the edge's keys from ``BRUNO_API_KEYS`` (``api-key``) and an edge without
#: keys (``open``). A keys file cannot name a key so: these names are reserved.
OWNERS_BEFORE_OWNERSHIP = frozenset({"api-key", "open"})

# Fields of a stored document. These were the edge's limits (its OpenAPI document declares
# them) while retrieval accepted twice as much; no client could ever send retrieval more, so
# every stored document already meets them, and raising the public limits would have been a
# contract change no one asked for.
MAX_TITLE_CHARS = 500
MAX_SOURCE_CHARS = 2_000
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1_024

# Search filters: exact matches on source, title, document_id or a metadata key. A value may be
# compared with a source, the longest of those fields, so it may be as long as one.
MAX_FILTERS = 16
MAX_FILTER_VALUE_CHARS = MAX_SOURCE_CHARS
# The longest search query; a chat message is searched, so it can be no longer either.
MAX_QUERY_CHARS = 8_000

# The most pages a document read from a paged original (a PDF) may have: the highest page
# number a chunk may carry, and the most segments (one a page at most) its text may have.
MAX_DOCUMENT_PAGES = 100_000

# URL jobs: a fetched document's source is its URL, so a URL is no longer than a source; a
# list of URLs is one request body, so it is short enough to validate at once.
MAX_URL_CHARS = MAX_SOURCE_CHARS
MAX_JOB_URLS = 1_000

# Pages of the document listing: 0 (or nothing) asks for the default page size.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

# A segment that is neither "." nor "..": it starts with a character other than a dot, or with
# one dot and then another character, or with two dots and then at least one more. (Written
# without look-arounds: pydantic and FastAPI check patterns with Rust's regex engine.)
_SEGMENT = r"(?:[A-Za-z0-9_:-]|\.[A-Za-z0-9_:-]|\.\.[A-Za-z0-9._:-])[A-Za-z0-9._:-]*"


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """What one kind of identifier may be: ``pattern`` and at most ``max_chars`` characters.

    ``pattern`` is anchored and fit for a pydantic ``Field`` or a FastAPI parameter (which
    take the length separately, as ``max_length``); :meth:`check` applies both.
    """

    name: str
    pattern: str
    max_chars: int
    description: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def is_valid(self, value: str) -> bool:
        return len(value) <= self.max_chars and self._compiled.fullmatch(value) is not None

    def check(self, value: str) -> str:
        """``value`` when it follows the rule, else :class:`InvalidInput` saying the rule."""
        if not self.is_valid(value):
            raise InvalidInput(
                f"{self.name} {value[:80]!r} is not valid: it must be {self.description}"
            )
        return value


DOCUMENT_ID = IdentifierRule(
    name="document_id",
    pattern=rf"^{_SEGMENT}(?:/{_SEGMENT})*$",
    max_chars=200,
    description=(
        "1 to 200 characters: letters, digits, '.', '_', ':' and '-' in segments joined by "
        "'/', none of them empty, '.' or '..'"
    ),
)
CONVERSATION_ID = IdentifierRule(
    name="conversation_id",
    pattern=rf"^{_SEGMENT}$",
    max_chars=100,
    description="1 to 100 letters, digits, '.', '_', ':' or '-', and not '.' or '..'",
)
COLLECTION_NAME = IdentifierRule(
    name="collection",
    pattern=r"^[a-z0-9][a-z0-9_-]*$",
    max_chars=63,
    description=(
        "1 to 63 lower-case letters, digits, '_' and '-', starting with a letter or a digit"
    ),
)

_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._:/-]+")


def document_id_from_path(path: str, *, keep_end: bool = True) -> str:
    """A document id for a file at ``path`` (``/``-separated), following :data:`DOCUMENT_ID`.

    Runs of other characters become ``-``, empty segments go, a ``.`` or ``..`` segment becomes
    ``-`` or ``--``, and a path longer than the id limit keeps its end (the file's own name;
    ``keep_end=False`` keeps its start). Every path that gave a valid id before this rule gives
    the same id. A path with nothing left gives ``""``, which the caller refuses.

        document_id_from_path("docs/backups/restore notes.md")  # "docs/backups/restore-notes.md"
        document_id_from_path("..")                               # "--"
    """
    safe = _UNSAFE_ID_CHARACTERS.sub("-", path).strip("/")
    limit = DOCUMENT_ID.max_chars
    if len(safe) > limit:
        safe = safe[-limit:] if keep_end else safe[:limit]
    segments = (_dots_to_dashes(segment) for segment in safe.split("/") if segment)
    return "/".join(segments)


def _dots_to_dashes(segment: str) -> str:
    return "-" * len(segment) if segment in (".", "..") else segment


def content_hash(text: str) -> str:
    """The hash a document's text is stored and compared under (SHA-256 of its UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_fetch_url(url: str) -> str:
    """``url`` as given, if it is one the knowledge base may fetch: absolute ``http``/``https``
    with a host, no user name or password (credentials do not belong in a job record or a
    citation), at most :data:`MAX_URL_CHARS`; InvalidInput saying why otherwise. Which
    addresses it may reach is retrieval's decision, when it fetches.

        check_fetch_url("https://wiki.home.arpa/ups")   # returned unchanged
        check_fetch_url("file:///etc/passwd")          # InvalidInput
    """
    shown = url[:200]
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"{shown!r}…: a URL is at most {MAX_URL_CHARS} characters")
    if url != url.strip() or any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise InvalidInput(f"{shown!r} is not a URL: it holds white space or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- a port out of range or not a number raises here
    except ValueError as error:
        raise InvalidInput(f"{shown!r} is not a URL: {error}") from error
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"{shown!r}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise InvalidInput(f"{shown!r} names no host")
    if "@" in parts.netloc:
        raise InvalidInput(f"{shown!r}: a URL with a user name or password is not accepted")
    return url


def document_id_from_url(url: str) -> str:
    """The id of the document fetched from ``url``: its host, path and query as a path (the
    scheme and fragment left out, so the same page by http or https, or at another anchor, is
    one document, replaced when fetched again).

        document_id_from_url("https://wiki.home.arpa/ups/apc?v=2")  # "wiki.home.arpa/ups/apc-v-2"
    """
    parts = urlsplit(url)
    path = f"{parts.netloc.lower()}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return document_id_from_path(path, keep_end=False)
