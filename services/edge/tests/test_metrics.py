from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Edge


def sample_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


async def test_request_durations_are_labelled_by_route_template_and_status(edge: Edge) -> None:
    await edge.ingest("t", id="some/doc")
    await edge.client.delete("/api/v1/documents/some/doc")
    await edge.client.delete("/api/v1/documents/some/doc")

    text = (await edge.client.get("/metrics")).text

    counts = sample_lines(text, "http_request_duration_seconds_count")
    template = "/api/v1/documents/{document_id:path}"
    assert (
        f'http_request_duration_seconds_count{{method="DELETE",path="{template}",status="204"}} 1.0'
        in counts
    )
    assert (
        f'http_request_duration_seconds_count{{method="DELETE",path="{template}",status="404"}} 1.0'
        in counts
    )
    assert not any("some/doc" in line for line in counts)
    assert sample_lines(text, "http_request_duration_seconds_bucket")


async def test_unmatched_paths_share_one_label(edge: Edge) -> None:
    await edge.client.get("/scan/one")
    await edge.client.get("/scan/two")

    text = (await edge.client.get("/metrics")).text

    assert (
        'http_request_duration_seconds_count{method="GET",path="<unmatched>",status="404"} 2.0'
        in text
    )


async def test_rejected_bodies_are_counted_with_their_status(edge: Edge) -> None:
    await edge.client.post("/api/v1/search", content=b"x" * (edge.settings.max_request_bytes + 1))

    text = (await edge.client.get("/metrics")).text

    assert 'status="413"' in text


async def test_in_flight_gauge_and_chat_metrics_are_exposed(edge: Edge) -> None:
    await edge.ingest("hello there", id="greeting")  # with nothing relevant no model is asked
    await edge.client.post("/api/v1/chat", json={"message": "hello"})

    response = await edge.client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    # The scrape itself is in flight while the gauge is read.
    assert "http_requests_in_flight 1.0" in response.text
    assert 'bruno_chat_tokens_total{kind="completion"} 4.0' in response.text
    assert 'bruno_chat_answers_total{fallback="false"} 1.0' in response.text
    assert sample_lines(response.text, 'bruno_chat_stage_seconds_count{stage="retrieval"}')
