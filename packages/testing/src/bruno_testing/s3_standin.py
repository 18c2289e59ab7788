"""An S3 endpoint on loopback for tests: moto's S3 server, with one bucket, that LanceDB reaches
through the standard ``AWS_*`` variables exactly as it would reach S3 or MinIO in a cluster.

    with S3StandIn() as s3:
        env = {**os.environ, **s3.env}          # for processes
        uri = s3.uri("kb")                      # s3://bruno-knowledge/kb-<random>

moto answers ``PutObject`` with ``If-None-Match: *`` as S3 does (412 when the key exists), but
checks and writes in two steps, unlocked, on a threaded server: two racing conditional PUTs of
one key can both succeed there, which S3 (and MinIO) never allow. LanceDB commits a table
version with exactly such a PUT, so the stand-in makes every conditional PUT atomic, one at a
time, as the real stores are; ``honour_conditions=False`` instead drops the condition, a store
that ignores it, to show what the condition protects (tests of the concurrency evidence).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import boto3  # type: ignore[import-untyped]
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

BUCKET = "bruno-knowledge"
REGION = "us-east-1"
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (LanceDB makes thousands)."""

    def log_request(self, *args: Any) -> None:
        pass


class S3StandIn:
    """moto's S3 server on a free loopback port with :data:`BUCKET` made."""

    def __init__(self, *, honour_conditions: bool = True) -> None:
        self._moto: Wsgi = DomainDispatcherApplication(create_backend_app)
        self._honour = honour_conditions
        self._conditional = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "PUT" or "HTTP_IF_NONE_MATCH" not in environ:
            return self._moto(environ, start_response)
        if not self._honour:
            del environ["HTTP_IF_NONE_MATCH"]
            return self._moto(environ, start_response)
        with self._conditional:  # check and write as one step, as S3 does
            return list(self._moto(environ, start_response))

    @property
    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point LanceDB (object_store) and boto3 here."""
        return {
            **_CREDENTIALS,
            "AWS_ENDPOINT": self.url,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": REGION,
        }

    def uri(self, name: str = "kb") -> str:
        """A fresh prefix in the bucket: moto keeps one store per process, prefixes keep
        tests apart."""
        return f"s3://{BUCKET}/{name}-{uuid.uuid4().hex}"

    def start(self) -> None:
        self._server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> S3StandIn:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
