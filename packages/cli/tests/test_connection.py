"""How the CLI reaches an edge: encoded URLs, and one clear line when it cannot (down, not
Bruno, the key refused), driven through the real command over real HTTP where it can be."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bruno_cli import run
from bruno_cli.connection import api_path
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
