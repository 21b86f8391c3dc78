"""An image's blobs: look them up, read them (whole or a byte range), unlink them.

Storage is shared and content-addressed, access is not: an image serves a blob only while it
links it (:class:`~forge_container.models.BlobLink`). A link whose bytes went missing from
storage is reported as an unknown blob, like a missing link.

A whole-blob download may leave without the app's bytes (:func:`download_blob`): handed to
the front web server (``CONTAINER_REGISTRY_BLOB_OFFLOAD``) or redirected to the object store
(``CONTAINER_REGISTRY_S3_REDIRECT``), always after the same lookup that authorizes a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from forge_container.config import Settings
from forge_container.digest import Digest, InvalidDigest, parse_digest
from forge_container.errors import BlobUnknown, DigestInvalid, RangeInvalid
from forge_container.models import BlobLink, Package, PackageBlob
from forge_container.registry.packages import PACKAGE_TYPE
from forge_container.registry.reads import read_connection
from forge_container.storage import PathNotFound, StorageDriver
from forge_container.storage.paths import BLOBS, blob_path

#: How a :class:`BlobHandoff` leaves: an nginx internal redirect, an ``X-Sendfile`` path, or
#: a ``307`` to a URL of the store.
ACCEL_REDIRECT = "x-accel-redirect"
SENDFILE = "x-sendfile"
REDIRECT = "redirect"


@dataclass(frozen=True)
class BlobInfo:
    """A blob as the client sees it: its digest and size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True)
class ByteRange:
    """One range of a ``Range: bytes=`` header, as written (RFC 9110 §14.1.2).

    ``first-last`` and ``first-`` have ``first`` set (``last`` inclusive, or ``None``);
    a suffix ``-n`` has ``first=None`` and ``last=n``, the length of the tail.
    """

    first: int | None
    last: int | None


@dataclass(frozen=True)
class BlobBody:
    """What a GET sends: the blob, the part of it asked for, and an open stream at ``start``.

    ``stream`` is ``None`` when no body was asked for; otherwise the caller closes it.
    ``partial`` is set when a range was served (``start`` and ``length`` describe it).
    """

    info: BlobInfo
    start: int
    length: int
    partial: bool
    stream: BinaryIO | None


@dataclass(frozen=True)
class BlobHandoff:
    """A whole blob that someone else sends: the front web server, or the object store.

    ``how`` is :data:`ACCEL_REDIRECT` (``target`` is the internal URI,
    ``<prefix><alg>/<2 hex>/<hex>``), :data:`SENDFILE` (the absolute file path) or
    :data:`REDIRECT` (a presigned URL). ``rate_limit`` caps the front server's speed in
    bytes per second (0: no cap).
    """

    info: BlobInfo
    how: str
    target: str
    rate_limit: int = 0


def parse_blob_digest(value: str) -> Digest:
    """A digest from a URL or query string; anything else is ``DIGEST_INVALID`` (400)."""
    try:
        return parse_digest(value)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc), detail={"digest": value}) from None


def _find_linked_statement() -> Any:
    """``(digest, size)`` of a blob an image links, by owner id, image and digest."""
    return (
        select(PackageBlob.digest, PackageBlob.size)
        .join(BlobLink, BlobLink.blob_id == PackageBlob.id)
        .join(Package, Package.id == BlobLink.package_id)
        .where(
            Package.owner_id == bindparam("owner_id"),
            Package.type == PACKAGE_TYPE,
            Package.name == bindparam("image"),
            PackageBlob.digest == bindparam("digest"),
        )
        .limit(1)
    )


_FIND_LINKED = _find_linked_statement()


def find_linked(session: Session, owner_id: str, image: str, digest: str) -> BlobInfo | None:
    """The blob ``digest`` if ``owner_id``'s ``image`` links it (one indexed query, outside
    any transaction unless the session holds one: see :func:`read_connection`)."""
    params = {"owner_id": owner_id, "image": image, "digest": digest}
    with read_connection(session) as connection:
        row = connection.execute(_FIND_LINKED, params).first()
    return None if row is None else BlobInfo(digest=row.digest, size=row.size)


def stat_blob(
    session: Session, storage: StorageDriver, owner_id: str, image: str, digest: str
) -> BlobInfo:
    """The blob behind ``HEAD /v2/<name>/blobs/<digest>``.

    :raises DigestInvalid: ``digest`` is not a supported digest.
    :raises BlobUnknown: the image does not link it, or its bytes are gone.
    """
    parsed = parse_blob_digest(digest)
    info = find_linked(session, owner_id, image, str(parsed))
    if info is None or not storage.exists(blob_path(parsed)):
        raise BlobUnknown(detail={"digest": digest})
    return info


def read_blob(
    session: Session,
    storage: StorageDriver,
    owner_id: str,
    image: str,
    digest: str,
    *,
    byte_range: ByteRange | None = None,
    with_body: bool = True,
) -> BlobBody:
    """The blob behind ``GET /v2/<name>/blobs/<digest>``, opened at the range asked for.

    :raises DigestInvalid: ``digest`` is not a supported digest.
    :raises BlobUnknown: the image does not link it, or its bytes are gone.
    :raises RangeInvalid: ``byte_range`` lies outside the blob (416, with ``Content-Range``).
    """
    parsed, info = _linked(session, owner_id, image, digest)
    return _open(storage, parsed, info, byte_range, with_body)


