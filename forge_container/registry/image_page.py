"""What an image's page shows: its tags, untagged versions and one version in detail
(:mod:`~forge_container.registry.version_detail`); and deleting a tag or a version."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from forge_container.digest import InvalidDigest, parse_digest
from forge_container.errors import ManifestUnknown, NameUnknown
from forge_container.models import PackageFile, PackageTag, PackageVersion
from forge_container.names import is_valid_tag
from forge_container.registry import manifests
from forge_container.registry.browse import Page, as_utc, distinct_size, page_bounds
from forge_container.registry.packages import binary_collation, find_package
from forge_container.registry.version_detail import (
    Platform,
    VersionDetail,
    kind_of,
    platforms,
    tags_of,
    version_detail,
)
from forge_container.registry.versions import MANIFEST_POSITION

TAG_SORTS = ("pushed", "name")


@dataclass(frozen=True)
class TagRow:
    name: str
    digest: str
    kind: str
    platforms: tuple[Platform, ...]
    size: int
    pushed_at: datetime
    pushed_by: str | None
    referrers: int


@dataclass(frozen=True)
class VersionRow:
    digest: str
    kind: str
    platforms: tuple[Platform, ...]
    size: int
    pushed_at: datetime
    pushed_by: str | None


@dataclass(frozen=True)
class ImageView:
    name: str
    size: int
    tags: tuple[TagRow, ...]
    tag_page: Page
    untagged: tuple[VersionRow, ...]
    untagged_page: Page
    selected: VersionDetail | None

    @property
    def principal_ids(self) -> frozenset[str]:
        """Everyone the page names as a pusher (for the host to name)."""
        rows: Iterable[TagRow | VersionRow | VersionDetail | None] = (
            *self.tags,
            *self.untagged,
            self.selected,
        )
        return frozenset(r.pushed_by for r in rows if r is not None and r.pushed_by)


@dataclass(frozen=True)
class Deletion:
    """What a delete would remove: a tag, or a version with every tag on it."""

    tag: str | None
    digest: str
    tags: tuple[str, ...]
    #: After a delete: whether the image still has a version (else its page is gone).
    image_left: bool = True


def image_view(
    session: Session,
    owner_id: str,
    image: str,
    *,
    tag_sort: str = "pushed",
    tag_page: int = 1,
    untagged_page: int = 1,
    per_page: int = 25,
    tag: str | None = None,
    digest: str | None = None,
    repository_id: str | None = None,
) -> ImageView:
    """An image's tags and untagged versions, and the details of one version.

    The version shown is ``digest``'s, else ``tag``'s, else ``latest``'s, else the last
    pushed tag's. ``repository_id`` (the forge repository the image's first component
    names) is recorded on the image when it changed.

    :raises NameUnknown: nothing was ever pushed to the image.
    :raises ManifestUnknown: no such ``tag`` or ``digest``.
    """
    package = find_package(session, owner_id, image)
    if package is None or not _has_versions(session, package.id):
        raise NameUnknown(f"no image {image}")
    if repository_id is not None and package.repository_id != repository_id:
        package.repository_id = repository_id
        session.commit()
    order = (
        [PackageTag.updated_at.desc(), PackageTag.id.desc()]
        if tag_sort == "pushed"
        else [PackageTag.name.collate(binary_collation(session))]
    )
    tag_total = session.scalar(
        select(func.count()).select_from(PackageTag).where(PackageTag.package_id == package.id)
    )
    tag_number, tag_count, offset = page_bounds(tag_total or 0, tag_page, per_page)
    tag_rows = session.execute(
        select(PackageTag, PackageVersion)
        .join(PackageVersion, PackageVersion.id == PackageTag.version_id)
        .where(PackageTag.package_id == package.id)
        .order_by(*order)
        .offset(offset)
        .limit(per_page)
    ).all()
    counts = _referrer_counts(session, package.id, [v.digest for _, v in tag_rows])
    tags = tuple(
        TagRow(
            name=t.name,
            digest=v.digest,
            kind=kind_of(v),
            platforms=platforms(v.metadata_json),
            size=v.size,
            pushed_at=as_utc(t.updated_at),
            pushed_by=t.updated_by,
            referrers=counts.get(v.digest, 0),
        )
        for t, v in tag_rows
    )
    untagged_query = _untagged(package.id)
    untagged_total = session.scalar(select(func.count()).select_from(untagged_query.subquery()))
    u_number, u_count, u_offset = page_bounds(untagged_total or 0, untagged_page, per_page)
    untagged = tuple(
        _version_row(v)
        for v in session.scalars(
            untagged_query.order_by(PackageVersion.created_at.desc(), PackageVersion.id.desc())
            .offset(u_offset)
            .limit(per_page)
        )
    )
    selected = _select_version(session, package.id, tag=tag, digest=digest)
    return ImageView(
        name=image,
        size=distinct_size(session, [package.id]),
        tags=tags,
        tag_page=Page(tag_number, tag_count, tag_total or 0),
        untagged=untagged,
        untagged_page=Page(u_number, u_count, untagged_total or 0),
        selected=version_detail(session, package.id, selected) if selected is not None else None,
    )


def deletion(
    session: Session, owner_id: str, image: str, *, tag: str | None, digest: str | None
) -> Deletion:
    """What deleting ``tag`` (or version ``digest``) would remove.

    :raises ManifestUnknown: no such tag or version.
    """
    package = find_package(session, owner_id, image)
    version = None
    if package is not None:
        version = _select_version(session, package.id, tag=tag, digest=digest, fallback=False)
    if package is None or version is None:
        raise ManifestUnknown(f"no {'tag ' + repr(tag) if tag else 'version ' + str(digest)}")
    return Deletion(
        tag=tag if digest is None else None,
        digest=version.digest,
        tags=tags_of(session, version.id),
    )


def delete(
    session: Session,
    owner_id: str,
    image: str,
    *,
    tag: str | None,
    digest: str | None,
    owner_name: str | None = None,
    by: str | None = None,
) -> Deletion:
    """Remove a tag, or a version and its tags, as ``DELETE /v2/.../manifests/...`` does
    (the same events go out, naming ``owner_name`` and principal ``by``)."""
    target = deletion(session, owner_id, image, tag=tag, digest=digest)
    reference = target.tag if target.tag is not None else target.digest
    manifests.delete_manifest(
        session,
        owner_id=owner_id,
        image=image,
        reference=reference,
        owner_name=owner_name,
        by=by,
    )
    package = find_package(session, owner_id, image)
    return replace(target, image_left=package is not None and _has_versions(session, package.id))


def _has_versions(session: Session, package_id: int) -> bool:
    return bool(session.scalar(select(exists().where(PackageVersion.package_id == package_id))))


def _version_row(version: PackageVersion) -> VersionRow:
    return VersionRow(
        digest=version.digest,
        kind=kind_of(version),
        platforms=platforms(version.metadata_json),
        size=version.size,
        pushed_at=as_utc(version.created_at),
        pushed_by=version.created_by,
    )


def _referrer_counts(session: Session, package_id: int, digests: Sequence[str]) -> dict[str, int]:
    if not digests:
        return {}
    query = (
        select(PackageVersion.subject_digest, func.count())
        .where(
            PackageVersion.package_id == package_id,
            PackageVersion.subject_digest.in_(sorted(set(digests))),
        )
        .group_by(PackageVersion.subject_digest)
    )
    return {str(subject): int(count) for subject, count in session.execute(query)}


def _untagged(package_id: int) -> Any:
    """Versions without a tag that are neither an index's child nor a referrer."""
    own = aliased(PackageFile)
    child = aliased(PackageFile)
    parent = aliased(PackageVersion)
    is_child = (
        exists()
        .where(own.version_id == PackageVersion.id, own.position == MANIFEST_POSITION)
        .where(child.blob_id == own.blob_id, child.role == "child")
        .where(parent.id == child.version_id, parent.package_id == package_id)
    )
    return select(PackageVersion).where(
        PackageVersion.package_id == package_id,
        PackageVersion.subject_digest.is_(None),
        ~exists().where(PackageTag.version_id == PackageVersion.id),
        ~is_child,
    )


