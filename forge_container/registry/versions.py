"""The rows of one pushed manifest: its version, files and tags, checked and written at once.

:func:`write_version` fills the push's only transaction (its caller commits). Concurrent
pushes of the same manifest or tag meet on unique constraints (insert-or-ignore, one
upsert per tag, tags in sorted order so row locks come in one order), never on a lock of
ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, and_, delete, exists, insert, select, update
from sqlalchemy.orm import Session

from forge_container.digest import Digest
from forge_container.errors import ManifestBlobUnknown, ManifestUnknown, SizeInvalid
from forge_container.models import (
    BlobLink,
    Package,
    PackageBlob,
    PackageFile,
    PackageTag,
    PackageVersion,
    utcnow,
)
from forge_container.registry import metadata
from forge_container.registry.manifest_format import Descriptor, Manifest
from forge_container.registry.packages import (
    PACKAGE_TYPE,
    dialect_insert,
    ensure_blob,
    ensure_package,
    find_package,
    insert_new,
    link_blob,
    write_lock,
)

#: Digests per ``IN (...)`` query (SQLite caps bound parameters).
BATCH = 500
#: The manifest's own bytes are the version's first file.
MANIFEST_POSITION = 0
T = TypeVar("T")


@dataclass(frozen=True)
class NewVersion:
    """A checked manifest on its way into an image, with its config's metadata."""

    owner_id: str
    owner_name: str
    image: str
    digest: Digest
    data: bytes
    manifest: Manifest
    config: dict[str, Any]
    #: Tags to point at it, sorted.
    tags: Sequence[str]
    by: str | None


@dataclass(frozen=True)
class Removed:
    """What a delete removed: the manifest's digest, the tags it lost, the owner's name as
    the image recorded it."""

    owner_name: str
    digest: str
    tags: tuple[str, ...]


class LostRace(Exception):
    """A row this push relies on vanished under it; the transaction may be tried again."""


@dataclass(frozen=True)
class _Child:
    descriptor: Descriptor
    blob_id: int
    size: int
    metadata: dict[str, Any]


def write_version(session: Session, push: NewVersion) -> None:
    """Check what the manifest references, then write its version, files and tags.

    The caller commits. Nothing is written before the checks pass.

    :raises ManifestBlobUnknown: a config, layer or child the image does not have.
    :raises SizeInvalid: a descriptor size that differs from the stored content.
    :raises LostRace: the version was deleted meanwhile (so may ``IntegrityError``).
    """
    # What the checks read is locked until the commit (the links and child versions
    # ``FOR KEY SHARE``; all of it on SQLite): garbage collection cannot take it away.
    write_lock(session)
    package = find_package(session, push.owner_id, push.image)
    package_id = package.id if package is not None else None
    blobs = _referenced_blobs(session, package_id, push)
    children = _children(session, package_id, push)
    if package is None:
        package = ensure_package(session, push.owner_id, push.owner_name, push.image)
    manifest_blob = ensure_blob(session, str(push.digest), len(push.data))
    version_id = _ensure_version(session, package.id, push, manifest_blob, blobs, children)
    # Link after the version row: a concurrent delete of this manifest then either committed
    # before (our link is written afresh) or waits for us (it sees the version and keeps it).
    link_blob(session, package, manifest_blob, push.by)
    for name in push.tags:
        _upsert_tag(session, package.id, name, version_id, push.by)


def _referenced_blobs(
    session: Session, package_id: int | None, push: NewVersion
) -> list[tuple[Descriptor, PackageBlob]]:
    """Config and layers as the image links them; foreign layers may be missing."""
    manifest = push.manifest
    if manifest.config is None:
        return []
    descriptors = [manifest.config, *manifest.layers]
    found: dict[str, PackageBlob] = {}
    if package_id is not None:
        for batch in _batches(sorted({str(d.digest) for d in descriptors})):
            query = (
                select(PackageBlob)
                .join(BlobLink, BlobLink.blob_id == PackageBlob.id)
                .where(BlobLink.package_id == package_id, PackageBlob.digest.in_(batch))
                .with_for_update(key_share=True, of=BlobLink)
            )
            found.update((blob.digest, blob) for blob in session.scalars(query))
    result = []
    for descriptor in descriptors:
        blob = found.get(str(descriptor.digest))
        if blob is None:
            if descriptor is not manifest.config and descriptor.foreign:
                continue
            raise ManifestBlobUnknown(
                f"blob {descriptor.digest} is not in {push.image}: push it before the manifest",
                detail={"digest": str(descriptor.digest)},
            )
        _check_size(descriptor, blob.size)
        result.append((descriptor, blob))
    return result


