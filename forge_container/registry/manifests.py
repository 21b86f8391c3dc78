"""Manifests: push by tag or digest (``?tag=`` too), pull, delete; tags move with pushes.

A push reads and checks the bytes, stores them content-addressed, reads the config for
metadata, and only then opens one short transaction that checks what the manifest
references and writes the version, its files and its tags. Concurrent pushes of the same
manifest or tag meet on unique constraints (insert-or-ignore, upsert), never on a lock of
ours; a push that loses a race (deadlock, a row deleted under it) is retried.

Deletes: a tag removes just the tag; a digest removes the version, its files, every tag
on it and the image's link to the manifest bytes. Index children and referrers stay: they
are versions of their own (garbage collection removes untagged ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from forge_container import events
from forge_container.config import Settings
from forge_container.digest import DEFAULT_ALGORITHM, digest_of, parse_digest
from forge_container.errors import (
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    TagInvalid,
    Unknown,
)
from forge_container.models import Package, PackageBlob, PackageFile, PackageTag, PackageVersion
from forge_container.names import is_valid_tag
from forge_container.registry import metadata, quota, versions
from forge_container.registry.manifest_format import (
    Manifest,
    Reference,
    parse_manifest,
    parse_reference,
)
from forge_container.registry.packages import PACKAGE_TYPE
from forge_container.registry.reads import read_connection
from forge_container.storage import PathNotFound, StorageDriver
from forge_container.storage.paths import blob_path

if TYPE_CHECKING:
    from forge_container.cache import ContentCache
    from forge_container.manifest_refs import ManifestRefs

#: ``?tag=`` values one push may carry (the spec asks for at least 10); more is 414.
MAX_TAGS_PER_PUSH = 64
#: Tries of the write transaction before a lost race becomes a 503.
ATTEMPTS = 3
_READ_CHUNK = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class PushedManifest:
    """A stored manifest; ``tags`` are the ``?tag=`` tags now on it (one ``OCI-Tag`` each)."""

    digest: str
    media_type: str
    size: int
    subject: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as a pull sees it; ``data`` is ``None`` when only its headers were asked."""

    digest: str
    media_type: str
    size: int
    data: bytes | None = None


def put_manifest(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    *,
    owner_id: str,
    owner_name: str,
    image: str,
    reference: str,
    body: IO[bytes],
    content_type: str | None,
    content_length: int | None = None,
    tags: Sequence[str] = (),
    by: str | None = None,
    is_admin: bool = False,
) -> PushedManifest:
    """Store the manifest in ``body`` under ``reference`` and the ``tags`` of ``?tag=``.

    :raises TagInvalid: a bad tag, ``?tag=`` with a tag reference, or too many (414).
    :raises ManifestInvalid: bad JSON or fields, schema 1, more than the size limit (413).
    :raises DigestInvalid: a digest reference the body does not hash to.
    :raises ManifestBlobUnknown: a config, layer or child the image does not have.
    :raises SizeInvalid: a descriptor size that differs from the stored content.
    :raises QuotaExceeded: the push would exceed a quota of the owner (``is_admin``: the
        pusher is a site admin); nothing is stored.
    """
    ref = parse_reference(reference, push=True)
    extra_tags = _tag_params(ref, tags)
    data = _read_body(body, content_length, settings.max_manifest_size)
    digest = digest_of(data, ref.digest.algorithm if ref.digest else DEFAULT_ALGORITHM)
    if ref.digest is not None and digest != ref.digest:
        raise DigestInvalid(
            f"the body's digest is {digest}, not {ref.digest}", detail={"digest": str(ref.digest)}
        )
    manifest = parse_manifest(data, content_type)
    pusher = quota.Pusher(owner_id, owner_name, is_admin)
    quota.check_manifest(session, settings, pusher, image=image, digest=str(digest), size=len(data))
    path = blob_path(digest)
    if not storage.exists(path):
        storage.write_bytes(path, data)
    push = versions.NewVersion(
        owner_id=owner_id,
        owner_name=owner_name,
        image=image,
        digest=digest,
        data=data,
        manifest=manifest,
        config=_config_metadata(storage, manifest),
        tags=sorted({*extra_tags, *([ref.tag] if ref.tag else [])}),
        by=by,
    )

    def write() -> None:
        versions.write_version(session, push)
        if not storage.exists(path):  # collected meanwhile; its blob row is locked now
            storage.write_bytes(path, data)

    _transaction(session, write)
    events.send(
        events.image_pushed,
        owner_id=owner_id,
        owner_name=owner_name,
        image=image,
        digest=str(digest),
        media_type=manifest.media_type,
        tags=tuple(push.tags),
        principal_id=by,
    )
    subject = manifest.subject
    return PushedManifest(
        digest=str(digest),
        media_type=manifest.media_type,
        size=len(data),
        subject=str(subject.digest) if subject else None,
        tags=tuple(extra_tags),
    )


