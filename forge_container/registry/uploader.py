"""Who uploads into which image, and what a stored or mounted blob records for them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from forge_container import events
from forge_container.digest import Digest
from forge_container.registry import quota
from forge_container.registry.blobs import BlobInfo
from forge_container.registry.packages import ensure_blob, ensure_package, link_blob


@dataclass(frozen=True)
class Uploader:
    """Who uploads into which image; a session is bound to all of it but ``is_admin``
    (a site admin's pushes may be exempt from quotas)."""

    owner_id: str
    owner_name: str
    image: str
    principal_id: str | None
    is_admin: bool = False

    @property
    def pusher(self) -> quota.Pusher:
        """The owner as the quota checks see them."""
        return quota.Pusher(
            owner_id=self.owner_id, owner_name=self.owner_name, is_admin=self.is_admin
        )


def link(session: Session, who: Uploader, digest: Digest, size: int) -> BlobInfo:
    """Record the blob and link it to the image, its row locked (the caller commits)."""
    package = ensure_package(session, who.owner_id, who.owner_name, who.image)
    blob = ensure_blob(session, str(digest), size)
    link_blob(session, package, blob, who.principal_id)
    return BlobInfo(digest=blob.digest, size=blob.size)


def announce(who: Uploader, info: BlobInfo, *, mounted: bool) -> None:
    """Tell the host (after the commit) that the image now holds the blob."""
    events.send(
        events.blob_uploaded,
        owner_id=who.owner_id,
        owner_name=who.owner_name,
        image=who.image,
        digest=info.digest,
        size=info.size,
        mounted=mounted,
        principal_id=who.principal_id,
    )