def _children(session: Session, package_id: int | None, push: NewVersion) -> list[_Child]:
    """An index's manifests: each must be a version of this image, of the size it says."""
    wanted = push.manifest.manifests
    if not wanted:
        return []
    rows: dict[str, tuple[int, int, int, dict[str, Any]]] = {}
    if package_id is not None:
        for batch in _batches(sorted({str(d.digest) for d in wanted})):
            query = (
                select(
                    PackageVersion.digest,
                    PackageBlob.id,
                    PackageBlob.size,
                    PackageVersion.size,
                    PackageVersion.metadata_json,
                )
                .join(PackageFile, manifest_file())
                .join(PackageBlob, PackageBlob.id == PackageFile.blob_id)
                .where(PackageVersion.package_id == package_id, PackageVersion.digest.in_(batch))
                .with_for_update(key_share=True, of=PackageVersion)
            )
            rows.update((r[0], (r[1], r[2], r[3], r[4])) for r in session.execute(query))
    children = []
    for descriptor in wanted:
        row = rows.get(str(descriptor.digest))
        if row is None:
            raise ManifestBlobUnknown(
                f"manifest {descriptor.digest} is not in {push.image}:"
                " push an index's manifests before the index",
                detail={"digest": str(descriptor.digest)},
            )
        blob_id, manifest_size, size, child_metadata = row
        _check_size(descriptor, manifest_size)
        children.append(_Child(descriptor, blob_id, size, child_metadata or {}))
    return children


def _ensure_version(
    session: Session,
    package_id: int,
    push: NewVersion,
    manifest_blob: PackageBlob,
    blobs: list[tuple[Descriptor, PackageBlob]],
    children: list[_Child],
) -> int:
    """The version of this digest; its files and metadata are written by whoever creates it."""
    manifest = push.manifest
    files = [(manifest_blob.id, "manifest", manifest.media_type)]
    seen = {manifest_blob.id}
    size = len(push.data)
    for descriptor, blob in blobs:
        if blob.id not in seen:
            seen.add(blob.id)
            role = "config" if descriptor is manifest.config else "layer"
            files.append((blob.id, role, descriptor.media_type))
            size += blob.size
    for child in children:
        if child.blob_id not in seen:
            seen.add(child.blob_id)
            files.append((child.blob_id, "child", child.descriptor.media_type))
            size += child.size
    now = utcnow()
    created = insert_new(
        session,
        PackageVersion,
        {
            "package_id": package_id,
            "digest": str(push.digest),
            "media_type": manifest.media_type,
            "artifact_type": manifest.artifact_type,
            "subject_digest": str(manifest.subject.digest) if manifest.subject else None,
            "size": size,
            "metadata_json": _version_metadata(push, blobs, children, size),
            "created_by": push.by,
            "created_at": now,
            "updated_at": now,
        },
    )
    if created is not None:
        session.execute(
            insert(PackageFile),
            [
                {"version_id": created.id, "blob_id": b, "role": r, "media_type": m, "position": i}
                for i, (b, r, m) in enumerate(files)
            ],
        )
        return created.id
    row = session.execute(
        select(PackageVersion.id, PackageVersion.media_type).where(
            PackageVersion.package_id == package_id, PackageVersion.digest == str(push.digest)
        )
    ).one_or_none()
    if row is None:
        raise LostRace(f"version {push.digest} was deleted during the push")
    if row.media_type != manifest.media_type:
        # The same bytes without a mediaType field, pushed under another Content-Type.
        session.execute(
            update(PackageVersion)
            .where(PackageVersion.id == row.id)
            .values(media_type=manifest.media_type, updated_at=now)
        )
    return cast(int, row.id)


def _version_metadata(
    push: NewVersion,
    blobs: list[tuple[Descriptor, PackageBlob]],
    children: list[_Child],
    size: int,
) -> dict[str, Any]:
    manifest = push.manifest
    referrer = manifest.subject is not None
    if manifest.is_index:
        return metadata.index_metadata(
            [
                metadata.IndexChild(
                    digest=str(c.descriptor.digest),
                    media_type=c.descriptor.media_type,
                    platform=c.descriptor.platform,
                    annotations=c.descriptor.annotations,
                    size=c.size,
                    metadata=c.metadata,
                )
                for c in children
            ],
            annotations=manifest.annotations,
            artifact_type=manifest.artifact_type,
            size=size,
            referrer=referrer,
        )
    stored = {str(d.digest) for d, _ in blobs}
    return metadata.image_metadata(
        push.config,
        annotations=manifest.annotations,
        layers=[
            metadata.Layer(str(d.digest), d.size or 0, d.media_type, str(d.digest) in stored)
            for d in manifest.layers
        ],
        artifact_type=manifest.artifact_type,
        size=size,
        referrer=referrer,
    )