def get_manifest(
    session: Session,
    storage: StorageDriver,
    *,
    owner_id: str,
    image: str,
    reference: str,
    read: bool = True,
    cache: ContentCache | None = None,
    refs: ManifestRefs[Any] | None = None,
) -> StoredManifest:
    """The manifest ``reference`` names, with its bytes when ``read``: one indexed query,
    or none when ``refs`` holds the answer for the image's current generation.

    ``cache`` keeps manifest bytes by digest, so a pull may skip the storage read: only
    the bytes of a digest this image has now are served, and only bytes that hash to it
    are kept.

    :raises ManifestUnknown: nothing by that reference (or its bytes are gone).
    :raises DigestInvalid: a malformed digest.
    """
    ref = parse_reference(reference)
    row = (
        refs.lookup(owner_id, image, reference, lambda: _lookup(session, owner_id, image, ref))
        if refs is not None
        else _lookup(session, owner_id, image, ref)
    )
    if row is None:
        raise ManifestUnknown(f"manifest unknown: {ref}")
    digest, media_type, size = row
    if not read:
        return StoredManifest(digest, media_type, size)
    data = cache.get(digest) if cache is not None else None
    if data is None:
        parsed = parse_digest(digest)
        try:
            data = storage.read_bytes(blob_path(parsed))
        except PathNotFound:
            raise ManifestUnknown(f"manifest unknown: the bytes of {digest} are gone") from None
        if (
            cache is not None
            and len(data) <= cache.max_item
            and digest_of(data, parsed.algorithm) == parsed
        ):
            cache.put(digest, data)
    return StoredManifest(digest, media_type, size, data)


def delete_manifest(
    session: Session,
    *,
    owner_id: str,
    image: str,
    reference: str,
    owner_name: str | None = None,
    by: str | None = None,
) -> None:
    """Untag (``reference`` is a tag) or delete the manifest and every tag on it (a digest).

    ``owner_name`` (for the event; default: the name the image recorded) and ``by`` name
    the owner and the principal.

    :raises ManifestUnknown: no such tag or manifest.
    """
    ref = parse_reference(reference)
    if ref.tag is not None:
        tag = ref.tag
        gone = _transaction(session, lambda: versions.delete_tag(session, owner_id, image, tag))
        events.send(
            events.tag_deleted,
            owner_id=owner_id,
            owner_name=owner_name or gone.owner_name,
            image=image,
            tag=tag,
            digest=gone.digest,
            principal_id=by,
        )
    else:
        digest = str(ref.digest)
        gone = _transaction(
            session, lambda: versions.delete_version(session, owner_id, image, digest)
        )
        events.send(
            events.manifest_deleted,
            owner_id=owner_id,
            owner_name=owner_name or gone.owner_name,
            image=image,
            digest=gone.digest,
            tags=gone.tags,
            principal_id=by,
        )


