"""Fetching a URL of a URL job, within limits, from an address the policy allows.

    fetcher = UrlFetcher(AddressPolicy.parse(["192.168.1.0/24"]), extraction_limits)
    page = await fetcher.fetch("http://192.168.1.20/wiki/ups")
    page.url, page.document.title, page.document.segments

Every connection, the first and each redirect's (at most :data:`MAX_REDIRECTS`), resolves the
host, checks every address against the :class:`AddressPolicy` and connects to an address it
checked: the name is not looked up a second time, so a name that answers differently the next
time (DNS rebinding) cannot slip past the check. TLS still names the host (SNI, certificate)
and so does the ``Host`` header. Proxies from the environment are ignored: a proxy would make
the connection the check did not see.

The content type decides the reader (HTML, PDF, DOCX, Markdown, text; a missing or generic
``application/octet-stream`` type leaves it to the URL's file name); anything else is refused
before the body is read. The body is read up to the document limits of its kind and no further.

A compressed body is decoded here, not by httpx (which decodes each chunk read whole through
every ``Content-Encoding`` layer, so a few hundred bytes of stacked gzip grow into hundreds of
MiB before a size check sees them): the fetcher asks for ``gzip, deflate`` only, reads the bytes
as they came, accepts at most one gzip or deflate layer (anything else is refused for good) and
decompresses incrementally, never more than the limit plus one byte. A gzip layer may be several
members one after another (valid gzip): all are decoded, together within the limit. The bytes
read and the bytes decoded are each held to the limit; a compressed body that ends inside its
stream was cut short and is not read as a document.

What may pass is a :class:`FetchFailed`, which a job tries again (timeouts, a connection refused
or reset or a compressed body cut short, a host whose name server did not answer, a 5xx, 408 or
429 status, with the wait a 429's or 503's ``Retry-After`` asked for); what would fail
the same way again is not: a refusal (:class:`FetchRefused`: other 4xx, a redirect loop, a
certificate that does not verify, a host that does not exist, an encoding not read) or a URL
that took longer than the total time limit (:class:`FetchTooSlow`: a server that slow will be
as slow again, and each attempt would cost the whole limit).
Whatever goes wrong is a :class:`~bruno_core.BrunoError` whose detail says what, for the job's
per-document errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import PurePosixPath

import httpcore
import httpx

from bruno_core import InvalidInput, LimitExceeded, Unavailable
from bruno_core.contract import MAX_URL_CHARS
from bruno_core.retry_after import retry_after_seconds
from bruno_extract import (
    BINARY_SUFFIXES,
    Document,
    ExtractionLimits,
    UnreadableDocument,
    UnsupportedMediaType,
    extract,
    kind_of,
)
from bruno_retrieval.fetching.addresses import AddressPolicy, IPAddress

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
USER_AGENT = "agent-bruno (URL ingest job)"
_GENERIC_MEDIA_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

#: Resolves a host and port to its addresses (a seam for tests: a name that answers anything).
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class AddressRefused(InvalidInput):
    """The URL's host resolves only to addresses the policy refuses."""


