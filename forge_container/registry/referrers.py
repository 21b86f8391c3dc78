"""The referrers API: manifests of an image whose ``subject`` is a given manifest.

Referrers are listed in byte order of their digests, which gives stable pages (push time
would not: two manifests may be pushed in the same instant).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from forge_container.digest import Digest, InvalidDigest, parse_digest
from forge_container.errors import DigestInvalid, PaginationNumberInvalid
from forge_container.models import PackageBlob, PackageFile, PackageVersion
from forge_container.names import ImageName
from forge_container.registry.packages import binary_collation, find_package

#: Referrers per response; more are reached through the ``Link`` header.
MAX_PAGE = 1000


@dataclass(frozen=True)
class Referrer:
    """A descriptor of one referring manifest, as the referrers index lists it."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferrersPage:
    """One page of referrers; ``more`` when a next page exists."""

    referrers: list[Referrer]
    more: bool


def parse_subject(value: str) -> Digest:
    """The subject digest of the URL, or DIGEST_INVALID."""
    try:
        return parse_digest(value)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc)) from None


def parse_page_size(value: str | None) -> int:
    """``n``: absent means :data:`MAX_PAGE`; larger values are cut down to it."""
    if value is None or value == "":
        return MAX_PAGE
    if not value.isdigit():
        raise PaginationNumberInvalid(f"n must be a whole number, got {value!r}")
    return min(int(value), MAX_PAGE)


def list_referrers(
    session: Session,
    owner_id: str,
    name: ImageName,
    subject: Digest,
    *,
    artifact_types: Collection[str] = (),
    n: int = MAX_PAGE,
    last: str | None = None,
) -> ReferrersPage:
    """Versions of ``name`` whose subject is ``subject``, after digest ``last``, at most ``n``.

    An image or subject nobody pushed has no referrers: the page is empty, never an error.
    ``artifact_types`` keeps only those types (a version's own, else its config's).
    """
    if last is not None:
        last = str(parse_subject(last))
    # A type no database can hold (PostgreSQL refuses NUL) matches nothing.
    wanted = sorted(t for t in artifact_types if "\0" not in t)
    package = find_package(session, owner_id, name.image)
    if package is None or n == 0 or (artifact_types and not wanted):
        return ReferrersPage(referrers=[], more=False)
    digest = PackageVersion.digest.collate(binary_collation(session))
    query = (
        select(
            PackageVersion.media_type,
            PackageVersion.digest,
            PackageBlob.size,
            PackageVersion.artifact_type,
            PackageVersion.metadata_json,
        )
        # Only versions whose manifest file is written: the descriptor needs its size.
        .join(
            PackageFile,
            and_(PackageFile.version_id == PackageVersion.id, PackageFile.role == "manifest"),
        )
        .join(PackageBlob, PackageBlob.id == PackageFile.blob_id)
        .where(
            PackageVersion.package_id == package.id,
            PackageVersion.subject_digest == str(subject),
        )
        .order_by(digest)
        .limit(n + 1)
    )
    if wanted:
        query = query.where(PackageVersion.artifact_type.in_(wanted))
    if last is not None:
        query = query.where(digest > last)
    rows = session.execute(query).all()
    referrers = [
        Referrer(
            media_type=media_type,
            digest=version_digest,
            size=size,
            artifact_type=artifact_type,
            annotations=_annotations(metadata),
        )
        for media_type, version_digest, size, artifact_type, metadata in rows[:n]
    ]
    return ReferrersPage(referrers=referrers, more=len(rows) > n)


def _annotations(metadata: Any) -> dict[str, str]:
    """The manifest's own annotations, as the manifests service stored them."""
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}
