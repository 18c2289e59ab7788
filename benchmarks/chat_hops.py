"""Where a c=1 chat's time to first token goes, hop by hop, from timestamps on one clock.

    uv run python benchmarks/chat_hops.py [--chats 40] [--token-delay 0.02]

Starts the four services as processes (``bruno_testing.BrunoSystem``, the settings of
``benchmarks/overhead.py``) exporting their spans over OTLP to a receiver here that keeps each
span's start and end, and an Ollama stand-in that notes when each ``/api/chat`` arrives and when
its first token leaves. Then it asks ``--chats`` distinct questions one after another through
``POST /api/v1/chat`` (stream) and prints, per hop, the median milliseconds between:

client sends → edge receives (its request span) → edge calls retrieval's ``Search`` → retrieval
receives it → retrieval calls embedding → embedding answers → retrieval answers → edge calls
``Generate`` → generation receives it → the stand-in receives ``/api/chat`` → the stand-in sends
the first token → the edge has the first token (the done event's ``ttft_ms``) → the client
reads the first token event.

All times are the machine's wall clock (``time.time_ns``, the spans' clock). Spans are recorded
here, which costs each process some CPU (none is recorded when nothing exports them): the sum is
a little above the TTFT of ``overhead.py``, which records none. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from machine import footer, header
from restore_stack import KEY, MODEL, TOPICS, add_setting_option, restore_stack, settings
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.otlp_collector import OtlpCollector, ReceivedSpan
from bruno_testing.system import BrunoSystem


class _FirstTokenNoted(Response):
    """``inner`` as it is, noting when its first body chunk is sent."""

    def __init__(self, inner: Response, times: dict[str, int]) -> None:
        self.inner, self.times = inner, times

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting(message: Message) -> None:
            if message["type"] == "http.response.body" and "first_token" not in self.times:
                self.times["first_token"] = time.time_ns()
            await send(message)

        await self.inner(scope, receive, noting)


class TimedStandIn(OllamaStandIn):
    """The stand-in, noting when each ``/api/chat`` arrives and its first token leaves."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat_times: list[dict[str, int]] = []

    async def _chat(self, request: Request) -> Response:
        times = {"arrived": time.time_ns()}
        self.chat_times.append(times)
        return _FirstTokenNoted(await super()._chat(request), times)


@dataclass
class Chat:
    sent: int = 0
    first_token: int = 0
    timings: dict[str, float] = field(default_factory=dict)


async def ask(client: httpx.AsyncClient, question: str) -> Chat:
    chat = Chat(sent=time.time_ns())
    async with client.stream(
        "POST", "/api/v1/chat", json={"message": question, "stream": True}
    ) as response:
        response.raise_for_status()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            if not chat.first_token and event == "token":
                chat.first_token = time.time_ns()
            elif event == "error":
                raise RuntimeError("the edge answered with an error event")
            elif event == "done" and line.startswith("data: "):
                chat.timings = json.loads(line.removeprefix("data: "))["timings_ms"]
    return chat


def _one(spans: list[ReceivedSpan], service: str, name: str, kind: int) -> ReceivedSpan:
    found = [
        s
        for s in spans
        if s.service == f"bruno-{service}" and s.name.endswith(name) and s.kind == kind
    ]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} {service} spans named {name}")
    return found[0]


SERVER, CLIENT = 2, 3  # OTLP's SpanKind numbers


