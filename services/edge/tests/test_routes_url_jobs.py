"""``POST /api/v1/ingest-jobs`` with a JSON body of URLs: checked here, handed to retrieval as
they are (the fake job service records them; the real fetch is tested in retrieval and end to
end), refused whole with a 422 naming the first bad URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bruno_core.contract import MAX_JOB_URLS, MAX_URL_CHARS
from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_edge.keys import hash_line

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

PATH = "/api/v1/ingest-jobs"


async def test_urls_become_one_job_answered_at_once_each_url_once(edge: Edge) -> None:
    urls = ["https://wiki.example/ups", "http://docs.example/a.pdf", "https://wiki.example/ups"]

    response = await edge.client.post(PATH, json={"collection": "manuals", "urls": urls})

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"{PATH}/{job['id']}"
    assert (job["collection"], job["documents"]["total"]) == ("manuals", 2)
    assert edge.jobs.urls == ["https://wiki.example/ups", "http://docs.example/a.pdf"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://files.example/a.md", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https://user:secret@wiki.example/", "user name or password"),
        ("https:///no-host", "names no host"),
        ("http://wiki.example:99999/", "not a URL"),
        ("https://wiki.example/a b", "white space"),
        ("wiki.example/page", "only http and https"),
    ],
)
async def test_a_url_that_may_not_be_fetched_refuses_the_whole_request(
    edge: Edge, url: str, says: str
) -> None:
    response = await edge.client.post(PATH, json={"urls": ["https://ok.example/", url]})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert says in response.json()["detail"]
    assert edge.jobs.urls == []


@pytest.mark.parametrize(
    "body",
    [
        {"urls": []},
        {"urls": [f"https://wiki.example/{n}" for n in range(MAX_JOB_URLS + 1)]},
        {"urls": ["https://wiki.example/" + "a" * MAX_URL_CHARS]},
        {"urls": "https://wiki.example/"},
        {"urls": ["https://wiki.example/"], "extra": 1},
        {"collection": "Not A Name", "urls": ["https://wiki.example/"]},
    ],
    ids=["none", "too-many", "too-long", "not-a-list", "unknown-field", "bad-collection"],
)
async def test_a_body_out_of_bounds_is_a_422(edge: Edge, body: dict[str, Any]) -> None:
    response = await edge.client.post(PATH, json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert edge.jobs.urls == []


async def test_a_body_that_is_not_json_is_a_422(edge: Edge) -> None:
    response = await edge.client.post(
        PATH, content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE


async def test_a_write_key_submits_urls_into_its_collections_only(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[keys.writer-a]\nhash = "{hash_line("writer-a-secret")}"\n'
        'scopes = ["write"]\ncollections = ["a"]\n'
        f'[keys.reader]\nhash = "{hash_line("reader-secret")}"\n'
        'scopes = ["read"]\ncollections = ["*"]\n'
    )
    edge = await edge_factory(api_keys_file=keys, edge_host="0.0.0.0")
    body = {"collection": "b", "urls": ["https://wiki.example/"]}

    elsewhere = await edge.client.post(
        PATH, json=body, headers={"Authorization": "Bearer writer-a-secret"}
    )
    reading = await edge.client.post(
        PATH, json={**body, "collection": "a"}, headers={"Authorization": "Bearer reader-secret"}
    )
    own = await edge.client.post(
        PATH, json={**body, "collection": "a"}, headers={"Authorization": "Bearer writer-a-secret"}
    )

    assert elsewhere.status_code == 404
    assert reading.status_code == 403
    assert own.status_code == 202
    assert edge.jobs.urls == ["https://wiki.example/"]


async def test_the_openapi_document_declares_both_bodies(edge: Edge) -> None:
    document = (await edge.client.get("/openapi.json")).json()

    content = document["paths"][PATH]["post"]["requestBody"]["content"]

    assert set(content) == {"multipart/form-data", "application/json"}
    urls = content["application/json"]["schema"]["properties"]["urls"]
    assert (urls["minItems"], urls["maxItems"]) == (1, MAX_JOB_URLS)
    assert urls["items"]["maxLength"] == MAX_URL_CHARS
