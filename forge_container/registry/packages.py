"""Packages, blobs and links: conflict-safe get-or-create for concurrent pushes.

Two pushes of the same image or blob race to insert the same row; the unique constraints
decide, ``INSERT ... ON CONFLICT DO NOTHING`` makes the loser a no-op, and both then read
the winner's row. No global lock, no duplicate rows, no 500.

Pushes and garbage collection meet on row locks: a push holds the package and blob rows it
uses (``FOR KEY SHARE`` on PostgreSQL, the write lock on SQLite) until it commits, and
collection deletes only rows it could lock ``FOR UPDATE SKIP LOCKED``, deleting a blob's
bytes before it commits the row's deletion (:mod:`forge_container.registry.gc`). So bytes
a push finds under its lock stay, and a row a push locked is never collected under it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Row, Select, false, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from forge_container.models import Base, BlobLink, Package, PackageBlob, utcnow

PACKAGE_TYPE = "container"
#: Lock-or-create rounds before giving up (a collection can delete a row between two).
LOCK_ATTEMPTS = 3
_Ts = TypeVarTuple("_Ts")
M = TypeVar("M", bound=Base)


def write_lock(session: Session) -> None:
    """On SQLite, take the database's write lock now, before the reads a change relies on.

    SQLite has no row locks and one writer at a time: a no-op ``UPDATE`` begins the write
    transaction, so what is read next stays as read until the commit. On PostgreSQL this
    does nothing; the queries lock the rows they rely on themselves.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Package)
            .where(false())
            .values(id=Package.id)
            .execution_options(synchronize_session=False)
        )


def keyset_pages(
    session: Session,
    query: Select[Any, *_Ts],
    key: InstrumentedAttribute[Any],
    size: int,
    start: Any = 0,
) -> Iterator[Sequence[Row[Any, *_Ts]]]:
    """``query``'s rows in pages of ``size``, by ascending ``key`` (its first column) from
    ``start``; each page is read in its own short transaction, so no snapshot stays open."""
    last = start
    while True:
        rows = session.execute(query.where(key > last).order_by(key).limit(size)).all()
        session.rollback()
        if not rows:
            return
        last = rows[-1][0]
        yield rows


def dialect_insert(session: Session) -> Any:
    """The ``insert`` construct of the session's database, with its ``ON CONFLICT`` clauses."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert
    if dialect == "sqlite":
        return sqlite_insert
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover


def _insert_or_nothing(session: Session, model: type[Base], values: dict[str, Any]) -> Any:
    return dialect_insert(session)(model).values(**values).on_conflict_do_nothing()


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert a row unless a unique constraint already holds one like it; ``True`` if inserted."""
    # RETURNING, not rowcount: psycopg reports -1 rows for any INSERT.
    key = sa_inspect(model).primary_key
    statement = _insert_or_nothing(session, model, values).returning(*key)
    return session.execute(statement).first() is not None


def insert_new(session: Session, model: type[M], values: dict[str, Any]) -> M | None:
    """The row inserted, as an entity of the session, or ``None`` if one like it exists.

    One statement where inserting and reading back took two.
    """
    statement = _insert_or_nothing(session, model, values).returning(model)
    return session.scalars(statement).one_or_none()


def find_package(session: Session, owner_id: str, image: str) -> Package | None:
    """The image's package row, if anything was ever pushed to it."""
    return session.scalars(
        select(Package).where(
            Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.name == image
        )
    ).one_or_none()


def ensure_package(session: Session, owner_id: str, owner_name: str, image: str) -> Package:
    """The image's package, created on first push and locked until the transaction ends
    (garbage collection leaves it alone); the owner's current name is recorded."""
    write_lock(session)
    query = (
        select(Package)
        .where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.name == image)
        .with_for_update(key_share=True)
    )
    for _ in range(LOCK_ATTEMPTS):
        package = session.scalars(query).one_or_none()
        if package is not None:
            if package.owner_name != owner_name:
                package.owner_name = owner_name
            return package
        now = utcnow()
        package = insert_new(
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
        if package is not None:
            return package  # uncommitted, so nobody else sees it, let alone locks it
    raise RuntimeError(f"package {owner_id}/{image} keeps vanishing")  # pragma: no cover


def find_blob(session: Session, digest: str) -> PackageBlob | None:
    return session.scalars(select(PackageBlob).where(PackageBlob.digest == digest)).one_or_none()


def ensure_blob(session: Session, digest: str, size: int) -> PackageBlob:
    """The blob row for ``digest``, created if missing and locked until the transaction ends.

    Garbage collection deletes a blob's bytes only while it holds the row (see the module
    docstring), so under this lock the caller checks the bytes are in storage, or puts them
    there, before it commits.
    """
    write_lock(session)
    query = select(PackageBlob).where(PackageBlob.digest == digest).with_for_update(key_share=True)
    for _ in range(LOCK_ATTEMPTS):
        blob = session.scalars(query).one_or_none()
        if blob is not None:
            return blob
        blob = insert_new(
            session, PackageBlob, {"digest": digest, "size": size, "created_at": utcnow()}
        )
        if blob is not None:
            return blob
    raise RuntimeError(f"blob {digest} keeps vanishing")  # pragma: no cover


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


def binary_collation(session: Session) -> str:
    """Byte-order collation: PostgreSQL's default collation would sort case-insensitively."""
    return "C" if session.get_bind().dialect.name == "postgresql" else "BINARY"