def hops(chat: Chat, spans: list[ReceivedSpan], standin: dict[str, int]) -> dict[str, float]:
    """Milliseconds of each hop of one chat, in order."""
    edge = _one(spans, "edge", "/api/v1/chat", SERVER)
    search = _one(spans, "edge", "/Search", CLIENT)
    searched = _one(spans, "retrieval", "/Search", SERVER)
    embed = _one(spans, "retrieval", "/Embed", CLIENT)
    embedded = _one(spans, "embedding", "/Embed", SERVER)
    generate = _one(spans, "edge", "/Generate", CLIENT)
    generating = _one(spans, "generation", "/Generate", SERVER)
    # The edge's clock of the done event starts just before it calls Search and stops
    # retrieval_ms when Search has answered: that anchors its ttft_ms on the spans' clock.
    prepared = search.end - chat.timings["retrieval_ms"] * 1e6
    edge_first = prepared + chat.timings["ttft_ms"] * 1e6
    points = [
        ("client → edge receives", chat.sent, edge.start),
        ("edge: intake → calls Search", edge.start, search.start),
        ("Search hop → retrieval receives", search.start, searched.start),
        ("retrieval: receives → calls Embed", searched.start, embed.start),
        ("Embed hop → embedding receives", embed.start, embedded.start),
        ("embedding: the model run", embedded.start, embedded.end),
        ("Embed answer → retrieval has it", embedded.end, embed.end),
        ("retrieval: the search, answers", embed.end, searched.end),
        ("Search answer → edge has it", searched.end, search.end),
        ("edge: passages → calls Generate", search.end, generate.start),
        ("Generate hop → generation receives", generate.start, generating.start),
        ("generation → stand-in receives /api/chat", generating.start, standin["arrived"]),
        ("stand-in: token delay", standin["arrived"], standin["first_token"]),
        ("first token: stand-in → edge", standin["first_token"], edge_first),
        ("first token: edge → client", edge_first, chat.first_token),
    ]
    # The stretch the edge's early Generate call overlaps, as one span of time.
    points.append(("(edge has the passages → stand-in receives)", search.end, standin["arrived"]))
    return {name: (end - start) / 1e6 for name, start, end in points}


async def run(system: BrunoSystem, receiver: OtlpCollector, standin: TimedStandIn, n: int) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=system.edge_url, headers=headers, timeout=60) as client:
        for warm in range(4):
            await ask(client, f"How does Velero warm {warm} the LanceDB volume?")
        await asyncio.sleep(1.0)  # the warm-up's spans are exported
        receiver.spans.clear()
        skipped = len(standin.chat_times)
        chats = []
        for number in range(n):
            topic = TOPICS[number % len(TOPICS)]
            chats.append(await ask(client, f"How does Velero {topic} the volume? ({number})"))
        await asyncio.sleep(2.0)  # every span exported (the batch is sent every 0.1 s)
    by_trace: dict[str, list[ReceivedSpan]] = {}
    for span in receiver.spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    traces = sorted(
        (spans for spans in by_trace.values() if any(s.service == "bruno-edge" for s in spans)),
        key=lambda spans: min(s.start for s in spans if s.service == "bruno-edge"),
    )
    if len(traces) != n:
        raise RuntimeError(f"{len(traces)} chat traces for {n} chats")
    rows = [
        hops(chat, spans, times)
        for chat, spans, times in zip(chats, traces, standin.chat_times[skipped:], strict=True)
    ]
    print(f"\n{n} sequential chats, median (p10-p90) ms per hop\n")
    print("| hop | p50 | p10-p90 |")
    print("|---|---|---|")
    for name in rows[0]:
        values = sorted(row[name] for row in rows)
        p10, p90 = values[len(values) // 10], values[(len(values) * 9) // 10]
        print(f"| {name} | {statistics.median(values):.2f} | {p10:.2f}-{p90:.2f} |")
    ttft = [(c.first_token - c.sent) / 1e6 for c in chats]
    delay = [(t["first_token"] - t["arrived"]) / 1e6 for t in standin.chat_times[skipped:]]
    added = [a - b for a, b in zip(ttft, delay, strict=True)]
    print(
        f"\nclient TTFT p50 {statistics.median(ttft):.2f} ms; less the stand-in's token delay "
        f"of each chat: p50 {statistics.median(added):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=40)
    parser.add_argument("--token-delay", type=float, default=0.02)
    add_setting_option(parser)
    args = parser.parse_args()
    print(header("chat hops"))
    standin = TimedStandIn(models=[MODEL], token_delay=args.token_delay, reply="It is [1].")
    with (
        InBackground(standin) as ollama,
        InBackground(OtlpCollector()) as receiver,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            "BRUNO_CONCURRENT_CHATS": "32",
            "BRUNO_OLLAMA_PARALLEL": "16",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **settings(args),
        }
        with restore_stack(Path(tmp), ollama.url, env) as system:
            asyncio.run(run(system, receiver, standin, args.chats))
    print(footer())


if __name__ == "__main__":
    main()
