"""Reading a file of the ``database`` driver as a stream, one chunk row at a time."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from forge_container.models import StorageChunk
from forge_container.storage.base import StorageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class ChunkReader(io.RawIOBase):
    """The ``size`` bytes of file ``file_id`` from ``offset``, fetched chunk by chunk.

    Each chunk is read on a connection taken from ``engine``'s pool and given back at once,
    so an open stream holds no connection and no transaction while its reader is slow, and
    it outlives the request (and the session) that opened it. At most one chunk is held.
    """

    def __init__(self, engine: Engine, path: str, file_id: int, size: int, offset: int) -> None:
        super().__init__()
        self._engine = engine
        self._path = path
        self._file_id = file_id
        self._size = size
        self._position = offset
        self._chunk = memoryview(b"")
        self._chunk_start = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Copy the next bytes of the current chunk into ``buffer``; 0 at the end."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        target = memoryview(buffer).cast("B")
        if self._position >= self._size or not target:
            return 0
        at = self._position - self._chunk_start
        if not 0 <= at < len(self._chunk):
            self._fetch()
            at = self._position - self._chunk_start
        count = min(len(target), len(self._chunk) - at, self._size - self._position)
        target[:count] = self._chunk[at : at + count]
        self._position += count
        return count

    def close(self) -> None:
        self._chunk = memoryview(b"")
        super().close()

    def _fetch(self) -> None:
        """Load the chunk that holds the current position."""
        self._chunk = memoryview(b"")
        query = (
            select(StorageChunk.start, StorageChunk.data)
            .where(StorageChunk.file_id == self._file_id, StorageChunk.start <= self._position)
            .order_by(StorageChunk.start.desc())
            .limit(1)
        )
        try:
            with self._engine.connect() as connection:
                row = connection.execute(query).first()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read {self._path!r}: {exc}") from exc
        if row is None or not row.start <= self._position < row.start + len(row.data):
            raise StorageError(
                f"{self._path!r} has no bytes at {self._position}: deleted while being read?"
            )
        self._chunk_start = row.start
        self._chunk = memoryview(row.data)
