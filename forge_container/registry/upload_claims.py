"""One writer per upload session at a time, with no DB transaction open while bytes stream.

A request that writes to a session first *claims* it in a short transaction:
``bytes_received`` becomes ``-1 - received`` (so the size stays readable) and ``updated_at``
the claim's token, renewed every :data:`CLAIM_RENEWAL` while bytes flow. A second writer
finds the session claimed and gets 416, so two requests never append to one file at once
(the filesystem driver appends with ``O_APPEND``: concurrent chunks would interleave). The
claim ends in one more short transaction that records the new size and hash state, or
keeps the old ones when the request failed (the driver has cut its bytes off).

A claim left by a dead worker expires after :data:`CLAIM_TIMEOUT`: the session is released
if its file still has the recorded size, and dropped otherwise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from forge_container.errors import BlobUploadInvalid, BlobUploadUnknown, SizeInvalid
from forge_container.models import BlobUpload, utcnow
from forge_container.registry.hashing import ResumableHash
from forge_container.storage import CHUNK_SIZE, PathNotFound, StorageDriver
from forge_container.storage.paths import UPLOAD_ID_RE, upload_path

#: A claim not renewed for this long was left by a worker that died or stalled.
CLAIM_TIMEOUT = timedelta(minutes=5)
#: A writer renews its claim this often while bytes flow.
CLAIM_RENEWAL = timedelta(seconds=30)
#: Threads per process that hash upload bodies beside their reads and writes.
HASH_THREADS = 4


class Body(Protocol):
    """A request body: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...


class UploadRangeInvalid(BlobUploadInvalid):
    """A chunk that does not start where the session ends, or a session busy with another
    request: 416, and the client resumes from ``received``."""

    def __init__(self, message: str, *, upload_id: str, received: int) -> None:
        super().__init__(message, status=416, detail={"received": received})
        self.upload_id = upload_id
        self.received = received


@dataclass(frozen=True)
class Snapshot:
    """A session row as read, outside any transaction."""

    id: str
    received: int
    busy: bool
    algorithm: str
    hash_state: bytes | None
    hash_state_format: str | None
    updated_at: datetime


def load(
    session: Session,
    storage: StorageDriver,
    upload_id: str,
    *,
    owner_id: str,
    image: str,
    created_by: str | None,
) -> Snapshot:
    """The session ``upload_id`` if it is bound to exactly these; a stale claim is cleared.

    :raises BlobUploadUnknown: no such session for them.
    """
    if UPLOAD_ID_RE.fullmatch(upload_id) is None:
        raise unknown(upload_id)
    row = session.scalars(
        select(BlobUpload).where(
            BlobUpload.id == upload_id,
            BlobUpload.owner_id == owner_id,
            BlobUpload.image == image,
            BlobUpload.created_by == created_by,
        )
    ).one_or_none()
    if row is None:
        raise unknown(upload_id)
    busy = row.bytes_received < 0
    snapshot = Snapshot(
        id=row.id,
        received=-1 - row.bytes_received if busy else row.bytes_received,
        busy=busy,
        algorithm=row.digest_algorithm,
        hash_state=row.hash_state,
        hash_state_format=row.hash_state_format,
        updated_at=row.updated_at,
    )
    if busy and _as_utc(snapshot.updated_at) < utcnow() - CLAIM_TIMEOUT:
        stale = Claim(session, snapshot.id, snapshot.received, snapshot.updated_at)
        if stored_size(storage, stale.path) != snapshot.received:
            stale.discard(storage)
            raise unknown(upload_id)
        stale.end(snapshot.received, None)
        return load(
            session, storage, upload_id, owner_id=owner_id, image=image, created_by=created_by
        )
    return snapshot


