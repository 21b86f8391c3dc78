"""The package pages' listings: an owner's images, and the images of a forge repository.

Read-only queries over the package tables, shaped for pages (frozen dataclasses); who may
see what is decided by the caller (``readable``). Nothing here knows of Flask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from forge_container.models import Package, PackageBlob, PackageFile, PackageTag, PackageVersion
from forge_container.registry.packages import PACKAGE_TYPE, binary_collation
from forge_container.registry.versions import BATCH, rowcount

#: ``readable(image)``: whether the caller may pull ``<owner>/<image>``.
Readable = Callable[[str], bool]
PACKAGE_SORTS = ("name", "pushed")


@dataclass(frozen=True)
class Page:
    """Where a paginated list stands: page ``number`` of ``count``, ``total`` rows."""

    number: int
    count: int
    total: int


@dataclass(frozen=True)
class PackageSummary:
    name: str
    tags: int
    versions: int
    size: int
    pushed_at: datetime | None
    repository_id: str | None


@dataclass(frozen=True)
class PackageList:
    packages: tuple[PackageSummary, ...]
    page: Page
    #: Images the caller can see, whatever the search.
    visible: int
    #: Bytes of every image the caller can see (shared layers counted once).
    total_size: int


def owner_packages(
    session: Session,
    owner_id: str,
    readable: Readable,
    *,
    query: str = "",
    sort: str = "name",
    page: int = 1,
    per_page: int = 25,
) -> PackageList:
    """The owner's images the caller can read, filtered by ``query``, sorted, one page."""
    versions = (
        select(
            PackageVersion.package_id,
            func.count().label("count"),
            func.max(PackageVersion.created_at).label("pushed"),
        )
        .group_by(PackageVersion.package_id)
        .subquery()
    )
    tags = (
        select(
            PackageTag.package_id,
            func.count().label("count"),
            func.max(PackageTag.updated_at).label("pushed"),
        )
        .group_by(PackageTag.package_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Package.id,
            Package.name,
            Package.repository_id,
            versions.c.count,
            versions.c.pushed,
            tags.c.count,
            tags.c.pushed,
        )
        .join(versions, versions.c.package_id == Package.id)
        .outerjoin(tags, tags.c.package_id == Package.id)
        .where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE)
        .order_by(Package.name.collate(binary_collation(session)))
    ).all()
    visible = [row for row in rows if readable(row.name)]
    needle = query.strip().lower()
    matching = [row for row in visible if needle in row.name]
    if sort == "pushed":
        matching.sort(key=lambda row: _latest(row[4], row[6]) or _EPOCH, reverse=True)
    number, count, chosen = _slice(matching, page, per_page)
    sizes = _package_sizes(session, [row.id for row in chosen])
    packages = tuple(
        PackageSummary(
            name=row.name,
            tags=row[5] or 0,
            versions=row[3],
            size=sizes.get(row.id, 0),
            pushed_at=_latest(row[4], row[6]),
            repository_id=row.repository_id,
        )
        for row in chosen
    )
    return PackageList(
        packages=packages,
        page=Page(number, count, len(matching)),
        visible=len(visible),
        total_size=distinct_size(session, [row.id for row in visible]),
    )


def repository_packages(
    session: Session, owner_id: str, repository_id: str, repository_name: str, readable: Readable
) -> tuple[PackageSummary, ...]:
    """The images linked to a forge repository; images named after it are linked first."""
    first = repository_name.lower()
    linked = session.execute(
        update(Package)
        .where(
            Package.owner_id == owner_id,
            Package.type == PACKAGE_TYPE,
            Package.repository_id.is_(None),
            or_(Package.name == first, Package.name.startswith(first + "/", autoescape=True)),
        )
        .values(repository_id=repository_id)
    )
    if rowcount(linked):
        session.commit()
    page = owner_packages(session, owner_id, readable, per_page=10_000)
    return tuple(p for p in page.packages if p.repository_id == repository_id)


# -- helpers ------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _latest(*values: datetime | None) -> datetime | None:
    present = [as_utc(v) for v in values if v is not None]
    return max(present) if present else None


def page_bounds(total: int, page: int, per_page: int) -> tuple[int, int, int]:
    """``(page, pages, offset)`` with ``page`` clamped into range."""
    count = max(1, math.ceil(total / per_page))
    number = min(max(page, 1), count)
    return number, count, (number - 1) * per_page


def _slice(rows: Sequence[Any], page: int, per_page: int) -> tuple[int, int, Sequence[Any]]:
    number, count, offset = page_bounds(len(rows), page, per_page)
    return number, count, rows[offset : offset + per_page]


def _batches(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _package_sizes(session: Session, package_ids: Sequence[int]) -> dict[int, int]:
    """Bytes per image: every blob its versions use, once."""
    sizes: dict[int, int] = {}
    for batch in _batches(package_ids):
        used = (
            select(PackageVersion.package_id, PackageFile.blob_id)
            .join(PackageFile, PackageFile.version_id == PackageVersion.id)
            .where(PackageVersion.package_id.in_(batch))
            .distinct()
            .subquery()
        )
        query = (
            select(used.c.package_id, func.sum(PackageBlob.size))
            .join(PackageBlob, PackageBlob.id == used.c.blob_id)
            .group_by(used.c.package_id)
        )
        sizes.update((package_id, int(size or 0)) for package_id, size in session.execute(query))
    return sizes


def distinct_size(session: Session, package_ids: Sequence[int]) -> int:
    """Bytes of the blobs these images use, each blob once however many images share it."""
    blobs: dict[int, int] = {}
    for batch in _batches(package_ids):
        query = (
            select(PackageBlob.id, PackageBlob.size)
            .join(PackageFile, PackageFile.blob_id == PackageBlob.id)
            .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
            .where(PackageVersion.package_id.in_(batch))
            .distinct()
        )
        blobs.update((blob_id, size) for blob_id, size in session.execute(query))
    return sum(blobs.values())
