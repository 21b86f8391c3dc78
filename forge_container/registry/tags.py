"""Listing an image's tags, in the spec's lexical order, page by page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from forge_container.errors import NameUnknown, PaginationNumberInvalid
from forge_container.models import PackageTag
from forge_container.names import ImageName
from forge_container.registry.packages import binary_collation, find_package

#: The largest page a client may ask for; larger ``n`` are cut down to it.
MAX_PAGE = 10_000


@dataclass(frozen=True)
class TagPage:
    """One page of tags; ``more`` when a next page exists."""

    name: str
    tags: list[str]
    more: bool


def parse_page_size(value: str | None) -> int | None:
    """``n`` from the query string: absent, or a whole number (cut down to :data:`MAX_PAGE`)."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise PaginationNumberInvalid(f"n must be a whole number, got {value!r}")
    return min(int(value), MAX_PAGE)


def list_tags(
    session: Session, owner_id: str, name: ImageName, *, n: int | None, last: str | None
) -> TagPage:
    """Tags of ``name`` after ``last`` in byte order, at most ``n`` (all when ``None``)."""
    package = find_package(session, owner_id, name.image)
    if package is None:
        raise NameUnknown(f"repository name not known to registry: {name}")
    column = PackageTag.name.collate(binary_collation(session))
    query = select(PackageTag.name).where(PackageTag.package_id == package.id).order_by(column)
    if last:
        query = query.where(column > last)
    limit = MAX_PAGE if n is None else n
    rows = list(session.scalars(query.limit(limit + 1)))
    return TagPage(name=str(name), tags=rows[:limit], more=len(rows) > limit)
