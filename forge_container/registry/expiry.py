"""Abandoned uploads: sessions idle longer than ``CONTAINER_REGISTRY_UPLOAD_EXPIRY``, and
files under ``uploads/`` that no session owns.

A session counts as idle from its ``updated_at``, which every chunk and every claim renewal
moves (:mod:`~forge_container.registry.upload_claims`), so a claimed session whose writer
died expires like any other. It is deleted only if ``updated_at`` is still what was read:
a request that wrote meanwhile keeps it alive. Its row goes first, then its file.

An orphan file is one whose upload id has no session row: a monolithic upload
(``POST ...?digest=``) streams into one while it runs, and a crash can leave one behind.
It goes once nothing has written to it for the expiry time (the driver's ``modified``).
Deleting an upload path is the driver's business: on S3 it aborts the multipart upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from forge_container.config import Settings
from forge_container.models import BlobUpload, utcnow
from forge_container.registry.packages import keyset_pages
from forge_container.registry.upload_claims import stored_size
from forge_container.storage import InvalidPath, PathNotFound, StorageDriver
from forge_container.storage.paths import UPLOADS, upload_id_from_path, upload_path


@dataclass(frozen=True)
class ExpiryReport:
    """Sessions and orphan files removed (or that would be, ``dry_run``), and their bytes."""

    dry_run: bool
    sessions: int
    orphans: int
    bytes: int


def expire_uploads(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ExpiryReport:
    """Remove sessions idle since before ``now - UPLOAD_EXPIRY``, then orphan files."""
    cutoff = (now or utcnow()) - timedelta(seconds=settings.upload_expiry)
    sessions, session_bytes = _sessions(session, storage, settings, cutoff, dry_run)
    orphans, orphan_bytes = _orphans(session, storage, settings, cutoff, dry_run)
    return ExpiryReport(
        dry_run=dry_run,
        sessions=sessions,
        orphans=orphans,
        bytes=session_bytes + orphan_bytes,
    )


def _sessions(
    session: Session, storage: StorageDriver, settings: Settings, cutoff: datetime, dry: bool
) -> tuple[int, int]:
    count = size = 0
    query = select(BlobUpload.id, BlobUpload.updated_at).where(BlobUpload.updated_at < cutoff)
    for rows in keyset_pages(session, query, BlobUpload.id, settings.job_batch_size, start=""):
        for row in rows:
            path = upload_path(row.id)
            held = stored_size(storage, path)
            if not dry:
                result: Any = session.execute(
                    delete(BlobUpload).where(
                        BlobUpload.id == row.id, BlobUpload.updated_at == row.updated_at
                    )
                )
                session.commit()
                if result.rowcount != 1:
                    continue  # written to since it was read: still alive
                storage.delete(path)
            count += 1
            size += held
    return count, size


def _orphans(
    session: Session, storage: StorageDriver, settings: Settings, cutoff: datetime, dry: bool
) -> tuple[int, int]:
    count = size = 0
    for batch in _batches(_upload_files(storage), settings.job_batch_size):
        known = set(session.scalars(select(BlobUpload.id).where(BlobUpload.id.in_(list(batch)))))
        session.rollback()
        for upload_id, path in batch.items():
            if upload_id in known:
                continue
            modified = _modified(storage, path)
            if modified is None or modified >= cutoff.timestamp():
                continue
            held = stored_size(storage, path)
            if dry or storage.delete(path):
                count += 1
                size += held
    return count, size


def _upload_files(storage: StorageDriver) -> Iterator[tuple[str, str]]:
    """``(upload id, path)`` of every upload file in storage."""
    for path in storage.list(UPLOADS):
        try:
            yield upload_id_from_path(path), path
        except InvalidPath:
            continue  # not ours: leave it alone


def _batches(items: Iterator[tuple[str, str]], size: int) -> Iterator[dict[str, str]]:
    batch: dict[str, str] = {}
    for key, value in items:
        batch[key] = value
        if len(batch) == size:
            yield batch
            batch = {}
    if batch:
        yield batch


def _modified(storage: StorageDriver, path: str) -> float | None:
    """When the file was last written to (a POSIX timestamp); ``None`` if it is gone."""
    try:
        return storage.modified(path)
    except PathNotFound:
        return None
