"""Packages, blobs and links: conflict-safe get-or-create for concurrent pushes.

Two pushes of the same image or blob race to insert the same row; the unique constraints
decide, ``INSERT ... ON CONFLICT DO NOTHING`` makes the loser a no-op, and both then read
the winner's row. No global lock, no duplicate rows, no 500.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from forge_container.models import Base, BlobLink, Package, PackageBlob, utcnow

PACKAGE_TYPE = "container"


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert a row unless a unique constraint already holds one like it; ``True`` if inserted."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = pg_insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two databases above are supported
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    # RETURNING, not rowcount: psycopg reports -1 rows for any INSERT.
    key = sa_inspect(model).primary_key
    return session.execute(statement.returning(*key)).first() is not None


def find_package(session: Session, owner_id: str, image: str) -> Package | None:
    """The image's package row, if anything was ever pushed to it."""
    return session.scalars(
        select(Package).where(
            Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.name == image
        )
    ).one_or_none()


def ensure_package(session: Session, owner_id: str, owner_name: str, image: str) -> Package:
    """The image's package, created on first push; the owner's current name is recorded."""
    package = find_package(session, owner_id, image)
    if package is None:
        now = utcnow()
        insert_ignore(
            session,
            Package,
            {
                "owner_id": owner_id,
                "owner_name": owner_name,
                "type": PACKAGE_TYPE,
                "name": image,
                "created_at": now,
                "updated_at": now,
            },
        )
        package = find_package(session, owner_id, image)
        assert package is not None
    elif package.owner_name != owner_name:
        package.owner_name = owner_name
    return package


def find_blob(session: Session, digest: str) -> PackageBlob | None:
    return session.scalars(select(PackageBlob).where(PackageBlob.digest == digest)).one_or_none()


def ensure_blob(session: Session, digest: str, size: int) -> PackageBlob:
    """The blob row for stored content (its bytes must already be in storage)."""
    blob = find_blob(session, digest)
    if blob is None:
        insert_ignore(
            session, PackageBlob, {"digest": digest, "size": size, "created_at": utcnow()}
        )
        blob = find_blob(session, digest)
        assert blob is not None
    return blob


def link_blob(session: Session, package: Package, blob: PackageBlob, by: str | None) -> None:
    """Let ``package`` serve ``blob`` (idempotent)."""
    insert_ignore(
        session,
        BlobLink,
        {"package_id": package.id, "blob_id": blob.id, "created_by": by, "created_at": utcnow()},
    )


def linked_blob(session: Session, package_id: int, digest: str) -> PackageBlob | None:
    """``digest`` if the image links it, else ``None`` (storage is shared, access is not)."""
    return session.scalars(
        select(PackageBlob)
        .join(BlobLink, BlobLink.blob_id == PackageBlob.id)
        .where(BlobLink.package_id == package_id, PackageBlob.digest == digest)
    ).one_or_none()
