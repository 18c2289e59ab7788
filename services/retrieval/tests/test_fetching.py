"""URL jobs' fetching: which addresses are refused, and the fetcher against a real HTTP server
on loopback (pages of each kind, errors, limits, redirects, pinned connections)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
import trustme

from bruno_core import InvalidInput, LimitExceeded
from bruno_extract import ExtractionLimits, UnsupportedMediaType
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.fetching import (
    AddressPolicy,
    AddressRefused,
    FetchFailed,
    FetchLimits,
    FetchRefused,
    FetchTooSlow,
    UrlFetcher,
    is_public,
)
from bruno_retrieval.jobs.retries import is_transient
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.website import Page, Website, redirect

ip = ipaddress.ip_address


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "10.1.2.3",  # RFC 1918
        "172.16.0.1",
        "192.168.1.20",
        "169.254.169.254",  # link-local: the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.251",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "0.0.0.0",  # unspecified
        "::1",
        "::",
        "fe80::1",  # IPv6 link-local
        "fd12:3456::1",  # unique local
        "ff02::1",  # IPv6 multicast
        "2001:db8::1",  # documentation
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "64:ff9b:1::7f00:1",  # local-use NAT64 (RFC 8215): refused whatever it carries
        "64:ff9b:1::101:101",
        "::7f00:1",  # IPv4-compatible (deprecated): refused whatever it carries
        "::101:101",
        "::ffff:0:7f00:1",  # SIIT: refused whatever it carries
        "::ffff:0:101:101",
        "fec0::1",  # site-local (deprecated)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:2::1",  # benchmarking, inside the IETF protocol assignments 2001::/23
        "3fff::1",  # documentation (RFC 9637)
    ],
)
def test_addresses_that_are_not_on_the_public_internet_are_refused(address: str) -> None:
    assert not is_public(ip(address))
    assert not AddressPolicy().allows("example.org", ip(address))


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:1.1.1.1",
        "64:ff9b::101:101",  # NAT64 of 1.1.1.1
        "2002:101:101::1",  # 6to4 around 1.1.1.1
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().allows("example.org", ip(address))


# The IPv4 special-purpose blocks refused (RFC 6890, written out here, not read from the code).
SPECIAL_IPV4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


@pytest.mark.parametrize("block", SPECIAL_IPV4)
def test_each_special_ipv4_block_is_refused_from_its_first_address_to_its_last(
    block: str,
) -> None:
    network = ipaddress.IPv4Network(block)
    for address in (network.network_address, network.broadcast_address):
        assert not is_public(address), address
        assert not is_public(ipaddress.IPv6Address(f"::ffff:{address}")), address


@pytest.mark.parametrize(
    "address",
    [
        "1.0.0.0",  # after 0/8
        "9.255.255.255",  # around 10/8
        "11.0.0.0",
        "100.63.255.255",  # around 100.64/10
        "100.128.0.0",
        "126.255.255.255",  # around 127/8
        "128.0.0.0",
        "169.253.255.255",  # around 169.254/16
        "169.255.0.0",
        "172.15.255.255",  # around 172.16/12
        "172.32.0.0",
        "191.255.255.255",  # before 192.0.0/24
        "192.0.1.255",  # between 192.0.0/24 and 192.0.2/24
        "192.0.3.0",
        "192.88.98.255",  # around 192.88.99/24
        "192.88.100.0",
        "192.167.255.255",  # around 192.168/16
        "192.169.0.0",
        "198.17.255.255",  # around 198.18/15
        "198.20.0.0",
        "198.51.99.255",  # around 198.51.100/24
        "198.51.101.0",
        "203.0.112.255",  # around 203.0.113/24
        "203.0.114.0",
        "223.255.255.255",  # before 224/4
        "192.31.196.1",  # AS112, AMT: globally reachable in the registry
        "192.52.193.1",
        "192.175.48.1",
    ],
)
def test_the_addresses_next_to_each_special_ipv4_block_are_public(address: str) -> None:
    assert is_public(ip(address))


@pytest.mark.parametrize("address", ["192.0.0.9", "192.0.0.10"])
def test_the_pcp_and_turn_anycast_addresses_are_refused_on_every_python(address: str) -> None:
    # Global in the registry (and to ipaddress since Python 3.12.4), but no web server.
    assert not is_public(ip(address))


def test_an_allowed_network_admits_its_addresses_and_only_those() -> None:
    policy = AddressPolicy.parse(["192.168.1.0/24", "fd00::/8"])

    assert policy.allows("wiki", ip("192.168.1.20"))
    assert policy.allows("wiki", ip("::ffff:192.168.1.20"))  # the same host, mapped
    assert policy.allows("wiki", ip("fd12::1"))
    assert not policy.allows("wiki", ip("192.168.2.20"))
    assert not policy.allows("wiki", ip("127.0.0.1"))


def test_an_allowed_name_admits_its_host_and_a_leading_dot_every_name_under_it() -> None:
    policy = AddressPolicy.parse(["Wiki.Lan", ".home.arpa"])

    assert policy.allows("wiki.lan", ip("10.0.0.5"))
    assert policy.allows("WIKI.LAN.", ip("10.0.0.5"))
    assert policy.allows("nas.home.arpa", ip("10.0.0.6"))
    assert not policy.allows("home.arpa.evil.example", ip("10.0.0.6"))
    assert not policy.allows("other.lan", ip("10.0.0.5"))


@pytest.mark.parametrize("entry", ["not a name", "http://wiki.lan/", "10.0.0.0/33"])
def test_an_entry_that_is_neither_network_nor_name_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a network"):
        AddressPolicy.parse([entry])


def test_the_setting_is_a_comma_separated_list_checked_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRUNO_FETCH_ALLOWED_NETWORKS", "192.168.0.0/16, .home.arpa")
    policy = RetrievalSettings().fetch_policy
    assert policy.allows("nas.home.arpa", ip("10.0.0.1"))
    assert policy.allows("x", ip("192.168.7.7"))

    monkeypatch.setenv("BRUNO_FETCH_ALLOWED_NETWORKS", "192.168.0.0/16, wiki lan")
    with pytest.raises(ValueError, match="wiki lan"):
        RetrievalSettings()


# --- the fetcher ----------------------------------------------------------------------------

LIMITS = ExtractionLimits(max_file_bytes=200_000, max_text_bytes=4_000)
HTML = b"<html><head><title>UPS runbook</title></head><body><h1>Battery</h1><p>Swap it.</p>"
MARKDOWN = b"# Packed\n\nThe NAS wakes at 06:00."
GZIP = {"Content-Encoding": "gzip"}
DEFLATE = {"Content-Encoding": "deflate"}
# About 64 KiB on the wire, 64 MiB decoded: one gzip layer, past any limit.
BOMB = gzip.compress(b"\0" * (64 << 20), 9)
# 48 KiB on the wire, 32 MiB decoded: 512 gzip members of 64 KiB, each within the limit.
MEMBER_BOMB = gzip.compress(b"\0" * (64 << 10), 9) * 512
# A page as three gzip members, split mid-line.
MEMBERS = b"".join(gzip.compress(part) for part in (MARKDOWN[:5], MARKDOWN[5:20], MARKDOWN[20:]))


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    pdf = pdf_bytes(
        [
            PdfPage(heading="Manual", paragraphs=["The fan runs at 1200 rpm."]),
            PdfPage(heading="Wiring", paragraphs=["The relay takes 24 volts."]),
        ]
    )
    pages = {
        "/ups.html": Page(HTML, "text/html; charset=utf-8"),
        "/manual.pdf": Page(pdf, "application/pdf"),
        "/notes.md": Page(b"# Notes\n\nThe NAS wakes at 06:00.", "text/markdown"),
        "/raw/notes.md": Page(b"# Raw\n\nServed as bytes.", "application/octet-stream"),
        "/readme": Page(b"Plain words.", "text/plain"),
        "/photo.png": Page(b"\x89PNG....", "image/png"),
        "/huge.txt": Page(b"x" * 10_000, "text/plain"),
        "/huge-streamed.txt": Page(b"x" * 10_000, "text/plain", streamed=True),
        # Declares its size and is refused on that alone, before a byte of the body is read.
        "/huge-declared.txt": Page(
            b"x", "text/plain", headers={"Content-Length": "10000"}, streamed=True
        ),
        "/empty.html": Page(b"<html><body> </body></html>", "text/html"),
        "/server-error": Page(b"oops", "text/plain", 500),
        "/busy": Page(b"", "text/plain", 429, {"Retry-After": "7"}),
        "/down": Page(b"", "text/plain", 503, {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}),
        # Retry-After counts only with a 429 or 503.
        "/broken": Page(b"", "text/plain", 500, {"Retry-After": "7"}),
        "/busy-unsaid": Page(b"", "text/plain", 429),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-notes": redirect("/notes.md", 301),
        "/to-ftp": redirect("ftp://example.org/file.md"),
        "/loop": redirect("/loop"),
        "/gzip.md": Page(gzip.compress(MARKDOWN), "text/markdown", headers=GZIP),
        "/deflate.md": Page(zlib.compress(MARKDOWN), "text/markdown", headers=DEFLATE),
        "/raw-deflate.md": Page(raw_deflate(MARKDOWN), "text/markdown", headers=DEFLATE),
        "/gzip-identity.md": Page(
            gzip.compress(MARKDOWN), "text/markdown", headers={"Content-Encoding": "identity, gzip"}
        ),
        # 497 bytes that decode to 4 MiB, then to 4 GiB: refused before the first layer.
        "/nested.txt": Page(
            gzip.compress(gzip.compress(b"a" * (4 << 20))),
            "text/plain",
            headers={"Content-Encoding": "gzip, gzip"},
        ),
        "/brotli.txt": Page(b"\x1b\x00", "text/plain", headers={"Content-Encoding": "br"}),
        "/not-gzip.txt": Page(b"plain words", "text/plain", headers=GZIP),
        # Streamed: no Content-Length to refuse it by before its body is read.
        "/bomb.txt": Page(BOMB, "text/plain", headers=GZIP, streamed=True),
        "/member-bomb.txt": Page(MEMBER_BOMB, "text/plain", headers=GZIP, streamed=True),
        # Several gzip members one after another, with zero padding between and after.
        "/members.md": Page(MEMBERS, "text/markdown", headers=GZIP),
        "/members-padded.md": Page(
            gzip.compress(MARKDOWN[:10]) + b"\0" * 3 + gzip.compress(MARKDOWN[10:]) + b"\0",
            "text/markdown",
            headers=GZIP,
            streamed=True,
        ),
        # Each member within the limit of 4,000 bytes, together past it.
        "/members-too-large.txt": Page(
            gzip.compress(b"x" * 3_000) * 2, "text/plain", headers=GZIP, streamed=True
        ),
        "/member-then-junk.md": Page(
            gzip.compress(MARKDOWN) + b"<html>", "text/markdown", headers=GZIP
        ),
        # The last bytes of its stream and its trailer never came.
        "/cut-gzip.md": Page(gzip.compress(MARKDOWN)[:-10], "text/markdown", headers=GZIP),
    }
    with Website(pages) as website:
        yield website


@pytest.fixture
async def fetcher() -> AsyncIterator[UrlFetcher]:
    fetcher = UrlFetcher(AddressPolicy.parse(["127.0.0.1/32"]), LIMITS)
    yield fetcher
    await fetcher.aclose()


async def test_an_html_page_becomes_its_visible_text_under_its_own_title(
    site: Website, fetcher: UrlFetcher
) -> None:
    page = await fetcher.fetch(site.url("/ups.html"))

    assert page.url == site.url("/ups.html")
    assert page.document.title == "UPS runbook"
    assert page.document.text == "# Battery\n\nSwap it."


async def test_a_pdf_keeps_its_pages(site: Website, fetcher: UrlFetcher) -> None:
    page = await fetcher.fetch(site.url("/manual.pdf"))

    pages = {segment.page for segment in page.document.segments}
    assert pages == {1, 2}
    assert "24 volts" in page.document.text


async def test_markdown_and_plain_text_are_stored_as_they_are(
    site: Website, fetcher: UrlFetcher
) -> None:
    notes = await fetcher.fetch(site.url("/notes.md"))
    readme = await fetcher.fetch(site.url("/readme"))

    assert notes.document.title == "Notes"
    assert notes.document.text == "# Notes\n\nThe NAS wakes at 06:00."
    assert readme.document.text == "Plain words."


async def test_a_generic_content_type_leaves_the_kind_to_the_file_name(
    site: Website, fetcher: UrlFetcher
) -> None:
    page = await fetcher.fetch(site.url("/raw/notes.md"))

    assert page.document.title == "Raw"


async def test_an_unsupported_content_type_is_refused_naming_it(
    site: Website, fetcher: UrlFetcher
) -> None:
    with pytest.raises(UnsupportedMediaType, match="'image/png'"):
        await fetcher.fetch(site.url("/photo.png"))


@pytest.mark.parametrize("path", ["/huge.txt", "/huge-streamed.txt", "/huge-declared.txt"])
async def test_a_body_past_the_limit_of_its_kind_is_refused(
    site: Website, fetcher: UrlFetcher, path: str
) -> None:
    # Declared too large, or found so while streaming: either way it stops at the limit.
    with pytest.raises(LimitExceeded, match="limit of 4000 bytes; reading stopped there"):
        await fetcher.fetch(site.url(path))


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        # A job does not ask again for what the server refused for good ...
        ("/missing", FetchRefused, "answered 404 Not Found"),
        # ... and does for what may pass (FetchFailed is Unavailable: jobs retry it).
        ("/server-error", FetchFailed, "500"),
    ],
)
async def test_an_error_status_is_a_failure_naming_it_transient_only_if_it_may_pass(
    site: Website, fetcher: UrlFetcher, path: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        await fetcher.fetch(site.url(path))
    assert is_transient(raised.value) is (error is FetchFailed)


@pytest.mark.parametrize(
    ("path", "asked"), [("/busy", 7.0), ("/down", 0.0), ("/broken", None), ("/busy-unsaid", None)]
)
async def test_a_busy_server_s_retry_after_goes_with_its_failure(
    site: Website, fetcher: UrlFetcher, path: str, asked: float | None
) -> None:
    with pytest.raises(FetchFailed) as raised:
        await fetcher.fetch(site.url(path))
    assert raised.value.retry_after_seconds == asked


async def test_a_page_with_no_text_is_refused(site: Website, fetcher: UrlFetcher) -> None:
    with pytest.raises(InvalidInput, match="holds no text"):
        await fetcher.fetch(site.url("/empty.html"))


async def test_a_redirect_is_followed_and_the_document_is_where_it_ended(
    site: Website, fetcher: UrlFetcher
) -> None:
    page = await fetcher.fetch(site.url("/to-notes"))

    assert page.url == site.url("/notes.md")


async def test_a_redirect_to_a_refused_address_is_refused_before_connecting(
    site: Website, fetcher: UrlFetcher
) -> None:
    with pytest.raises(AddressRefused, match=r"169\.254\.169\.254.*BRUNO_FETCH_ALLOWED_NETWORKS"):
        await fetcher.fetch(site.url("/to-metadata"))


async def test_a_redirect_to_another_scheme_is_refused(site: Website, fetcher: UrlFetcher) -> None:
    with pytest.raises(InvalidInput, match="not http or https"):
        await fetcher.fetch(site.url("/to-ftp"))


async def test_redirects_are_followed_five_times_at_most(
    site: Website, fetcher: UrlFetcher
) -> None:
    before = len(site.requests)

    with pytest.raises(FetchRefused, match="more than 5 times"):
        await fetcher.fetch(site.url("/loop"))

    assert site.requests[before:] == [("/loop", f"127.0.0.1:{site.port}")] * 6


async def test_without_an_allowed_network_loopback_is_refused(site: Website) -> None:
    fetcher = UrlFetcher(AddressPolicy(), LIMITS)
    try:
        with pytest.raises(AddressRefused, match=r"resolves to 127\.0\.0\.1"):
            await fetcher.fetch(site.url("/notes.md"))
        with pytest.raises(AddressRefused):
            await fetcher.fetch(site.url("/notes.md", host="localhost"))
    finally:
        await fetcher.aclose()


async def test_the_connection_goes_to_the_address_checked_and_names_the_host(
    site: Website,
) -> None:
    # A name that resolves to loopback the first time and anywhere else after (rebinding):
    # the fetcher looks it up once per connection and connects to what it checked.
    answers = [[ip("127.0.0.1")], [ip("10.9.9.9")]]

    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        assert host == "wiki.test"
        return answers.pop(0)

    fetcher = UrlFetcher(AddressPolicy.parse(["127.0.0.1/32"]), LIMITS, resolver=resolver)
    try:
        page = await fetcher.fetch(site.url("/notes.md", host="wiki.test"))
    finally:
        await fetcher.aclose()

    assert page.url == site.url("/notes.md", host="wiki.test")
    assert site.requests[-1] == ("/notes.md", f"wiki.test:{site.port}")
    assert answers == [[ip("10.9.9.9")]]  # one lookup, one connection


async def test_an_allowed_name_is_fetched_whatever_it_resolves_to(site: Website) -> None:
    fetcher = UrlFetcher(AddressPolicy.parse(["localhost"]), LIMITS)
    try:
        page = await fetcher.fetch(site.url("/notes.md", host="localhost"))
    finally:
        await fetcher.aclose()

    assert page.document.title == "Notes"


# --- compressed bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/gzip.md",
        "/deflate.md",
        "/raw-deflate.md",
        "/gzip-identity.md",
        "/members.md",
        "/members-padded.md",
    ],
)
async def test_a_gzip_or_deflate_body_is_decoded(
    site: Website, fetcher: UrlFetcher, path: str
) -> None:
    page = await fetcher.fetch(site.url(path))

    assert page.document.text == MARKDOWN.decode()


async def test_only_the_encodings_read_are_asked_for(site: Website, fetcher: UrlFetcher) -> None:
    await fetcher.fetch(site.url("/notes.md"))

    assert site.headers[-1]["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/nested.txt", "'gzip, gzip': only one layer of gzip or deflate is read"),
        ("/brotli.txt", "'br': only one layer"),
        ("/not-gzip.txt", "not valid gzip"),
        ("/member-then-junk.md", "not valid gzip"),
    ],
)
async def test_stacked_unknown_or_broken_encodings_are_refused_for_good(
    site: Website, fetcher: UrlFetcher, path: str, message: str
) -> None:
    with pytest.raises(FetchRefused, match=message) as raised:
        await fetcher.fetch(site.url(path))
    assert not is_transient(raised.value)


async def test_gzip_members_are_held_to_the_limit_together(
    site: Website, fetcher: UrlFetcher
) -> None:
    with pytest.raises(LimitExceeded, match="limit of 4000 bytes"):
        await fetcher.fetch(site.url("/members-too-large.txt"))


async def test_a_compressed_body_cut_short_is_a_failure_that_may_pass(
    site: Website, fetcher: UrlFetcher
) -> None:
    with pytest.raises(FetchFailed, match="gzip body that ended before its end") as raised:
        await fetcher.fetch(site.url("/cut-gzip.md"))
    assert is_transient(raised.value)


@pytest.mark.parametrize("path", ["/bomb.txt", "/member-bomb.txt"])
async def test_a_gzip_bomb_is_refused_without_decoding_past_the_limit(
    site: Website, path: str
) -> None:
    # A limit above the bomb's 64 KiB on the wire: only the decoding's own bound stops it.
    # The decoded body is never built: the memory the fetch takes at its peak stays far below
    # the 64 MiB it decodes to (httpx's own decoding, or decompressing a chunk read without a
    # bound, grows it by a whole chunk's worth of decoded bytes before a size check sees them).
    limits = ExtractionLimits(max_file_bytes=200_000, max_text_bytes=100_000)
    fetcher = UrlFetcher(AddressPolicy.parse(["127.0.0.1/32"]), limits)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="limit of 100000 bytes"):
            await fetcher.fetch(site.url(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await fetcher.aclose()

    assert peak < 4 << 20


# --- what is tried again ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_site(certificate_authority: trustme.CA) -> Iterator[Website]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    with Website(
        {"/notes.md": Page(b"# Secure\n\nOver TLS.", "text/markdown")}, tls=context
    ) as site:
        yield site


async def test_a_certificate_that_does_not_verify_is_refused_for_good(
    tls_site: Website, fetcher: UrlFetcher, certificate_authority: trustme.CA
) -> None:
    with pytest.raises(FetchRefused, match="TLS certificate could not be verified") as raised:
        await fetcher.fetch(tls_site.url("/notes.md"))
    assert not is_transient(raised.value)

    # The same server, its authority trusted: it was the certificate.
    trusting = ssl.create_default_context()
    certificate_authority.configure_trust(trusting)
    verified = UrlFetcher(AddressPolicy.parse(["127.0.0.1/32"]), LIMITS, ssl_context=trusting)
    try:
        assert (await verified.fetch(tls_site.url("/notes.md"))).document.title == "Secure"
    finally:
        await verified.aclose()


async def test_a_connection_refused_is_tried_again(fetcher: UrlFetcher) -> None:
    with socket.socket() as closed:  # a port that was free a moment ago, nobody listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    with pytest.raises(FetchFailed, match="could not be fetched") as raised:
        await fetcher.fetch(f"http://127.0.0.1:{port}/notes.md")
    assert is_transient(raised.value)


@pytest.mark.parametrize(
    ("code", "error", "message", "transient"),
    [
        (socket.EAI_NONAME, FetchRefused, "does not exist", False),
        (socket.EAI_AGAIN, FetchFailed, "could not be resolved", True),
    ],
)
async def test_a_host_that_does_not_exist_is_refused_and_one_not_resolved_for_now_tried_again(
    site: Website, code: int, error: type[Exception], message: str, transient: bool
) -> None:
    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        raise socket.gaierror(code, "resolver says no")

    fetcher = UrlFetcher(AddressPolicy(), LIMITS, resolver=resolver)
    try:
        with pytest.raises(error, match=message) as raised:
            await fetcher.fetch(site.url("/notes.md", host="wiki.test"))
    finally:
        await fetcher.aclose()
    assert is_transient(raised.value) is transient


async def test_a_url_that_takes_too_long_in_all_fails_and_is_not_tried_again(site: Website) -> None:
    async def slow(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        await asyncio.sleep(5)
        return [ip("127.0.0.1")]

    fetcher = UrlFetcher(
        AddressPolicy.parse(["127.0.0.1/32"]),
        LIMITS,
        FetchLimits(connect_seconds=30, total_seconds=0.2),
        resolver=slow,
    )
    try:
        too_slow = r"longer than 0\.2 s .*BRUNO_FETCH_TIMEOUT_SECONDS"
        with pytest.raises(FetchTooSlow, match=too_slow) as raised:
            await fetcher.fetch(site.url("/notes.md"))
    finally:
        await fetcher.aclose()
    assert not is_transient(raised.value)
