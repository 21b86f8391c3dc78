"""Cross-repository mounts: link a blob another image holds instead of uploading it again
(``POST /v2/<name>/blobs/uploads/?mount=<digest>[&from=<image>]``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from forge_container.config import Settings
from forge_container.digest import InvalidDigest, parse_digest
from forge_container.models import BlobLink, Package, PackageBlob
from forge_container.registry import quota
from forge_container.registry.blobs import BlobInfo
from forge_container.registry.packages import PACKAGE_TYPE
from forge_container.registry.uploader import Uploader, announce, link
from forge_container.storage import StorageDriver
from forge_container.storage.paths import blob_path

__all__ = ["MOUNT_CANDIDATES", "MountCandidate", "mount_blob"]

#: Images searched for a blob to mount when the client names no source.
MOUNT_CANDIDATES = 50


@dataclass(frozen=True)
class MountCandidate:
    """An image that links the blob to mount; the caller decides whether it may read it."""

    owner_id: str
    owner_name: str
    image: str


def mount_blob(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    who: Uploader,
    digest: str,
    *,
    source: tuple[str, str] | None,
    may_read: Callable[[MountCandidate], bool],
) -> BlobInfo | None:
    """Link a blob another image already links (``POST .../uploads/?mount=``).

    ``source`` is the ``(owner id, image)`` named by ``from``; without it, images linking the
    blob are searched (the caller's own first, at most :data:`MOUNT_CANDIDATES`). Only those
    for which ``may_read`` says yes count. ``None`` when nothing could be mounted.

    :raises QuotaExceeded: the blob is over the owner's quota; nothing is linked.
    """
    try:
        parsed = parse_digest(digest)
    except InvalidDigest:
        return None
    query = (
        select(Package.owner_id, Package.owner_name, Package.name, PackageBlob.size)
        .join(BlobLink, BlobLink.package_id == Package.id)
        .join(PackageBlob, PackageBlob.id == BlobLink.blob_id)
        .where(PackageBlob.digest == str(parsed), Package.type == PACKAGE_TYPE)
    )
    if source is not None:
        query = query.where(Package.owner_id == source[0], Package.name == source[1])
    mine_first = case((Package.owner_id == who.owner_id, 0), else_=1)
    rows = session.execute(query.order_by(mine_first, Package.id).limit(MOUNT_CANDIDATES)).all()
    for row in rows:
        if may_read(MountCandidate(row.owner_id, row.owner_name, row.name)):
            quota.check_blob(session, settings, who.pusher, str(parsed), row.size)
            info = link(session, who, parsed, row.size)
            if not storage.exists(blob_path(parsed)):  # checked under the blob's lock
                session.rollback()
                return None
            session.commit()
            announce(who, info, mounted=True)
            return info
    return None
