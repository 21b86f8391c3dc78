"""Images for the cleanup rule tests: versions and tags written straight into the tables.

Each version gets a manifest blob row, its files (index children point at their
children's manifest blobs, as a push writes them) and chosen timestamps, so rules can be
tested at any age without waiting. ``NOW`` is the moment the tests run the rules at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from forge_container.mediatypes import OCI_INDEX, OCI_MANIFEST
from forge_container.models import PackageFile, PackageTag, PackageVersion
from forge_container.registry.packages import ensure_blob, ensure_package, link_blob

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def digest_of(key: str) -> str:
    """The digest a test names ``key`` (not the hash of any real manifest)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Image:
    """One image of an owner; ``version`` and ``tag`` add rows and return the digest."""

    def __init__(
        self, session: Session, name: str = "app", owner_id: str = "u:1", owner: str = "alice"
    ) -> None:
        self.session = session
        self.name = name
        self.owner_id = owner_id
        self.package = ensure_package(session, owner_id, owner, name)
        self.package_id = self.package.id
        session.commit()

    def version(
        self,
        key: str,
        *,
        age: timedelta = 30 * DAY,
        children: Sequence[str] = (),
        subject: str | None = None,
        size: int = 1000,
        tags: Sequence[str] = (),
    ) -> str:
        """A manifest (an index when it has ``children``: their keys) pushed ``age`` ago."""
        digest = digest_of(key)
        blob = ensure_blob(self.session, digest, 100)
        link_blob(self.session, self.package, blob, None)
        created = NOW - age
        version_id = self.session.scalar(
            insert(PackageVersion)
            .values(
                package_id=self.package_id,
                digest=digest,
                media_type=OCI_INDEX if children else OCI_MANIFEST,
                subject_digest=digest_of(subject) if subject else None,
                size=size,
                metadata_json={},
                created_at=created,
                updated_at=created,
            )
            .returning(PackageVersion.id)
        )
        files = [{"version_id": version_id, "blob_id": blob.id, "role": "manifest", "position": 0}]
        for position, child in enumerate(children, start=1):
            child_blob = ensure_blob(self.session, digest_of(child), 100)
            files.append(
                {
                    "version_id": version_id,
                    "blob_id": child_blob.id,
                    "role": "child",
                    "position": position,
                }
            )
        self.session.execute(insert(PackageFile), files)
        self.session.commit()
        for tag in tags:
            self.tag(tag, key, age=age)
        return digest

    def tag(self, name: str, key: str, *, age: timedelta = 30 * DAY) -> None:
        """Point tag ``name`` at version ``key``, pushed ``age`` ago."""
        version_id = self.session.scalar(
            select(PackageVersion.id).where(
                PackageVersion.package_id == self.package_id,
                PackageVersion.digest == digest_of(key),
            )
        )
        self.session.execute(
            insert(PackageTag).values(
                package_id=self.package_id,
                name=name,
                version_id=version_id,
                updated_at=NOW - age,
            )
        )
        self.session.commit()

    def tags(self) -> set[str]:
        return set(
            self.session.scalars(
                select(PackageTag.name).where(PackageTag.package_id == self.package_id)
            )
        )

    def versions(self) -> set[str]:
        """Keys are not stored: the digests left."""
        return set(
            self.session.scalars(
                select(PackageVersion.digest).where(PackageVersion.package_id == self.package_id)
            )
        )
