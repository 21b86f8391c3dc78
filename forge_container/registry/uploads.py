"""Blob uploads: sessions with chunks, and monolithic uploads (mounts are in
:mod:`~forge_container.registry.mounts`).

A session belongs to the image and principal that opened it; for anyone else it does not
exist. Bodies are read in 1 MiB pieces, hashed and written as they arrive, never held whole;
the hash state is saved after each chunk so the next one may land on any worker. How one
request at a time writes to a session, with no transaction open while bytes stream, is
described in :mod:`forge_container.registry.upload_claims`.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from forge_container.config import Settings
from forge_container.digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    Digest,
    new_hasher,
)
from forge_container.errors import DigestInvalid, SizeInvalid
from forge_container.models import BlobUpload, utcnow
from forge_container.registry import quota
from forge_container.registry.blobs import BlobInfo, parse_blob_digest
from forge_container.registry.hashing import ResumableHash
from forge_container.registry.upload_claims import (
    Body,
    Claim,
    Feed,
    Snapshot,
    UploadRangeInvalid,
    claim,
    load,
    too_large,
    unknown,
)
from forge_container.registry.uploader import Uploader, announce, link
from forge_container.storage import CHUNK_SIZE, StorageDriver, StorageError
from forge_container.storage.paths import blob_path, upload_path

__all__ = [
    "Body",
    "UploadRangeInvalid",
    "UploadStatus",
    "Uploader",
    "append_chunk",
    "cancel_upload",
    "finish_upload",
    "start_upload",
    "upload_blob",
    "upload_status",
]


@dataclass(frozen=True)
class UploadStatus:
    """A session and the number of bytes it holds."""

    id: str
    received: int


def start_upload(session: Session, who: Uploader, *, algorithm: str | None = None) -> UploadStatus:
    """Open an empty session (``POST /v2/<name>/blobs/uploads/``).

    :raises DigestInvalid: ``algorithm`` is not one the registry supports.
    """
    algorithm = algorithm or DEFAULT_ALGORITHM
    if algorithm not in ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
    now = utcnow()
    upload_id = str(uuid.uuid4())
    upload = BlobUpload(
        id=upload_id,
        owner_id=who.owner_id,
        image=who.image,
        created_by=who.principal_id,
        bytes_received=0,
        digest_algorithm=algorithm,
        storage_state={},
        created_at=now,
        updated_at=now,
    )
    session.add(upload)
    session.commit()
    return UploadStatus(id=upload_id, received=0)


def upload_status(
    session: Session, storage: StorageDriver, who: Uploader, upload_id: str
) -> UploadStatus:
    """How many bytes the session holds (``GET`` on its location)."""
    snapshot = _load(session, storage, who, upload_id)
    return UploadStatus(id=snapshot.id, received=snapshot.received)


def append_chunk(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    who: Uploader,
    upload_id: str,
    body: Body,
    *,
    content_length: int | None,
    content_range: tuple[int, int] | None,
) -> UploadStatus:
    """Append ``body`` to the session (``PATCH``), streamed or as the chunk ``content_range``.

    :raises BlobUploadUnknown: no such session for ``who``.
    :raises UploadRangeInvalid: the chunk does not start at the session's end (416).
    :raises SizeInvalid: the chunk's length disagrees with its range (400) or the blob
        would exceed the size limit (413); the session keeps its previous bytes.
    :raises BlobUploadInvalid: the body ended early; the session keeps its previous bytes.
    """
    snapshot = _load(session, storage, who, upload_id)
    expected = _check_chunk(settings, snapshot, content_length, content_range)
    held = claim(session, storage, snapshot)
    hasher = _resume_hash(snapshot, snapshot.algorithm)
    size = held.received
    try:
        feed = Feed(
            body,
            offset=held.received,
            expected=expected,
            limit=settings.max_blob_size,
            hasher=hasher,
            claim=held,
        )
        size = storage.append(held.path, feed)
    except BaseException:
        held.end(size, hasher)
        raise
    if not held.end(size, hasher):
        storage.delete(held.path)  # cancelled while this request wrote
        raise unknown(upload_id)
    return UploadStatus(id=upload_id, received=size)


def finish_upload(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    who: Uploader,
    upload_id: str,
    digest: str | None,
    body: Body,
    *,
    content_length: int | None,
    content_range: tuple[int, int] | None = None,
) -> BlobInfo:
    """Append an optional last chunk, verify ``digest`` and store the blob (``PUT``).

    On a digest mismatch nothing changes, not even by the last chunk, so the client may
    retry. Afterwards the image links the blob and the session is gone.

    :raises DigestInvalid: ``digest`` is missing, invalid or does not match the content.
    :raises QuotaExceeded: the blob is over the owner's quota; the session and its bytes
        are dropped (no retry can succeed until the quota changes).
    """
    if not digest:
        raise DigestInvalid("the digest query parameter is required to finish an upload")
    expected_digest = parse_blob_digest(digest)
    snapshot = _load(session, storage, who, upload_id)
    expected = _check_chunk(settings, snapshot, content_length, content_range)
    held = claim(session, storage, snapshot)
    hasher = _resume_hash(snapshot, expected_digest.algorithm)
    size = held.received
    try:
        if hasher is None:
            hasher = _rehash(storage, held, expected_digest.algorithm)
        final = hasher

        def verify() -> None:
            actual = final.digest()
            if actual != expected_digest:
                raise DigestInvalid(detail={"expected": digest, "actual": str(actual)})

        feed = Feed(
            body,
            offset=held.received,
            expected=expected,
            limit=settings.max_blob_size,
            hasher=hasher,
            claim=held,
            at_end=verify,
        )
        size = storage.append(held.path, feed)
        quota.check_blob(session, settings, who.pusher, str(expected_digest), size)
    except quota.QuotaExceeded:
        held.discard(storage)
        raise
    except BaseException:
        held.end(size, hasher)
        raise
    try:
        info = _store(session, storage, who, expected_digest, size, held.path)
        held.drop()
        session.commit()
    except BaseException:
        session.rollback()
        held.end(size, hasher)
        raise
    announce(who, info, mounted=False)
    return info


def cancel_upload(session: Session, storage: StorageDriver, who: Uploader, upload_id: str) -> None:
    """Forget the session and its bytes (``DELETE`` on its location), even mid-write."""
    snapshot = _load(session, storage, who, upload_id)
    session.execute(delete(BlobUpload).where(BlobUpload.id == snapshot.id))
    session.commit()
    storage.delete(upload_path(snapshot.id))


def upload_blob(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    who: Uploader,
    digest: str,
    body: Body,
    *,
    content_length: int | None,
) -> BlobInfo:
    """Store a whole blob from one request (``POST .../uploads/?digest=``), no session.

    :raises DigestInvalid: ``digest`` is invalid or does not match the body.
    :raises SizeInvalid: the body exceeds the size limit (413).
    :raises QuotaExceeded: the blob is over the owner's quota; its bytes are dropped.
    """
    expected_digest = parse_blob_digest(digest)
    _check_limit(settings, 0, content_length)
    session.commit()  # no transaction stays open while the body streams
    path = upload_path(str(uuid.uuid4()))
    hasher = new_hasher(expected_digest.algorithm)

    def verify() -> None:
        actual = Digest(expected_digest.algorithm, hasher.hexdigest())
        if actual != expected_digest:
            raise DigestInvalid(detail={"expected": digest, "actual": str(actual)})

    try:
        feed = Feed(
            body,
            offset=0,
            expected=content_length,
            limit=settings.max_blob_size,
            hasher=hasher,
            claim=None,
            at_end=verify,
        )
        size = storage.append(path, feed)
        quota.check_blob(session, settings, who.pusher, str(expected_digest), size)
        info = _store(session, storage, who, expected_digest, size, path)
        session.commit()
    except BaseException:
        session.rollback()
        with suppress(StorageError):
            storage.delete(path)
        raise
    announce(who, info, mounted=False)
    return info


def _check_chunk(
    settings: Settings,
    snapshot: Snapshot,
    content_length: int | None,
    content_range: tuple[int, int] | None,
) -> int | None:
    """Check a chunk's headers against the session; the body length they announce."""
    expected = content_length
    if content_range is not None:
        start, end = content_range
        if start != snapshot.received:
            raise UploadRangeInvalid(
                f"the chunk starts at byte {start} but the upload has {snapshot.received} bytes",
                upload_id=snapshot.id,
                received=snapshot.received,
            )
        span = end - start + 1
        if content_length is not None and content_length != span:
            raise SizeInvalid(
                f"Content-Length {content_length} does not match Content-Range {start}-{end}"
            )
        expected = span
    _check_limit(settings, snapshot.received, expected)
    return expected


