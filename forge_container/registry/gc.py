"""Online garbage collection, while pushes go on; a dry run reports what would go.

Four steps, each in batches of ``CONTAINER_REGISTRY_JOB_BATCH_SIZE`` rows and short
transactions:

1. Untagged manifests (:mod:`~forge_container.registry.gc_manifests`).
2. Blob links older than ``GC_GRACE`` that no version of their image uses: uploaded but
   never used (a layer whose manifest is not pushed yet survives the grace).
3. Blobs that nothing links or uses any more, created more than ``GC_GRACE`` ago: the
   bytes, then the row.
4. Images left with no versions, no links and no upload sessions.

Pushes and collection meet on row locks (see :mod:`~forge_container.registry.packages`).
Collection deletes only rows it locks ``FOR UPDATE SKIP LOCKED`` (rows a push holds are
left for the next run), checks again in a fresh statement that nothing uses them now, and
deletes a blob's bytes *before* it commits the row's deletion. A push locks the blob row
(or creates it) before it looks at the bytes, so bytes it finds stay until it commits, and
bytes collected just before are put back from its own upload. On SQLite every writer holds
the database's write lock for its whole transaction, which serializes the same steps.

A dry run removes nothing, and counts in steps 2 to 4 what steps 1 to 3 would have freed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, delete, exists, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from forge_container import events
from forge_container.config import Settings
from forge_container.digest import InvalidDigest, parse_digest
from forge_container.models import (
    BlobLink,
    BlobUpload,
    Package,
    PackageBlob,
    PackageFile,
    PackageVersion,
    utcnow,
)
from forge_container.registry import gc_manifests
from forge_container.registry.gc_manifests import RemovedManifest
from forge_container.registry.packages import keyset_pages, write_lock
from forge_container.storage import StorageDriver, StorageError
from forge_container.storage.paths import blob_path

__all__ = ["GcReport", "RemovedManifest", "collect_garbage"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class GcReport:
    """What a collection removed, or would remove (``dry_run``); ``bytes`` of blobs freed."""

    dry_run: bool
    manifests: tuple[RemovedManifest, ...]
    links: int
    blobs: int
    bytes: int
    images: int


@dataclass
class Gone:
    """Rows a dry run counts as removed, so later steps see what that would free."""

    versions: set[int] = field(default_factory=set)
    #: ``(package id, blob id)`` of the files of removed versions.
    files: set[tuple[int, int]] = field(default_factory=set)
    #: ``id -> (package id, blob id)`` of removed links.
    links: dict[int, tuple[int, int]] = field(default_factory=dict)


def collect_garbage(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Run the four steps; idempotent, and safe to run on several workers at once.

    A real run sends :data:`~forge_container.events.manifest_deleted` for each manifest it
    removed, then :data:`~forge_container.events.gc_finished`.
    """
    now = now or utcnow()
    gone = Gone()
    manifests = gc_manifests.collect(session, settings, now=now, dry_run=dry_run, gone=gone)
    if not dry_run:
        for manifest in manifests:
            events.send(
                events.manifest_deleted,
                owner_id=manifest.owner_id,
                owner_name=manifest.owner_name,
                image=manifest.image,
                digest=manifest.digest,
                tags=(),
                principal_id=None,
            )
    cutoff = now - timedelta(seconds=settings.gc_grace)
    links = _links(session, settings, cutoff, dry_run, gone)
    blobs = _blobs(session, storage, settings, cutoff, dry_run, gone)
    images = _images(session, settings, dry_run, gone)
    report = GcReport(
        dry_run=dry_run,
        manifests=tuple(manifests),
        links=links,
        blobs=len(blobs),
        bytes=sum(blobs),
        images=images,
    )
    if not dry_run:
        events.send(
            events.gc_finished,
            blobs=report.blobs,
            bytes=report.bytes,
            manifests=len(report.manifests),
            links=report.links,
            images=report.images,
        )
    return report


# -- 2. links -----------------------------------------------------------------------------------


