"""How the CLI reaches an edge: encoded URLs, and one clear line when it cannot (down, not
Bruno, the key refused), driven through the real command over real HTTP where it can be."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bruno_cli import run
from bruno_cli.connection import BUSY_TRIES, MAX_RETRY_AFTER_SECONDS, api_path, busy_for
from bruno_cli.ingest import made_by_a_sync
from bruno_edge import EdgeSettings, create_app
from bruno_testing.loopback_app import LoopbackApp
from bruno_testing.system import free_port


async def bruno(*argv: str, transport: httpx.AsyncBaseTransport | None = None) -> tuple[int, str]:
    err = io.StringIO()
    code = await run(list(argv), transport=transport, out=io.StringIO(), err=err)
    return code, err.getvalue()


@pytest.fixture
async def web_page() -> AsyncIterator[str]:
    """A server on loopback that is not Bruno: a web UI answering every path with HTML."""

    async def page(request: Request) -> Response:
        return HTMLResponse("<html><body>Open WebUI</body></html>")

    app = Starlette(routes=[Route("/{path:path}", page, methods=["GET", "POST", "DELETE"])])
    async with LoopbackApp(app) as server:
        yield server.url


def test_each_segment_is_encoded_so_no_path_climbs_out() -> None:
    assert api_path("documents", "docs/backups/restore.md") == (
        "/api/v1/documents/docs%2Fbackups%2Frestore.md"
    )
    assert api_path("documents", "..") == "/api/v1/documents/%2E%2E"
    assert api_path("documents", ".") == "/api/v1/documents/%2E"
    planted = httpx.URL("http://edge" + api_path("documents", "../collections/default"))
    assert planted.raw_path == b"/api/v1/documents/..%2Fcollections%2Fdefault"
    assert api_path("collections", "a b?", "reindex") == "/api/v1/collections/a%20b%3F/reindex"


def test_only_ids_a_folder_sync_makes_count_as_made_by_a_sync() -> None:
    assert made_by_a_sync("runbooks/disk-full.md")
    assert made_by_a_sync("notes.txt")
    for planted in ("../collections/default", "..", "a/./b", "a//b", "/abs", "x y", ""):
        assert not made_by_a_sync(planted), planted


@pytest.mark.parametrize(
    "argv", [["collections"], ["ask", "hello?"], ["reindex", "homelab"], ["ingest", "DOCS"]]
)
async def test_a_server_that_is_not_bruno_is_said_in_one_line(
    web_page: str, tmp_path: Path, argv: list[str]
) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    argv = [str(tmp_path) if arg == "DOCS" else arg for arg in argv]

    code, err = await bruno(*argv, "--url", web_page)

    assert code == 1
    assert err.startswith(f"bruno: {web_page}/ does not look like an Agent Bruno edge")
    assert err.endswith("check BRUNO_URL or --url\n")
    assert err.count("\n") == 1


async def test_bruno_url_comes_from_the_environment(
    web_page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUNO_URL", web_page)

    code, err = await bruno("collections")

    assert code == 1
    assert web_page in err


async def test_an_edge_that_is_down_is_said_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code, err = await bruno("ask", "hello?", "--url", url)

    assert code == 1
    assert err.startswith(f"bruno: cannot reach {url}")
    assert err.endswith("is the edge running? Set BRUNO_URL or --url\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_a_refused_key_is_said_in_one_line(key: str | None) -> None:
    # The key is checked before any service is called: the edge app alone is enough.
    app = create_app(EdgeSettings(api_keys="right"))
    transport = httpx.ASGITransport(app)
    argv = ["collections", "--url", "http://edge"] + (["--api-key", key] if key else [])

    code, err = await bruno(*argv, transport=transport)

    assert code == 1
    assert err.startswith("bruno: the edge refused the API key (")
    assert err.endswith("); set BRUNO_API_KEY or --api-key\n")


class BusyEdge:
    """An edge on loopback that refuses the first ``busy`` requests of every path with
    ``status`` and ``headers``, then answers as Bruno would; it counts what it was asked."""

    def __init__(self, busy: int, status: int, headers: dict[str, str]) -> None:
        self.busy, self.status, self.headers = busy, status, headers
        self.requests = 0

    async def answer(self, request: Request) -> Response:
        self.requests += 1
        if self.requests <= self.busy:
            problem = {"title": "Too Many Requests", "detail": "slow down", "status": self.status}
            return JSONResponse(
                problem, self.status, self.headers, media_type="application/problem+json"
            )
        if request.url.path.endswith("/chat"):
            body = 'event: token\ndata: {"text": "Fine."}\n\nevent: done\ndata: {}\n\n'
            return Response(body, media_type="text/event-stream")
        return JSONResponse({"collections": []})


async def run_against(edge: BusyEdge, *argv: str) -> tuple[int, str]:
    app = Starlette(routes=[Route("/{path:path}", edge.answer, methods=["GET", "POST"])])
    async with LoopbackApp(app) as server:
        return await bruno(*argv, "--url", server.url)


@pytest.mark.parametrize("argv", [["collections"], ["ask", "hello?"]])
@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_edge_is_asked_again_after_its_retry_after(
    argv: list[str], status: int
) -> None:
    edge = BusyEdge(busy=2, status=status, headers={"Retry-After": "0"})

    code, err = await run_against(edge, *argv)

    assert (code, err) == (0, "")
    assert edge.requests == 3


@pytest.mark.parametrize("argv", [["collections"], ["ask", "hello?"]])
async def test_an_edge_busy_for_longer_than_the_tries_is_reported_in_one_line(
    argv: list[str],
) -> None:
    edge = BusyEdge(busy=100, status=429, headers={"Retry-After": "0"})

    code, err = await run_against(edge, *argv)

    assert code == 1
    assert err == "bruno: 429 Too Many Requests: slow down\n"
    assert edge.requests == BUSY_TRIES


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (503, {}),  # an outage, not a request to come back
        (429, {"Retry-After": str(int(MAX_RETRY_AFTER_SECONDS) + 1)}),  # too long to wait
        (500, {"Retry-After": "0"}),  # a failure, whatever it says
        (429, {"Retry-After": "soon"}),  # unreadable
    ],
)
@pytest.mark.parametrize("argv", [["collections"], ["ask", "hello?"]])
async def test_a_refusal_that_does_not_say_to_come_back_soon_is_not_repeated(
    argv: list[str], status: int, headers: dict[str, str]
) -> None:
    edge = BusyEdge(busy=1, status=status, headers=headers)

    code, _ = await run_against(edge, *argv)

    assert code == 1
    assert edge.requests == 1


def test_retry_after_may_be_an_http_date() -> None:
    request = httpx.Request("GET", "http://edge/")
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)

    waited = busy_for(httpx.Response(429, headers={"Retry-After": soon}, request=request))
    assert waited is not None
    assert 25 <= waited <= 30
    assert busy_for(httpx.Response(503, headers={"Retry-After": past}, request=request)) == 0


def test_retry_after_may_be_an_asctime_date_which_names_no_zone() -> None:
    request = httpx.Request("GET", "http://edge/")
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a %b %d %H:%M:%S %Y")

    waited = busy_for(httpx.Response(429, headers={"Retry-After": soon}, request=request))

    assert waited is not None
    assert 25 <= waited <= 30