class FetchFailed(Unavailable):
    """The URL could not be fetched for now: no answer, too slow, a server error (5xx, 408,
    429). A job tries such a document again later (:mod:`bruno_retrieval.jobs.retries`), not
    before ``retry_after_seconds`` when the server said how long to wait (a 429 or 503 with
    ``Retry-After``)."""

    def __init__(self, detail: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class FetchRefused(InvalidInput):
    """The URL's server refused it for good (a 4xx status but 408 and 429), redirected it in a
    loop, answered in an encoding the fetcher does not read or with a certificate that does not
    verify, or its host does not exist: asking again would get the same answer, so a job does
    not."""


class FetchTooSlow(FetchFailed):
    """The URL took longer than the total time limit to fetch and read. Still ``Unavailable``
    (the server was slow, the request was not wrong), but a job does not try it again: a
    server that slow will be as slow again, and each attempt would cost the whole limit."""


# Statuses that may pass: a request timeout, too many requests, any server error.
_PASSING_STATUSES = frozenset({408, 429})
# The statuses whose Retry-After says how long the server wants to be left alone (RFC 9110
# also sends it with redirects, where it is no wait of the job's).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# The content codings read, and zlib's window bits for each (deflate is tried zlib-wrapped, as
# RFC 9110 says, then raw, as some servers send it).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_DEFLATE_WBITS = (zlib.MAX_WBITS, -zlib.MAX_WBITS)
_ENCODINGS = {"gzip": (_GZIP_WBITS,), "x-gzip": (_GZIP_WBITS,), "deflate": _DEFLATE_WBITS}
_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
ACCEPT_ENCODING = "gzip, deflate"
# getaddrinfo's answers that a name does not exist (not that its name server did not answer).
_NO_SUCH_HOST = frozenset(
    code
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if (code := getattr(socket, name, None)) is not None
)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` from the system's resolver, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv6 link-local address may carry a zone ("fe80::1%eth0"): the address is before it.
    found = (ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos)
    return list(dict.fromkeys(found))


@dataclasses.dataclass(frozen=True, slots=True)
class FetchLimits:
    """Time bounds on one URL: to connect, between bytes read, and in all (redirects,
    reading and extracting included)."""

    connect_seconds: float = 5.0
    read_seconds: float = 30.0
    total_seconds: float = 120.0


@dataclasses.dataclass(frozen=True, slots=True)
class FetchedPage:
    """A fetched URL read into a document; ``url`` is where it was found after redirects."""

    url: str
    document: Document


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that resolves, checks and connects to the checked address."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolve = resolver
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_HOST:
                raise FetchRefused(f"the host {host[:200]!r} does not exist") from error
            raise FetchFailed(f"the host {host[:200]!r} could not be resolved") from error
        except (OSError, TimeoutError) as error:
            raise FetchFailed(f"the host {host[:200]!r} could not be resolved") from error
        allowed = [address for address in addresses if self._policy.allows(host, address)]
        if not allowed:
            refused = ", ".join(str(address) for address in addresses[:4])
            raise AddressRefused(
                f"the host {host[:200]!r} resolves to {refused}, which is not a public address; "
                "an operator can allow it with BRUNO_FETCH_ALLOWED_NETWORKS"
            )
        return await self._network.connect_tcp(
            str(allowed[0]),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("a URL job connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through :class:`_CheckedNetwork`.

    httpx takes no network backend of its own; httpcore's pool, which it wraps, does (its
    documented extension point), so the pool is built here the way httpx builds it."""

    def __init__(self, network: _CheckedNetwork, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=16, network_backend=network
        )


def kind_of_response(content_type: str | None, url: httpx.URL) -> str:
    """The suffix of the reader for a response (see the module docstring)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    try:
        if media_type in _GENERIC_MEDIA_TYPES:
            return kind_of(PurePosixPath(url.path).name)
        return kind_of("", media_type)
    except UnsupportedMediaType:
        shown = media_type or "no content type"
        raise UnsupportedMediaType(
            f"answered with {shown[:100]!r}: only HTML, PDF, Word (DOCX), Markdown and plain "
            "text can be ingested"
        ) from None


class UrlFetcher:
    """Fetches the URLs of URL jobs (see the module docstring)."""

    def __init__(
        self,
        policy: AddressPolicy,
        extraction: ExtractionLimits,
        limits: FetchLimits | None = None,
        *,
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._extraction = extraction
        self._limits = limits or FetchLimits()
        transport = _CheckedTransport(
            _CheckedNetwork(policy, resolver), ssl_context or httpx.create_ssl_context()
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=httpx.Timeout(self._limits.read_seconds, connect=self._limits.connect_seconds),
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> FetchedPage:
        """``url`` fetched and read; a BrunoError saying why not otherwise."""
        total = self._limits.total_seconds
        try:
            async with asyncio.timeout(total):
                final_url, kind, body = await self._download(url)
                # Reading a PDF takes milliseconds a page: off the event loop.
                name = _file_name(final_url, kind)
                document = await asyncio.to_thread(extract, name, body, limits=self._extraction)
        except TimeoutError as error:
            raise FetchTooSlow(
                f"took longer than {total:g} s to fetch and read (BRUNO_FETCH_TIMEOUT_SECONDS); "
                "not tried again"
            ) from error
        except httpx.TooManyRedirects as error:
            raise FetchRefused(f"redirected more than {MAX_REDIRECTS} times") from error
        except httpx.TimeoutException as error:
            raise FetchFailed("timed out connecting or waiting for the answer") from error
        except httpx.UnsupportedProtocol as error:
            raise InvalidInput("redirected to a URL that is not http or https") from error
        except (httpx.NetworkError, httpx.RemoteProtocolError) as error:
            log.info("fetching a URL failed", extra={"url": url[:200]}, exc_info=True)
            if (verification := _certificate_error(error)) is not None:
                raise FetchRefused(
                    f"its TLS certificate could not be verified ({verification[:200]})"
                ) from error
            # Refused, reset, unreachable, or the server closed the connection mid-answer.
            raise FetchFailed(f"could not be fetched ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            log.info("fetching a URL failed", extra={"url": url[:200]}, exc_info=True)
            raise FetchRefused(f"could not be fetched ({type(error).__name__})") from error
        if not document.text.strip():
            raise UnreadableDocument(name, "empty", "holds no text")
        return FetchedPage(str(final_url), document)

    async def _download(self, url: str) -> tuple[httpx.URL, str, bytes]:
        async with self._client.stream("GET", url) as response:
            if not response.is_success:
                answered = f"answered {response.status_code} {response.reason_phrase}"
                if response.status_code >= 500 or response.status_code in _PASSING_STATUSES:
                    asked = None
                    if response.status_code in _RETRY_AFTER_STATUSES:
                        asked = retry_after_seconds(response.headers.get("retry-after"))
                    raise FetchFailed(answered, retry_after_seconds=asked)
                raise FetchRefused(answered)
            if len(str(response.url)) > MAX_URL_CHARS:
                raise InvalidInput(f"redirected to a URL longer than {MAX_URL_CHARS} characters")
            kind = kind_of_response(response.headers.get("content-type"), response.url)
            cap = (
                self._extraction.max_file_bytes
                if kind in BINARY_SUFFIXES
                else self._extraction.max_text_bytes
            )
            too_large = LimitExceeded(
                f"is larger than the limit of {cap} bytes; reading stopped there"
            )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise too_large
            decoder = _Decoder(response.headers.get("content-encoding", ""), cap)
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                # Stop reading past the limit, of what came or what it decodes to: the rest is
                # never downloaded, or never decompressed.
                if read > cap or not decoder.feed(chunk):
                    raise too_large
            return response.url, kind, decoder.finish()


class _Decoder:
    """A body's bytes as they came decoded through its one content coding (or none), never to
    more than ``cap + 1`` bytes; :class:`FetchRefused` for a coding that is not read or a body
    that is not in it.

    A gzip body may be several members one after another (RFC 1952; what ``cat a.gz b.gz``
    makes): each is decoded, all within the one limit, and zero bytes between or after them are
    padding, as ``gzip -d`` takes them; anything else after a member is not gzip. A deflate
    body is one stream (what follows its end is ignored, as before)."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _ENCODINGS):
            raise FetchRefused(
                f"answered in the content coding {content_encoding[:100]!r}: only one layer of "
                "gzip or deflate is read"
            )
        self.coding = codings[0] if codings else ""
        self._members = self.coding in _GZIP_CODINGS
        self._wbits = list(_ENCODINGS.get(self.coding, ()))
        self._zlib = zlib.decompressobj(self._wbits[0]) if self._wbits else None
        self._started = False
        self._cap = cap
        self.body = bytearray()

    def feed(self, data: bytes) -> bool:
        """Decode ``data``; False once the body is past the limit."""
        if self._zlib is None:
            self.body += data
            return len(self.body) <= self._cap
        while data:
            if self._zlib.eof:
                if not self._members:
                    break
                # Between gzip members: zero padding, then the next member's header.
                data = data.lstrip(b"\0")
                if not data:
                    break
                self._zlib = zlib.decompressobj(self._wbits[0])
            try:
                self.body += self._zlib.decompress(data, self._cap + 1 - len(self.body))
            except zlib.error as error:
                if self._started or len(self._wbits) < 2:
                    raise self._corrupt() from error
                # Not zlib-wrapped deflate: raw deflate, from the first byte again.
                self._wbits.pop(0)
                self._zlib = zlib.decompressobj(self._wbits[0])
                continue
            self._started = True
            if len(self.body) > self._cap:
                return False
            # What decompress held back for max_length (empty unless it stopped at the limit;
            # with its input all consumed, decompress has given all it can: no flush needed, and
            # flush's length is no bound), or what came after the member's end.
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        return True

    def finish(self) -> bytes:
        """The decoded body, once every byte came; :class:`FetchFailed` if it ended inside a
        compressed stream (the connection was cut: half a document is not one)."""
        if self._zlib is not None and self._started and not self._zlib.eof:
            raise FetchFailed(f"answered a {self.coding} body that ended before its end")
        return bytes(self.body)

    def _corrupt(self) -> FetchRefused:
        return FetchRefused(f"answered a body that is not valid {self.coding}")


def _certificate_error(error: BaseException) -> str | None:
    """What a TLS certificate verification failure behind ``error`` says, if it is one."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause.reason or cause)
        cause = cause.__cause__ or cause.__context__
    return None


def _file_name(url: httpx.URL, kind: str) -> str:
    """A file name for the extractor: the URL's last path segment (else its host) with the
    suffix of the reader the content type chose."""
    stem = PurePosixPath(url.path).stem or url.host or "page"
    return f"{stem[:200]}{kind}"