def _transaction(session: Session, work: Callable[[], T]) -> T:
    """Run ``work`` and commit; a lost race (deadlock, a row gone) is tried again, then 503.

    On any error the transaction is rolled back: nothing is half-written.
    """
    for attempt in range(ATTEMPTS):
        try:
            result = work()
            session.commit()
            return result
        except (IntegrityError, OperationalError, versions.LostRace) as exc:
            session.rollback()
            if attempt == ATTEMPTS - 1:
                raise Unknown("the registry is busy: try again", status=503) from exc
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt raises


def _tag_params(ref: Reference, tags: Sequence[str]) -> list[str]:
    if not tags:
        return []
    if ref.digest is None:
        raise TagInvalid("?tag= is only allowed when pushing by digest")
    if len(tags) > MAX_TAGS_PER_PUSH:
        raise TagInvalid(f"at most {MAX_TAGS_PER_PUSH} tags per push", status=414)
    for tag in tags:
        if not is_valid_tag(tag):
            raise TagInvalid(f"invalid tag {tag!r}", detail={"tag": tag})
    return list(dict.fromkeys(tags))


def _read_body(body: IO[bytes], content_length: int | None, limit: int) -> bytes:
    """At most ``limit`` bytes of ``body``; a larger manifest is 413 MANIFEST_INVALID."""
    too_large = ManifestInvalid(f"the manifest is larger than {limit} bytes", status=413)
    if content_length is not None and content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = body.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise too_large
    return b"".join(chunks)


def _config_metadata(storage: StorageDriver, manifest: Manifest) -> dict[str, Any]:
    """The config's metadata, read from storage before any transaction (it is small)."""
    config = manifest.config
    if config is None:
        return {}
    data = None
    if (config.size or 0) <= metadata.CONFIG_READ_LIMIT:
        try:
            path = blob_path(config.digest)
            if storage.stat(path) <= metadata.CONFIG_READ_LIMIT:
                data = storage.read_bytes(path)
        except PathNotFound:
            pass
    return metadata.config_metadata(config.media_type, data)


def _lookup_statements() -> tuple[Select[str, str, int], Select[str, str, int]]:
    """The by-tag and by-digest lookups, built once: Core tables, bound parameters.

    Both take ``owner_id`` and ``image``; the tag one takes ``tag``, the digest one ``digest``.
    """
    version = PackageVersion.__table__
    file = PackageFile.__table__
    blob = PackageBlob.__table__
    package = Package.__table__
    tag = PackageTag.__table__
    query = (
        select(version.c.digest, version.c.media_type, blob.c.size)
        .join(
            file,
            and_(
                file.c.version_id == version.c.id,
                file.c.position == versions.MANIFEST_POSITION,
            ),
        )
        .join(blob, blob.c.id == file.c.blob_id)
        .join(package, package.c.id == version.c.package_id)
        .where(
            package.c.owner_id == bindparam("owner_id"),
            package.c.type == PACKAGE_TYPE,
            package.c.name == bindparam("image"),
        )
    )
    by_tag = query.join(tag, tag.c.version_id == version.c.id).where(
        tag.c.package_id == package.c.id, tag.c.name == bindparam("tag")
    )
    return by_tag, query.where(version.c.digest == bindparam("digest"))


_BY_TAG, _BY_DIGEST = _lookup_statements()


def _lookup(
    session: Session, owner_id: str, image: str, ref: Reference
) -> tuple[str, str, int] | None:
    """Digest, media type and manifest size of a reference: one query on unique indexes.

    A Core execution (the ORM's per-statement work is not needed), outside any transaction
    unless the session holds one (:func:`read_connection`).
    """
    if ref.tag is not None:
        statement, params = _BY_TAG, {"owner_id": owner_id, "image": image, "tag": ref.tag}
    else:
        statement = _BY_DIGEST
        params = {"owner_id": owner_id, "image": image, "digest": str(ref.digest)}
    with read_connection(session) as connection:
        row = connection.execute(statement, params).one_or_none()
    return None if row is None else (row[0], row[1], row[2])