def _link_unused() -> ColumnElement[bool]:
    return ~exists().where(
        PackageFile.blob_id == BlobLink.blob_id,
        PackageFile.version_id == PackageVersion.id,
        PackageVersion.package_id == BlobLink.package_id,
    )


def _links(session: Session, settings: Settings, cutoff: datetime, dry: bool, gone: Gone) -> int:
    count = 0
    query = select(BlobLink.id, BlobLink.package_id, BlobLink.blob_id).where(
        BlobLink.created_at < cutoff, _link_unused()
    )
    for rows in keyset_pages(session, query, BlobLink.id, settings.job_batch_size):
        if dry:
            gone.links.update((r.id, (r.package_id, r.blob_id)) for r in rows)
            count += len(rows)
        else:
            count += _attempt(session, 0, _delete_links, session, [r.id for r in rows], cutoff)
    if dry:
        count += _links_freed_by_versions(session, cutoff, gone)
    return count


def _delete_links(session: Session, ids: list[int], cutoff: datetime) -> int:
    return _delete_locked(session, BlobLink, ids, BlobLink.created_at < cutoff, _link_unused())


def _links_freed_by_versions(session: Session, cutoff: datetime, gone: Gone) -> int:
    """Dry run: old links that only removed versions use."""
    count = 0
    for package_id in sorted({package for package, _ in gone.files}):
        used = {
            blob
            for version, blob in session.execute(
                select(PackageFile.version_id, PackageFile.blob_id)
                .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
                .where(PackageVersion.package_id == package_id)
            )
            if version not in gone.versions
        }
        for link_id, blob_id in session.execute(
            select(BlobLink.id, BlobLink.blob_id).where(
                BlobLink.package_id == package_id, BlobLink.created_at < cutoff
            )
        ):
            if link_id not in gone.links and blob_id not in used:
                gone.links[link_id] = (package_id, blob_id)
                count += 1
        session.rollback()
    return count


# -- 3. blobs -----------------------------------------------------------------------------------


def _blob_unreferenced() -> ColumnElement[bool]:
    return and_(
        ~exists().where(BlobLink.blob_id == PackageBlob.id),
        ~exists().where(PackageFile.blob_id == PackageBlob.id),
    )


def _blobs(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    cutoff: datetime,
    dry: bool,
    gone: Gone,
) -> list[int]:
    """The sizes of the blobs removed."""
    sizes: list[int] = []
    query = select(PackageBlob.id, PackageBlob.size).where(
        PackageBlob.created_at < cutoff, _blob_unreferenced()
    )
    for rows in keyset_pages(session, query, PackageBlob.id, settings.job_batch_size):
        if dry:
            sizes.extend(r.size for r in rows)
        else:
            ids = [r.id for r in rows]
            sizes.extend(_attempt(session, [], _delete_blobs, session, storage, ids))
    if dry:
        sizes.extend(_blobs_freed(session, settings, cutoff, gone))
    return sizes


def _delete_blobs(session: Session, storage: StorageDriver, ids: list[int]) -> list[int]:
    write_lock(session)
    locked = _lock(session, PackageBlob, ids)
    rows = session.execute(
        select(PackageBlob.id, PackageBlob.digest, PackageBlob.size).where(
            PackageBlob.id.in_(locked), _blob_unreferenced()
        )
    ).all()
    sizes = []
    for row in rows:
        # The bytes go first, while the row is locked: a push that wants the blob waits for
        # the row, finds it gone, creates it again and stores its own bytes.
        try:
            storage.delete(blob_path(parse_digest(row.digest)))
        except (StorageError, InvalidDigest) as exc:
            log.warning("garbage collection keeps blob %s: %s", row.digest, exc)
            continue
        session.execute(delete(PackageBlob).where(PackageBlob.id == row.id))
        sizes.append(row.size)
    session.commit()
    return sizes


