"""Listing the images a caller can read, in byte order of their full names, page by page.

Rows are filtered after the query (the forge decides who reads what), so a page is filled
from batches of rows; a request examines a bounded number of rows and, when that runs out
before the page is full, hands back a cursor instead of the name of an unreadable image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, String, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from forge_container.errors import NameInvalid, PaginationNumberInvalid
from forge_container.models import Package, PackageVersion
from forge_container.names import ImageName
from forge_container.registry.packages import PACKAGE_TYPE, binary_collation

#: A request examines at most this many rows per entry asked for ...
SCAN_FACTOR = 10
#: ... and never fewer than this many.
MIN_SCAN = 100
#: Rows fetched per query while filling a page.
BATCH_SIZE = 200
#: A ``last`` longer than any name is refused rather than sent to the database.
MAX_LAST_LENGTH = 512

#: ``readable(name, owner_id)``: whether the caller may pull the stored image ``name``.
Readable = Callable[[ImageName, str], bool]


@dataclass(frozen=True)
class CatalogPage:
    """One page of full image names.

    ``more`` when another page may exist; ``resume_after`` is the package id to continue
    after when the scan stopped early (so the next link names no unreadable image).
    """

    repositories: list[str]
    more: bool
    resume_after: int | None = None


def parse_page_size(value: str | None, maximum: int) -> int:
    """``n``: absent means ``maximum``; above it or not a whole number is refused."""
    if value is None or value == "":
        return maximum
    if not value.isdigit():
        raise PaginationNumberInvalid(f"n must be a whole number, got {value!r}")
    n = int(value)
    if n > maximum:
        raise PaginationNumberInvalid(f"n must be at most {maximum}, got {n}")
    return n


def parse_cursor(value: str | None) -> int | None:
    """``after``, the opaque cursor of a short page: a package id."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise PaginationNumberInvalid(f"after must be a cursor from a Link header, got {value!r}")
    return int(value)


def list_repositories(
    session: Session,
    readable: Readable,
    *,
    n: int,
    last: str | None = None,
    after: int | None = None,
) -> CatalogPage:
    """Readable images after ``last`` (or after package ``after``), at most ``n``."""
    if last is not None and (len(last) > MAX_LAST_LENGTH or "\0" in last):
        raise NameInvalid("last must be a repository name")
    if n == 0:
        return CatalogPage(repositories=[], more=False)
    full_name = _full_name(session)
    # Position after which to continue: a name, and the id of a row with that very name
    # (two stale owner names may be equal; the id keeps them apart within a scan).
    bound, bound_id = last, None
    if after is not None:
        resumed = session.scalar(select(full_name).where(Package.id == after))
        if resumed is not None and (bound is None or resumed >= bound):
            bound, bound_id = resumed, after
    has_version = exists().where(PackageVersion.package_id == Package.id)
    query = (
        select(Package.id, full_name, Package.owner_id)
        .where(Package.type == PACKAGE_TYPE, has_version)
        .order_by(full_name, Package.id)
    )
    budget = max(SCAN_FACTOR * n, MIN_SCAN)
    found: list[str] = []
    examined = 0
    while examined < budget:
        batch = min(BATCH_SIZE, budget - examined)
        rows = session.execute(_after(query, full_name, bound, bound_id).limit(batch)).all()
        for package_id, name, owner_id in rows:
            examined += 1
            bound, bound_id = name, package_id
            if _readable(readable, name, owner_id):
                if len(found) == n:
                    return CatalogPage(repositories=found, more=True)
                found.append(name)
        if len(rows) < batch:
            return CatalogPage(repositories=found, more=False)
    # The scan budget ran out with rows left: the page may be short, the link continues.
    if len(found) == n:
        return CatalogPage(repositories=found, more=True)
    return CatalogPage(repositories=found, more=True, resume_after=bound_id)


def _after(
    query: Select[int, str, str],
    full_name: ColumnElement[str],
    bound: str | None,
    bound_id: int | None,
) -> Select[int, str, str]:
    if bound is None:
        return query
    if bound_id is None:
        return query.where(full_name > bound)
    return query.where(or_(full_name > bound, and_(full_name == bound, Package.id > bound_id)))


def _readable(readable: Readable, full_name: str, owner_id: str) -> bool:
    owner, _, image = full_name.partition("/")
    return readable(ImageName(owner=owner, image=image), owner_id)


def _full_name(session: Session) -> ColumnElement[str]:
    """``<owner>/<image>`` as clients write it, compared byte by byte."""
    owner = func.lower(Package.owner_name, type_=String)
    return owner.concat("/").concat(Package.name).collate(binary_collation(session))
