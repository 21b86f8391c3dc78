"""Uploads in progress on S3: one multipart upload each, described by a small state object.

An upload file ``<dir>/<name>`` (``uploads/<id>/data``) is, while it grows:

* a multipart upload on the key ``<dir>/<name>``, holding the full parts (``part_size``
  bytes each) uploaded so far;
* a *tail* object ``<dir>/.<name>.tail-<token>`` with the bytes after the last full part
  (fewer than ``part_size``: client chunks smaller than a part wait there, not in memory);
* a *state* object ``<dir>/.<name>.state`` (JSON) naming the multipart upload, its parts
  (number, ETag, size) and the tail. Writing it is an append's commit point.

Names starting with ``.`` are out of reach of storage paths, so they never collide with
files. Without a state object, a plain object at ``<dir>/<name>`` is the whole file (as
:meth:`~forge_container.storage.s3.S3Driver.write_bytes` or reading an upload leaves it).
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from forge_container.config_storage import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from forge_container.storage.base import CHUNK_SIZE, StorageError
from forge_container.storage.s3_client import s3_errors

#: S3 numbers parts from 1 to 10 000.
MAX_PARTS = 10_000
_STATE_VERSION = 1


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class UploadState:
    """What the state object says: the multipart upload, its parts and the tail."""

    upload_id: str | None = None
    parts: tuple[Part, ...] = ()
    tail: str | None = None
    tail_size: int = 0

    @property
    def size(self) -> int:
        """The size of the file: its parts and its tail."""
        return sum(part.size for part in self.parts) + self.tail_size

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "upload_id": self.upload_id,
                "parts": [[p.number, p.etag, p.size] for p in self.parts],
                "tail": self.tail,
                "tail_size": self.tail_size,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, path: str) -> UploadState:
        try:
            raw = json.loads(data)
            if raw["version"] != _STATE_VERSION:
                raise ValueError(f"unknown version {raw['version']!r}")
            return cls(
                upload_id=raw["upload_id"],
                parts=tuple(Part(int(n), str(etag), int(size)) for n, etag, size in raw["parts"]),
                tail=raw["tail"],
                tail_size=int(raw["tail_size"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"the S3 upload state of {path!r} is unreadable: {exc}") from exc


@dataclass(frozen=True)
class UploadKeys:
    """The keys of one upload file ``<dir>/<name>``."""

    data: str
    path: str

    @property
    def hidden(self) -> str:
        """The prefix of the state and tail keys."""
        directory, name = self.data.rsplit("/", 1)
        return f"{directory}/.{name}."

    @property
    def state(self) -> str:
        return f"{self.hidden}state"

    def tail(self, token: str) -> str:
        return f"{self.hidden}tail-{token}"


def copy_ranges(size: int) -> Iterator[tuple[int, int]]:
    """``(first, last)`` byte ranges that copy ``size`` bytes in parts S3 accepts."""
    count = -(-size // S3_MAX_PART_SIZE)
    step = -(-size // count)
    for first in range(0, size, step):
        yield first, min(first + step, size) - 1


@dataclass
class Appender:
    """One ``append``: streams chunks into parts of ``part_size`` bytes.

    ``prior`` is the saved state, or ``None`` when there is none; then ``base`` is the size
    of a plain object already holding the file (``None`` if there is no file at all). The
    tail (or a small base) is read back only once a non-empty chunk arrives.
    """

    client: Any
    bucket: str
    keys: UploadKeys
    part_size: int
    prior: UploadState | None
    base: int | None
    _upload_id: str | None = field(default=None, init=False)
    _parts: list[Part] = field(default_factory=list, init=False)
    _buffer: io.BytesIO = field(default_factory=io.BytesIO, init=False)
    _buffered: int = field(default=0, init=False)
    _started: bool = field(default=False, init=False)
    _unrecorded_upload: str | None = field(default=None, init=False)
    _new_tail: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.prior is not None:
            self._upload_id = self.prior.upload_id
            self._parts = list(self.prior.parts)

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``; each part that fills up is uploaded."""
        if not chunk:
            return
        if not self._started:
            self._started = True
            self._start()
        self._add(memoryview(chunk))

    def finish(self) -> UploadState | None:
        """Upload the new tail; the state to save, or ``None`` if nothing changed."""
        if not self._started:
            return UploadState() if self.prior is None and self.base is None else None
        tail: str | None = None
        if self._buffered:
            tail = secrets.token_hex(8)
            self._buffer.seek(0)
            with s3_errors("write", self.keys.path):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.keys.tail(tail),
                    Body=self._buffer,
                    ContentLength=self._buffered,
                )
            self._new_tail = tail
        return UploadState(self._upload_id, tuple(self._parts), tail, self._buffered)

    def saved(self) -> None:
        """The new state is saved: the old tail may go."""
        self._unrecorded_upload = None
        old = self.prior.tail if self.prior is not None else None
        if self._started and old is not None:
            with suppress(StorageError), s3_errors("delete", self.keys.path):
                self.client.delete_object(Bucket=self.bucket, Key=self.keys.tail(old))

    def rollback(self) -> None:
        """Undo what is not recorded in a saved state (best effort)."""
        with suppress(StorageError):
            if self._new_tail is not None:
                with s3_errors("delete", self.keys.path):
                    self.client.delete_object(
                        Bucket=self.bucket, Key=self.keys.tail(self._new_tail)
                    )
            if self._unrecorded_upload is not None:
                with s3_errors("abort", self.keys.path):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self.keys.data, UploadId=self._unrecorded_upload
                    )

    def _start(self) -> None:
        """Put the bytes already stored after the last full part in front of the new ones."""
        if self.prior is not None:
            if self.prior.tail is not None:
                self._read_back(self.keys.tail(self.prior.tail), self.prior.tail_size)
        elif self.base:
            if self.base >= S3_MIN_PART_SIZE:
                self._copy_base(self.base)
            else:
                self._read_back(self.keys.data, self.base)

    def _read_back(self, key: str, size: int) -> None:
        with s3_errors("read", self.keys.path):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                read = 0
                while piece := body.read(CHUNK_SIZE):
                    read += len(piece)
                    self._add(memoryview(piece))
            finally:
                body.close()
        if read != size:
            raise StorageError(f"S3 upload {self.keys.path!r}: expected {size} stored bytes")

    def _copy_base(self, size: int) -> None:
        """Make the plain object the first parts, copied within S3."""
        upload_id = self._ensure_upload()
        for first, last in copy_ranges(size):
            number = len(self._parts) + 1
            with s3_errors("copy", self.keys.path):
                result = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self.keys.data,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": self.keys.data},
                    CopySourceRange=f"bytes={first}-{last}",
                )
            self._parts.append(Part(number, result["CopyPartResult"]["ETag"], last - first + 1))

    def _add(self, view: memoryview) -> None:
        while view:
            piece = view[: self.part_size - self._buffered]
            self._buffer.write(piece)
            self._buffered += len(piece)
            view = view[len(piece) :]
            if self._buffered == self.part_size:
                self._upload_part()

    def _upload_part(self) -> None:
        upload_id = self._ensure_upload()
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"S3 upload {self.keys.path!r} needs more than {MAX_PARTS} parts of"
                f" {self.part_size} bytes: raise CONTAINER_REGISTRY_S3_PART_SIZE"
            )
        self._buffer.seek(0)
        with s3_errors("write", self.keys.path):
            result = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.keys.data,
                UploadId=upload_id,
                PartNumber=number,
                Body=self._buffer,
                ContentLength=self._buffered,
            )
        self._parts.append(Part(number, result["ETag"], self._buffered))
        self._buffer.seek(0)
        self._buffer.truncate()
        self._buffered = 0

    def _ensure_upload(self) -> str:
        """The multipart upload, started (and recorded when that keeps the file as it is)."""
        if self._upload_id is not None:
            return self._upload_id
        with s3_errors("write", self.keys.path):
            upload_id: str = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.keys.data
            )["UploadId"]
        self._upload_id = upload_id
        if self.base:
            self._unrecorded_upload = upload_id  # a state now would hide the base's bytes
            return upload_id
        prior = self.prior or UploadState()
        recorded = UploadState(upload_id, (), prior.tail, prior.tail_size)
        try:
            with s3_errors("write", self.keys.path):
                self.client.put_object(
                    Bucket=self.bucket, Key=self.keys.state, Body=recorded.to_json()
                )
        except BaseException:
            self._unrecorded_upload = upload_id
            raise
        return upload_id