def _blobs_freed(session: Session, settings: Settings, cutoff: datetime, gone: Gone) -> list[int]:
    """Dry run: old blobs that only removed links and versions use."""
    candidates = {blob for _, blob in gone.files} | {blob for _, blob in gone.links.values()}
    sizes: list[int] = []
    for batch in batches(sorted(candidates), settings.job_batch_size):
        used = {
            blob
            for link, blob in session.execute(
                select(BlobLink.id, BlobLink.blob_id).where(BlobLink.blob_id.in_(batch))
            )
            if link not in gone.links
        } | {
            blob
            for version, blob in session.execute(
                select(PackageFile.version_id, PackageFile.blob_id).where(
                    PackageFile.blob_id.in_(batch)
                )
            )
            if version not in gone.versions
        }
        sizes.extend(
            size
            for blob, size in session.execute(
                select(PackageBlob.id, PackageBlob.size).where(
                    PackageBlob.id.in_(batch), PackageBlob.created_at < cutoff
                )
            )
            if blob not in used
        )
        session.rollback()
    return sizes


# -- 4. images ----------------------------------------------------------------------------------


def _image_empty() -> ColumnElement[bool]:
    return and_(
        ~exists().where(PackageVersion.package_id == Package.id),
        ~exists().where(BlobLink.package_id == Package.id),
        ~exists().where(BlobUpload.owner_id == Package.owner_id, BlobUpload.image == Package.name),
    )


def _images(session: Session, settings: Settings, dry: bool, gone: Gone) -> int:
    count = 0
    query = select(Package.id).where(_image_empty())
    for rows in keyset_pages(session, query, Package.id, settings.job_batch_size):
        ids = [r.id for r in rows]
        count += len(ids) if dry else _attempt(session, 0, _delete_images, session, ids)
    if dry:
        count += _images_emptied(session, settings, gone)
    return count


def _delete_images(session: Session, ids: Sequence[int]) -> int:
    return _delete_locked(session, Package, ids, _image_empty())


def _images_emptied(session: Session, settings: Settings, gone: Gone) -> int:
    """Dry run: images whose versions and links would all go (and that have no uploads)."""
    touched = {package for package, _ in gone.files} | {p for p, _ in gone.links.values()}
    count = 0
    for batch in batches(sorted(touched), settings.job_batch_size):
        kept = {
            package
            for version, package in session.execute(
                select(PackageVersion.id, PackageVersion.package_id).where(
                    PackageVersion.package_id.in_(batch)
                )
            )
            if version not in gone.versions
        } | {
            package
            for link, package in session.execute(
                select(BlobLink.id, BlobLink.package_id).where(BlobLink.package_id.in_(batch))
            )
            if link not in gone.links
        }
        uploading = set(
            session.scalars(
                select(Package.id)
                .join(
                    BlobUpload,
                    and_(BlobUpload.owner_id == Package.owner_id, BlobUpload.image == Package.name),
                )
                .where(Package.id.in_(batch))
            )
        )
        count += len(set(batch) - kept - uploading)
        session.rollback()
    return count


# -- helpers ------------------------------------------------------------------------------------


def _lock(session: Session, model: Any, ids: Sequence[int]) -> list[int]:
    """The rows of ``ids`` locked ``FOR UPDATE``; those a push holds are skipped."""
    return list(
        session.scalars(
            select(model.id).where(model.id.in_(ids)).with_for_update(skip_locked=True)
        ).all()
    )


def _delete_locked(
    session: Session, model: Any, ids: Sequence[int], *still: ColumnElement[bool]
) -> int:
    """Delete those of ``ids`` it can lock and that still match ``still``; commits."""
    write_lock(session)
    locked = _lock(session, model, ids)
    doomed = session.scalars(select(model.id).where(model.id.in_(locked), *still)).all()
    if doomed:
        session.execute(delete(model).where(model.id.in_(doomed)))
    session.commit()
    return len(doomed)


def _attempt(session: Session, default: T, work: Callable[..., T], *args: Any) -> T:
    """Run one batch; a busy database (SQLite's lock timeout, say) leaves it for next time."""
    try:
        return work(*args)
    except OperationalError as exc:
        session.rollback()
        log.warning("garbage collection skipped a batch: %s", exc)
        return default


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
