"""The WSGI wrapper around the app for ``/v2`` requests: it counts the bytes of request and
response bodies, caps blob transfers' bandwidth, and hands each finished request to the
access log and the metrics.

A request is finished when the server closes its response body, so the duration and byte
counts cover the whole transfer. A body the server sends with ``sendfile`` (an instance of
``wsgi.file_wrapper``) is passed through untouched, its ``Content-Length`` counted as sent;
with a download cap the app never gets ``wsgi.file_wrapper``, so the bytes go through the
paced iterator instead. The request body is wrapped with ``read``, ``readline``,
``readlines`` and iteration only: werkzeug then reads it with ``read``, which any
``wsgi.input`` has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from forge_container.access_log import RequestRecord, log_request
from forge_container.config_operations import OperationsSettings
from forge_container.throttle import Throttle

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from forge_container.metrics import RegistryMetrics

log = logging.getLogger(__name__)

#: Where the request's :class:`RequestRecord` is kept in the WSGI environ.
RECORD_KEY = "forge_container.record"
#: Endpoints whose request body is a blob, and the one that sends blobs.
BLOB_UPLOAD_ENDPOINTS = frozenset(
    f"forge_container.{view}" for view in ("start_upload", "append_chunk", "finish_upload")
)
BLOB_DOWNLOAD_ENDPOINT = "forge_container.get_blob"


def is_registry_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


class RegistryMiddleware:
    """Wraps ``app.wsgi_app``; requests outside ``/v2`` pass straight through."""

    def __init__(
        self,
        app: WSGIApplication,
        settings: OperationsSettings,
        metrics: RegistryMetrics | None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        throttle: Callable[[int], Throttle] = Throttle,
    ) -> None:
        self.app = app
        self._settings = settings
        self._metrics = metrics
        #: The clock of durations, and the factory of throttles (tests replace them).
        self.clock = clock
        self.throttle = throttle

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not is_registry_path(path):
            return self.app(environ, start_response)
        record = RequestRecord(
            method=environ.get("REQUEST_METHOD", "GET"), path=path, started=self.clock()
        )
        environ[RECORD_KEY] = record
        upload_rate = self._settings.bandwidth_upload
        environ["wsgi.input"] = MeteredInput(
            environ["wsgi.input"],
            record,
            lambda: (
                self.throttle(upload_rate)
                if upload_rate and record.endpoint in BLOB_UPLOAD_ENDPOINTS
                else None
            ),
        )
        if self._settings.bandwidth_download:
            environ.pop("wsgi.file_wrapper", None)

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            record.status = int(status.split(" ", 1)[0])
            length = next((v for k, v in headers if k.lower() == "content-length"), None)
            record.content_length = int(length) if length and length.isdigit() else None
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            record.status = 500
            self._finish(record)
            raise
        return self._wrap(environ, body, record)

    def _wrap(
        self, environ: WSGIEnvironment, body: Iterable[bytes], record: RequestRecord
    ) -> Iterable[bytes]:
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            # Keep the server's own object, so that it still uses sendfile.
            close = getattr(body, "close", None)

            def closing() -> None:
                record.bytes_out = record.content_length or 0
                try:
                    if close is not None:
                        close()
                finally:
                    self._finish(record)

            try:
                body.close = closing  # type: ignore[attr-defined]
            except AttributeError:
                pass
            else:
                return body
        rate = self._settings.bandwidth_download
        throttle = (
            self.throttle(rate) if rate and record.endpoint == BLOB_DOWNLOAD_ENDPOINT else None
        )
        return MeteredBody(body, record, throttle, self._finish)

    def _finish(self, record: RequestRecord) -> None:
        record.duration = max(self.clock() - record.started, 0.0)
        try:
            if self._settings.access_log:
                log_request(record)
            if self._metrics is not None:
                self._metrics.observe(record)
        except Exception:  # the response is sent: never fail its close
            log.exception("could not record a registry request")


class MeteredInput:
    """``wsgi.input`` that counts what the app reads and, for blob uploads, paces it."""

    def __init__(
        self,
        stream: Any,
        record: RequestRecord,
        make_throttle: Callable[[], Throttle | None],
    ) -> None:
        self._stream = stream
        self._record = record
        self._make_throttle = make_throttle
        self._throttle: Throttle | None = None
        self._decided = False

    def _paced(self) -> Throttle | None:
        # Decided on the first read: by then routing has set the record's endpoint.
        if not self._decided:
            self._decided = True
            self._throttle = self._make_throttle()
        return self._throttle

    def _count(self, data: bytes) -> bytes:
        self._record.bytes_in += len(data)
        return data

    def read(self, size: int | None = -1, /) -> bytes:
        throttle = self._paced()
        if throttle is None or size is None or size < 0:
            data = self._count(self._stream.read() if size is None else self._stream.read(size))
            if throttle is not None:
                throttle.pace(len(data))
            return data
        pieces = []
        left = size
        while left > 0:
            piece = self._count(self._stream.read(min(left, throttle.piece_size)))
            if not piece:
                break
            throttle.pace(len(piece))
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def readline(self, size: int | None = -1, /) -> bytes:
        data = self._count(self._stream.readline() if size is None else self._stream.readline(size))
        throttle = self._paced()
        if throttle is not None:
            throttle.pace(len(data))
        return data

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        lines = []
        total = 0
        while hint is None or hint <= 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class MeteredBody:
    """A response body that counts what it hands to the server, paced by ``throttle``;
    closing it closes the app's body and finishes the request's record, once."""

    def __init__(
        self,
        body: Iterable[bytes],
        record: RequestRecord,
        throttle: Throttle | None,
        finish: Callable[[RequestRecord], None],
    ) -> None:
        self._body = body
        self._record = record
        self._throttle = throttle
        self._finish = finish
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        pieces = self._body if self._throttle is None else self._throttle.pieces(self._body)
        for piece in pieces:
            self._record.bytes_out += len(piece)
            yield piece

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(self._record)
