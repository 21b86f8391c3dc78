"""The boto3 side of the ``s3`` driver: one client per process, error mapping, object reads."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from forge_container.config_storage import S3Settings
from forge_container.storage.base import CHUNK_SIZE, PathNotFound, StorageError

#: Error codes S3 servers answer for a missing object (``HEAD`` has no body: just ``404``).
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
#: Connections per client: gthread workers run several requests at once.
_POOL_SIZE = 32


class NoSuchUpload(StorageError):
    """The multipart upload was completed or aborted meanwhile."""


_session_lock = threading.Lock()
_session: tuple[int, Any] | None = None


def _make_client(**kwargs: Any) -> Any:
    """A client from this process's boto3 session, which keeps the loaded API models.

    Sessions are not thread-safe, so clients are made under a lock; clients are.
    """
    global _session
    with _session_lock:
        if _session is None or _session[0] != os.getpid():
            _session = (os.getpid(), boto3.session.Session())
        return _session[1].client("s3", **kwargs)


class Clients:
    """One thread-safe boto3 client per process, made on first use.

    Clients do not survive ``fork`` (gunicorn forks its workers after the app is made), so a
    process that did not make the client makes its own.
    """

    def __init__(self, settings: S3Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: Any = None
        self._pid = 0

    def get(self) -> Any:
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    self._client = self._make()
                    self._pid = pid
        return self._client

    def _make(self) -> Any:
        s = self._settings
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": s.addressing_style},
            "retries": {"mode": "standard", "max_attempts": 4},
            "max_pool_connections": _POOL_SIZE,
            "connect_timeout": 10,
            "read_timeout": 120,
            # Checksums only where S3 requires them: other S3 servers do not all know the
            # CRC headers boto3 >= 1.36 adds by default.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        try:
            config = Config(**options)
        except TypeError:  # boto3 < 1.36 has no such options and sends no such headers
            del options["request_checksum_calculation"], options["response_checksum_validation"]
            config = Config(**options)
        try:
            return _make_client(
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key,
                config=config,
            )
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(f"cannot set up the S3 client: {exc}") from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(action: str, path: str) -> Iterator[None]:
    """Map boto3's errors: a missing object becomes :class:`PathNotFound`, a finished
    multipart upload :class:`NoSuchUpload`, anything else :class:`StorageError`."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING:
            raise PathNotFound(path) from exc
        if code == "NoSuchUpload":
            raise NoSuchUpload(f"S3 {action} of {path!r}: the multipart upload is gone") from exc
        message = exc.response.get("Error", {}).get("Message", "")
        raise StorageError(f"S3 {action} of {path!r} failed: {code} {message}".rstrip()) from exc
    except BotoCoreError as exc:
        # Messages name the endpoint or the missing credentials, never a secret.
        raise StorageError(f"S3 {action} of {path!r} failed: {exc}") from exc


class ObjectReader(io.RawIOBase):
    """The streaming body of a ``GetObject``, as a raw binary file."""

    def __init__(self, body: Any, path: str) -> None:
        super().__init__()
        self._body = body
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with s3_errors("read", self._path):
            try:
                data = self._body.read(len(view))
            except OSError as exc:
                raise StorageError(f"S3 read of {self._path!r} failed: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def open_object(body: Any, path: str) -> io.BufferedReader:
    """A buffered binary file over a ``GetObject`` body; the caller closes it."""
    return io.BufferedReader(ObjectReader(body, path), CHUNK_SIZE)