def _select_version(
    session: Session,
    package_id: int,
    *,
    tag: str | None,
    digest: str | None,
    fallback: bool = True,
) -> PackageVersion | None:
    base = select(PackageVersion).where(PackageVersion.package_id == package_id)
    if digest and not is_digest(digest):
        raise ManifestUnknown(f"no version {digest!r}")
    if tag and not is_valid_tag(tag):
        raise ManifestUnknown(f"no tag {tag!r}")
    if digest:
        found = session.scalars(base.where(PackageVersion.digest == digest)).one_or_none()
        if found is None:
            raise ManifestUnknown(f"no version {digest}")
        return found
    tagged = base.join(PackageTag, PackageTag.version_id == PackageVersion.id)
    if tag:
        found = session.scalars(tagged.where(PackageTag.name == tag)).one_or_none()
        if found is None:
            raise ManifestUnknown(f"no tag {tag!r}")
        return found
    if not fallback:
        return None
    return (
        session.scalars(
            tagged.order_by(
                (PackageTag.name == "latest").desc(), PackageTag.updated_at.desc(), PackageTag.id
            ).limit(1)
        ).first()
        or session.scalars(
            base.order_by(PackageVersion.created_at.desc(), PackageVersion.id.desc()).limit(1)
        ).first()
    )


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except InvalidDigest:
        return False
    return True
