"""Retrieval quality as a deployment gate: ask an edge a golden question set and fail when the
answers stop citing the documents they should.

``check --url URL --questions FILE`` asks every question once (``POST /api/v1/chat``, not
streamed) and exits 1 when any answer does not cite one of its expected document ids.
``serve --port PORT --questions FILE`` is Flagger's pre-rollout webhook: each ``POST`` runs the
check against the canary (``metadata.url`` of the webhook, else ``--default-url``) and answers
200 when every question passes, 412 with the failures otherwise; ``GET /healthz`` is its probe.

The questions file is JSON: ``[{"question": …, "expect_any": [document ids], "collection": …}]``.
The API key is the first of ``BRUNO_API_KEYS`` (the edge's own Secret). Standard library only,
so it runs in the edge image. See docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_QUESTIONS = 50
MAX_WEBHOOK_BYTES = 64 * 1024
TIMEOUT_SECONDS = 60.0


class GoldenError(Exception):
    """The question set is unusable (not the edge answering badly)."""


@dataclass(frozen=True)
class Golden:
    question: str
    expect_any: tuple[str, ...]
    collection: str = "default"


@dataclass(frozen=True)
class Outcome:
    question: str
    passed: bool
    cited: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "passed": self.passed,
            "cited": list(self.cited),
            "detail": self.detail,
        }


def load_questions(path: Path) -> list[Golden]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GoldenError(f"cannot read {path}: {error}") from error
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_QUESTIONS:
        raise GoldenError(f"{path}: expected a list of 1 to {MAX_QUESTIONS} questions")
    questions = []
    for number, item in enumerate(raw, start=1):
        expect = item.get("expect_any") if isinstance(item, dict) else None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("question"), str)
            or not item["question"].strip()
            or not isinstance(expect, list)
            or not expect
            or not all(isinstance(e, str) and e for e in expect)
        ):
            raise GoldenError(f"{path}: question {number} needs a question and expect_any ids")
        questions.append(
            Golden(item["question"], tuple(expect), str(item.get("collection", "default")))
        )
    return questions


def api_key() -> str | None:
    keys = [k.strip() for k in os.environ.get("BRUNO_API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else None


def ask(url: str, golden: Golden, key: str | None) -> Outcome:
    body = json.dumps(
        {"message": golden.question, "collection": golden.collection, "stream": False}
    ).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's edge, http(s)
        f"{url.rstrip('/')}/api/v1/chat", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return Outcome(golden.question, False, (), f"HTTP {error.code}")
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        return Outcome(golden.question, False, (), f"no answer: {error}")
    cited = tuple(str(c.get("document_id", "")) for c in answer.get("citations", []))
    passed = any(document in cited for document in golden.expect_any)
    detail = "ok" if passed else f"expected one of {list(golden.expect_any)}"
    return Outcome(golden.question, passed, cited, detail)


def check(url: str, questions: list[Golden], key: str | None) -> list[Outcome]:
    return [ask(url, golden, key) for golden in questions]


def _report(outcomes: list[Outcome]) -> dict[str, Any]:
    failed = [o for o in outcomes if not o.passed]
    return {
        "passed": not failed,
        "questions": len(outcomes),
        "failed": [o.as_dict() for o in failed],
    }


def serve(port: int, questions: list[Golden], default_url: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_WEBHOOK_BYTES:
                self._send(413, {"error": "payload too large"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": "payload is not JSON"})
                return
            metadata = payload.get("metadata") if isinstance(payload, dict) else None
            url = (metadata or {}).get("url") or default_url
            report = _report(check(str(url), questions, api_key()))
            print(json.dumps({"url": url, **report}), flush=True)
            self._send(200 if report["passed"] else 412, report)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - a pod's port
    print(f"golden gate on :{port}, {len(questions)} questions", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="ask the questions once")
    check_parser.add_argument("--url", required=True, help="the edge, e.g. http://edge-canary")
    serve_parser = commands.add_parser("serve", help="Flagger webhook")
    serve_parser.add_argument("--port", type=int, default=8080)
    serve_parser.add_argument("--default-url", default="http://edge-canary.agent-bruno")
    for sub in (check_parser, serve_parser):
        sub.add_argument("--questions", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        questions = load_questions(args.questions)
    except GoldenError as error:
        print(f"golden-gate: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(args.port, questions, args.default_url)
        return 0
    report = _report(check(args.url, questions, api_key()))
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