def _upsert_tag(
    session: Session, package_id: int, name: str, version_id: int, by: str | None
) -> None:
    """Point tag ``name`` at the version: one statement, whoever created the tag row."""
    statement = dialect_insert(session)(PackageTag).values(
        package_id=package_id, name=name, version_id=version_id, updated_by=by, updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[PackageTag.package_id, PackageTag.name],
            set_={
                "version_id": statement.excluded.version_id,
                "updated_by": statement.excluded.updated_by,
                "updated_at": statement.excluded.updated_at,
            },
            where=PackageTag.version_id != statement.excluded.version_id,
        )
    )


def delete_tag(session: Session, owner_id: str, image: str, tag: str) -> Removed:
    """Remove tag ``tag`` (the version stays)."""
    version_id = session.scalar(
        delete(PackageTag)
        .where(PackageTag.package_id == package_id_of(owner_id, image), PackageTag.name == tag)
        .returning(PackageTag.version_id)
    )
    if version_id is None:
        raise ManifestUnknown(f"manifest unknown: no tag {tag!r}")
    row = session.execute(
        select(Package.owner_name, PackageVersion.digest)
        .join(Package, Package.id == PackageVersion.package_id)
        .where(PackageVersion.id == version_id)
    ).one()
    return Removed(owner_name=row.owner_name, digest=row.digest, tags=(tag,))


def delete_version(session: Session, owner_id: str, image: str, digest: str) -> Removed:
    """Delete a version, its files, its tags and, unless still used, its manifest's link."""
    row = session.execute(
        select(PackageVersion.id, PackageVersion.package_id, Package.owner_name)
        .join(Package, Package.id == PackageVersion.package_id)
        .where(
            PackageVersion.package_id == package_id_of(owner_id, image),
            PackageVersion.digest == digest,
        )
    ).one_or_none()
    if row is None:
        raise ManifestUnknown(f"manifest unknown: {digest}")
    version_id, package_id, owner_name = row
    blob_id = session.scalar(
        select(PackageFile.blob_id).where(
            PackageFile.version_id == version_id, PackageFile.position == MANIFEST_POSITION
        )
    )
    tags = session.scalars(
        delete(PackageTag).where(PackageTag.version_id == version_id).returning(PackageTag.name)
    ).all()
    session.execute(delete(PackageFile).where(PackageFile.version_id == version_id))
    if not rowcount(session.execute(delete(PackageVersion).where(PackageVersion.id == version_id))):
        raise ManifestUnknown(f"manifest unknown: {digest}")
    removed = Removed(owner_name=owner_name, digest=digest, tags=tuple(sorted(tags)))
    if blob_id is None:
        return removed
    # The manifest bytes stay servable as a blob only while another version uses them.
    still_used = session.scalar(
        select(
            exists()
            .where(PackageFile.blob_id == blob_id)
            .where(PackageFile.version_id == PackageVersion.id)
            .where(PackageVersion.package_id == package_id)
        )
    )
    if not still_used:
        session.execute(
            delete(BlobLink).where(BlobLink.package_id == package_id, BlobLink.blob_id == blob_id)
        )
    return removed


def manifest_file() -> Any:
    """Join condition: a version's manifest file (its first)."""
    return and_(
        PackageFile.version_id == PackageVersion.id,
        PackageFile.position == MANIFEST_POSITION,
    )


def package_id_of(owner_id: str, image: str) -> Any:
    """The image's package id, as a scalar subquery."""
    return (
        select(Package.id)
        .where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.name == image)
        .scalar_subquery()
    )


def _check_size(descriptor: Descriptor, stored: int) -> None:
    if descriptor.size is not None and stored != descriptor.size:
        raise SizeInvalid(
            f"{descriptor.digest} is {stored} bytes, the manifest says {descriptor.size}",
            detail={"digest": str(descriptor.digest), "size": descriptor.size},
        )


def _batches(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def rowcount(result: Any) -> int:
    """Rows a DELETE or UPDATE touched."""
    return cast(CursorResult[Any], result).rowcount