def download_blob(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    owner_id: str,
    image: str,
    digest: str,
    *,
    byte_range: ByteRange | None = None,
    with_body: bool = True,
    whole: bool = True,
) -> BlobBody | BlobHandoff:
    """Like :func:`read_blob`, but a whole-blob GET may be handed off as configured.

    ``whole`` says the request asked for the whole blob (no ``Range`` header at all): only
    such a request with ``with_body`` is handed off, so ranges, ``If-Range`` and 304 answers
    are the app's alone. Offload (``settings.offload``) needs a driver with local files;
    redirects (``settings.s3.redirect``) a driver that gives out URLs; else the app streams.
    A download speed cap (``settings.operations.bandwidth_download``) keeps the bytes in the
    app, but for nginx, which is told the cap.

    :raises DigestInvalid: ``digest`` is not a supported digest.
    :raises BlobUnknown: the image does not link it, or its bytes are gone.
    :raises RangeInvalid: ``byte_range`` lies outside the blob (416, with ``Content-Range``).
    """
    parsed, info = _linked(session, owner_id, image, digest)
    if whole and with_body and byte_range is None:
        handoff = _hand_off(storage, settings, parsed, info)
        if handoff is not None:
            return handoff
    return _open(storage, parsed, info, byte_range, with_body)


def unlink_blob(session: Session, owner_id: str, image: str, digest: str) -> None:
    """``DELETE /v2/<name>/blobs/<digest>``: the image stops serving the blob.

    The bytes stay in storage for garbage collection; other images that link the blob keep
    serving it.

    :raises DigestInvalid: ``digest`` is not a supported digest.
    :raises BlobUnknown: the image does not link it.
    """
    parsed = parse_blob_digest(digest)
    package_id = select(Package.id).where(
        Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.name == image
    )
    blob_id = select(PackageBlob.id).where(PackageBlob.digest == str(parsed))
    result = session.execute(
        delete(BlobLink)
        .where(
            BlobLink.package_id == package_id.scalar_subquery(),
            BlobLink.blob_id == blob_id.scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if getattr(result, "rowcount", 0) == 0:
        raise BlobUnknown(detail={"digest": digest})


def _linked(session: Session, owner_id: str, image: str, digest: str) -> tuple[Digest, BlobInfo]:
    """The parsed ``digest`` and the blob, if ``owner_id``'s ``image`` links it."""
    parsed = parse_blob_digest(digest)
    info = find_linked(session, owner_id, image, str(parsed))
    if info is None:
        raise BlobUnknown(detail={"digest": digest})
    return parsed, info


def _open(
    storage: StorageDriver,
    digest: Digest,
    info: BlobInfo,
    byte_range: ByteRange | None,
    with_body: bool,
) -> BlobBody:
    """The blob opened at ``byte_range`` (or only checked to exist, without a body)."""
    start, length = 0, info.size
    if byte_range is not None:
        start, length = _resolve(byte_range, info.size)
    path = blob_path(digest)
    stream: BinaryIO | None = None
    try:
        if with_body:
            stream = storage.open_read(path, start)
        elif not storage.exists(path):
            raise PathNotFound(path)
    except PathNotFound:
        raise BlobUnknown(detail={"digest": info.digest}) from None
    return BlobBody(
        info=info, start=start, length=length, partial=byte_range is not None, stream=stream
    )


def _hand_off(
    storage: StorageDriver, settings: Settings, digest: Digest, info: BlobInfo
) -> BlobHandoff | None:
    """Who sends the whole blob instead of the app, or ``None`` for the app itself."""
    cap = settings.operations.bandwidth_download
    mode = settings.offload.mode
    path = blob_path(digest)
    try:
        if mode == ACCEL_REDIRECT and storage.local_path(path) is not None:
            # The internal location maps to the storage's blobs/ directory.
            relative = path.removeprefix(f"{BLOBS}/")
            return BlobHandoff(info, ACCEL_REDIRECT, settings.offload.prefix + relative, cap)
        if cap:
            return None
        if mode == SENDFILE:
            local = storage.local_path(path)
            return None if local is None else BlobHandoff(info, SENDFILE, local)
        if settings.s3 is not None and settings.s3.redirect and storage.exists(path):
            url = storage.redirect_url(path, expires=settings.s3.redirect_expiry)
            return None if url is None else BlobHandoff(info, REDIRECT, url)
    except PathNotFound:
        raise BlobUnknown(detail={"digest": info.digest}) from None
    return None


def _resolve(byte_range: ByteRange, size: int) -> tuple[int, int]:
    """``(start, length)`` of ``byte_range`` in a blob of ``size`` bytes, or 416."""
    first, last = byte_range.first, byte_range.last
    if first is None:
        # A suffix: the last ``last`` bytes, all of them if the blob is shorter.
        if not last or size == 0:
            raise _unsatisfiable(size)
        length = min(last, size)
        return size - length, length
    if first >= size:
        raise _unsatisfiable(size)
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


def _unsatisfiable(size: int) -> RangeInvalid:
    return RangeInvalid(
        f"the range lies outside the blob of {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