def _check_limit(settings: Settings, received: int, length: int | None) -> None:
    limit = settings.max_blob_size
    if limit and received + (length or 0) > limit:
        raise too_large(limit)


def _resume_hash(snapshot: Snapshot, algorithm: str) -> ResumableHash | None:
    """The session's saved hash in ``algorithm``, a fresh one if it is empty, else ``None``."""
    if snapshot.received == 0:
        return ResumableHash(algorithm)
    if algorithm != snapshot.algorithm:
        return None
    return ResumableHash.restore(algorithm, snapshot.hash_state, snapshot.hash_state_format)


def _rehash(storage: StorageDriver, held: Claim, algorithm: str) -> ResumableHash:
    """Hash the bytes the session holds (its saved state is missing or of another kind)."""
    hasher = ResumableHash(algorithm)
    with storage.open_read(held.path) as stream:
        while piece := stream.read(CHUNK_SIZE):
            hasher.update(piece)
            held.keepalive()
    return hasher


def _store(
    session: Session, storage: StorageDriver, who: Uploader, digest: Digest, size: int, path: str
) -> BlobInfo:
    """Link the blob, then move the upload at ``path`` into place (the caller commits).

    The bytes move under the blob row's lock (see :func:`ensure_blob`): if garbage
    collection deleted the stored copy just before, this upload's bytes replace it.
    """
    info = link(session, who, digest, size)
    storage.commit(path, blob_path(digest))
    return info


def _load(session: Session, storage: StorageDriver, who: Uploader, upload_id: str) -> Snapshot:
    return load(
        session,
        storage,
        upload_id,
        owner_id=who.owner_id,
        image=who.image,
        created_by=who.principal_id,
    )