def claim(session: Session, storage: StorageDriver, snapshot: Snapshot) -> Claim:
    """Make the calling request the session's only writer.

    :raises UploadRangeInvalid: another request writes to it, or wrote since ``snapshot``.
    :raises BlobUploadUnknown: its file lost bytes; the session is dropped.
    """
    token = utcnow()
    result = session.execute(
        update(BlobUpload)
        .where(BlobUpload.id == snapshot.id, BlobUpload.bytes_received == snapshot.received)
        .values(bytes_received=-1 - snapshot.received, updated_at=token)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if not _one_row(result):
        raise UploadRangeInvalid(
            "another request is writing to this upload",
            upload_id=snapshot.id,
            received=snapshot.received,
        )
    held = Claim(session, snapshot.id, snapshot.received, token)
    if stored_size(storage, held.path) != snapshot.received:
        # A request died between writing its bytes and recording them: the data is lost.
        held.discard(storage)
        raise unknown(snapshot.id, "the upload's data was lost; start a new upload")
    return held


class Claim:
    """The calling request's exclusive right to write to one session."""

    def __init__(self, session: Session, upload_id: str, received: int, token: datetime) -> None:
        self.session = session
        self.upload_id = upload_id
        self.received = received
        self.path = upload_path(upload_id)
        self._token = token
        self._renewed = utcnow()

    def keepalive(self) -> None:
        """Renew the claim if it is due; raise if the session was cancelled meanwhile."""
        now = utcnow()
        if now - self._renewed < CLAIM_RENEWAL:
            return
        renewed = _one_row(self.session.execute(self._mine().values(updated_at=now)))
        self.session.commit()
        if not renewed:
            raise unknown(self.upload_id, "the upload was cancelled")
        self._token = self._renewed = now

    def end(self, size: int, hasher: ResumableHash | None) -> bool:
        """Record ``size`` and the hash state, and release; ``False`` if the claim was lost.

        When the size did not change, the saved hash state is kept as it was.
        """
        values: dict[str, Any] = {"bytes_received": size, "updated_at": utcnow()}
        if size != self.received:
            values["hash_state"] = hasher.state() if hasher is not None else None
            values["hash_state_format"] = hasher.format if hasher is not None else None
        ended = _one_row(self.session.execute(self._mine().values(**values)))
        self.session.commit()
        return ended

    def drop(self) -> None:
        """Delete the session row (its bytes became a blob); the caller commits."""
        self.session.execute(
            delete(BlobUpload)
            .where(BlobUpload.id == self.upload_id)
            .execution_options(synchronize_session=False)
        )

    def discard(self, storage: StorageDriver) -> None:
        """Delete the session and its bytes."""
        self.drop()
        self.session.commit()
        storage.delete(self.path)

    def _mine(self) -> Any:
        return (
            update(BlobUpload)
            .where(
                BlobUpload.id == self.upload_id,
                BlobUpload.bytes_received == -1 - self.received,
                BlobUpload.updated_at == self._token,
            )
            .execution_options(synchronize_session=False)
        )


class Feed:
    """A request body as the driver reads it: counted, hashed and checked piece by piece.

    ``expected`` is the length the headers announce; ``limit`` the largest blob allowed
    (0: none) counting the ``offset`` bytes already stored. Raising here makes the driver
    cut off everything this request wrote. ``at_end`` runs after the last piece.
    """

    def __init__(
        self,
        body: Body,
        *,
        offset: int,
        expected: int | None,
        limit: int,
        hasher: Hash | None,
        claim: Claim | None,
        at_end: Callable[[], None] | None = None,
    ) -> None:
        self._body = body
        self._offset = offset
        self._expected = expected
        self._limit = limit
        self._hasher = hasher
        self._claim = claim
        self._at_end = at_end
        # Read before the driver opens the file, so a claim lost while the client was silent
        # is noticed before anything is written.
        self._first = self._read()

    def _read(self) -> bytes:
        piece = self._body.read(CHUNK_SIZE)
        if self._claim is not None:
            self._claim.keepalive()
        return piece

    def __iter__(self) -> Iterator[bytes]:
        count = 0
        piece = self._first
        hashing: Future[None] | None = None
        try:
            while piece:
                count += len(piece)
                if self._limit and self._offset + count > self._limit:
                    raise too_large(self._limit)
                if self._expected is not None and count > self._expected:
                    raise SizeInvalid(
                        f"the body is longer than the {self._expected} bytes announced"
                    )
                if self._hasher is not None:
                    # Each piece is hashed while the driver writes it and the next one is
                    # read (OpenSSL runs without the GIL); pieces are hashed in order.
                    if hashing is not None:
                        hashing.result()
                    hashing = _hash_pool().submit(self._hasher.update, piece)
                yield piece
                piece = self._read()
            if hashing is not None:
                hashing.result()
        finally:
            if hashing is not None:
                wait([hashing])  # the caller saves the hash state next
        if self._expected is not None and count != self._expected:
            raise BlobUploadInvalid(
                f"the body ended after {count} of the {self._expected} bytes announced"
            )
        if self._at_end is not None:
            self._at_end()


_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _hash_pool() -> ThreadPoolExecutor:
    """This process's hashing threads (a forked worker starts its own)."""
    global _pool
    pool = _pool
    if pool is None or pool[0] != os.getpid():
        with _pool_lock:
            pool = _pool
            if pool is None or pool[0] != os.getpid():
                executor = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="fc-hash")
                pool = _pool = (os.getpid(), executor)
    return pool[1]


def too_large(limit: int) -> SizeInvalid:
    return SizeInvalid(f"blobs may be at most {limit} bytes", status=413)


def stored_size(storage: StorageDriver, path: str) -> int:
    """The size of the file at ``path``, 0 when there is none yet."""
    try:
        return storage.stat(path)
    except PathNotFound:
        return 0


def unknown(upload_id: str, message: str | None = None) -> BlobUploadUnknown:
    return BlobUploadUnknown(message, detail={"upload": upload_id})


def _one_row(result: Any) -> bool:
    return bool(result.rowcount == 1)


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
