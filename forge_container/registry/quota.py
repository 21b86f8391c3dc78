"""Owners' storage quotas: what an owner uses, what it may use, and the checks on push.

Three quotas per owner (a user or an organisation), each ``0`` for unlimited:

- **total size**: the bytes of the *distinct* blobs the owner's images hold, i.e. blobs
  linked to any of its images (finished uploads and mounts) or referenced by a file of any
  of its versions. A layer shared by ten of the owner's images counts once; a blob shared
  with another owner counts for both. Upload sessions still in progress count nothing.
- **versions**: the owner's manifests (every ``PackageVersion``: tagged or not, index
  children and referrers included).
- **blob size**: the size of any one blob it stores, manifests included.

The limits are the ``CONTAINER_REGISTRY_QUOTA_*`` settings, overridden per owner by an
:class:`~forge_container.models.OwnerQuota` row (``NULL``: the setting; ``0``: unlimited).
Site admins are exempt when ``CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS`` is on.

Checks run when an upload finishes (before its bytes reach the content-addressed store),
on a mount, and on a manifest push (before anything is stored); a push that does not grow
the usage always passes, so an owner over a lowered limit can still re-tag. The limits are
*soft* under concurrency: the check and the write are separate short steps without a lock,
so pushes of one owner finishing at the same instant may each pass and overshoot a limit by
what they add (at most one push per worker thread). No lock is taken, and with every limit
unlimited (the default) a check costs one indexed lookup.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, delete, exists, func, select, union, update
from sqlalchemy.orm import Session

from forge_container import events
from forge_container.config import Settings
from forge_container.errors import Denied
from forge_container.models import (
    BlobLink,
    OwnerQuota,
    Package,
    PackageBlob,
    PackageFile,
    PackageVersion,
    utcnow,
)
from forge_container.registry.packages import PACKAGE_TYPE, insert_ignore
from forge_container.sizes import human_size


class Quota(enum.Enum):
    """The three quotas; the value names the column and the error detail's ``quota``."""

    TOTAL_SIZE = "total_size"
    VERSIONS = "versions"
    BLOB_SIZE = "blob_size"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Limits:
    """Effective limits of one owner; ``0`` is unlimited."""

    total_size: int
    versions: int
    blob_size: int

    def of(self, quota: Quota) -> int:
        value: int = getattr(self, quota.value)
        return value


@dataclass(frozen=True)
class Override:
    """An owner's own limits; ``None`` falls back to the setting, ``0`` is unlimited."""

    total_size: int | None = None
    versions: int | None = None
    blob_size: int | None = None

    def of(self, quota: Quota) -> int | None:
        value: int | None = getattr(self, quota.value)
        return value

    def over(self, base: Limits) -> Limits:
        """``base`` with this override's limits in place of its own."""

        def pick(quota: Quota) -> int:
            value = self.of(quota)
            return base.of(quota) if value is None else value

        return Limits(**{quota.value: pick(quota) for quota in Quota})


@dataclass(frozen=True)
class Usage:
    """What an owner's images hold: distinct blob bytes and manifests."""

    total_size: int
    versions: int


@dataclass(frozen=True)
class Report:
    """One owner's usage against its quota (``flask container usage``)."""

    owner_id: str
    owner_name: str
    usage: Usage
    limits: Limits
    override: Override


@dataclass(frozen=True)
class Pusher:
    """Whose namespace a push goes to, and whether the pusher is a site admin."""

    owner_id: str
    owner_name: str
    is_admin: bool = False


class QuotaExceeded(Denied):
    """A push would exceed a quota (403 DENIED); the message names the quota and numbers.

    ``detail``: ``owner``, ``quota`` (``total_size``, ``versions`` or ``blob_size``),
    ``limit``, ``usage`` (before the push; for ``blob_size`` the blob's size) and
    ``requested`` (what the usage would become; for ``blob_size`` the blob's size).
    """

    def __init__(
        self, owner_name: str, quota: Quota, *, limit: int, usage: int, requested: int
    ) -> None:
        if quota is Quota.BLOB_SIZE:
            what = (
                f"a blob of {human_size(requested)} exceeds the limit of"
                f" {human_size(limit)} per blob"
            )
        elif quota is Quota.VERSIONS:
            what = (
                f"{requested} versions would exceed the limit of {limit} versions ({usage} in use)"
            )
        else:
            what = (
                f"total size {human_size(requested)} would exceed the limit of"
                f" {human_size(limit)} ({human_size(usage)} in use)"
            )
        super().__init__(
            f"quota exceeded for owner {owner_name}: {what}",
            detail={
                "owner": owner_name,
                "quota": quota.value,
                "limit": limit,
                "usage": usage,
                "requested": requested,
            },
        )
        self.quota = quota
        self.limit = limit
        self.requested = requested


def defaults(settings: Settings) -> Limits:
    """The limits of an owner without overrides."""
    return Limits(
        total_size=settings.quota_total_size,
        versions=settings.quota_versions,
        blob_size=settings.quota_blob_size,
    )


def get_override(session: Session, owner_id: str) -> Override:
    """The owner's overrides (all ``None`` when it has none)."""
    row = session.scalars(select(OwnerQuota).where(OwnerQuota.owner_id == owner_id)).one_or_none()
    if row is None:
        return Override()
    return Override(total_size=row.total_size, versions=row.versions, blob_size=row.blob_size)


def limits_for(session: Session, settings: Settings, owner_id: str) -> Limits:
    """The owner's effective limits: its overrides, else the settings."""
    return get_override(session, owner_id).over(defaults(settings))


def set_override(session: Session, owner_id: str, changes: Mapping[Quota, int | None]) -> Override:
    """Change some of the owner's overrides (``None``: back to the setting) and commit.

    :raises ValueError: a negative limit.
    """
    for quota, value in changes.items():
        if value is not None and value < 0:
            raise ValueError(f"{quota.label}: a limit cannot be negative")
    now = utcnow()
    insert_ignore(session, OwnerQuota, {"owner_id": owner_id, "created_at": now, "updated_at": now})
    if changes:
        session.execute(
            update(OwnerQuota)
            .where(OwnerQuota.owner_id == owner_id)
            .values({**{quota.value: value for quota, value in changes.items()}, "updated_at": now})
            .execution_options(synchronize_session=False)
        )
    session.commit()
    return get_override(session, owner_id)


def reset_override(session: Session, owner_id: str) -> bool:
    """Drop the owner's overrides and commit; ``True`` if it had any row."""
    result: Any = session.execute(
        delete(OwnerQuota)
        .where(OwnerQuota.owner_id == owner_id)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)


def usage_of(session: Session, owner_id: str) -> Usage:
    """The owner's usage, as the quotas count it (see the module's docstring)."""
    total = session.scalar(
        select(func.coalesce(func.sum(PackageBlob.size), 0)).where(
            PackageBlob.id.in_(_owner_blob_ids(owner_id))
        )
    )
    return Usage(total_size=int(total or 0), versions=_versions(session, owner_id))


def owners(session: Session) -> list[tuple[str, str]]:
    """``(owner id, owner name as its images recorded it)`` of every owner with images."""
    rows = session.execute(
        select(Package.owner_id, func.max(Package.owner_name))
        .where(Package.type == PACKAGE_TYPE)
        .group_by(Package.owner_id)
    ).all()
    return sorted(((row[0], row[1]) for row in rows), key=lambda row: (row[1].lower(), row[0]))


def report(session: Session, settings: Settings, owner_id: str, owner_name: str) -> Report:
    """The owner's usage against its effective limits."""
    override = get_override(session, owner_id)
    return Report(
        owner_id=owner_id,
        owner_name=owner_name,
        usage=usage_of(session, owner_id),
        limits=override.over(defaults(settings)),
        override=override,
    )


def check_blob(
    session: Session, settings: Settings, pusher: Pusher, digest: str, size: int
) -> None:
    """Whether the owner may store blob ``digest`` of ``size`` bytes (upload or mount).

    :raises QuotaExceeded: the blob is larger than one blob may be, or it would take the
        owner's total size over its limit (a blob the owner already holds adds nothing).
    """
    limits = _applicable(session, settings, pusher)
    if limits is None:
        return
    with _reported(pusher):
        _check_blob_size(pusher, limits, size)
        if limits.total_size and not _holds(session, pusher.owner_id, digest):
            _check_total_size(session, pusher, limits, size)


def check_manifest(
    session: Session, settings: Settings, pusher: Pusher, *, image: str, digest: str, size: int
) -> None:
    """Whether the owner may push manifest ``digest`` of ``size`` bytes to ``image``.

    Its config, layers and children are already counted (they are in the image); what a
    push adds is one version (unless the image has it) and the manifest's own bytes.

    :raises QuotaExceeded: the manifest is larger than one blob may be, or it would take
        the owner's versions or total size over the limit.
    """
    limits = _applicable(session, settings, pusher)
    if limits is None:
        return
    with _reported(pusher):
        _check_blob_size(pusher, limits, size)
        if limits.versions and not _has_version(session, pusher.owner_id, image, digest):
            versions = _versions(session, pusher.owner_id)
            if versions + 1 > limits.versions:
                raise QuotaExceeded(
                    pusher.owner_name,
                    Quota.VERSIONS,
                    limit=limits.versions,
                    usage=versions,
                    requested=versions + 1,
                )
        if limits.total_size and not _holds(session, pusher.owner_id, digest):
            _check_total_size(session, pusher, limits, size)


@contextmanager
def _reported(pusher: Pusher) -> Iterator[None]:
    """Send :data:`~forge_container.events.quota_refused` for a refusal, then raise it."""
    try:
        yield
    except QuotaExceeded as exc:
        events.send(
            events.quota_refused,
            owner_id=pusher.owner_id,
            owner_name=pusher.owner_name,
            quota=exc.quota.value,
            limit=exc.limit,
            requested=exc.requested,
        )
        raise


def _applicable(session: Session, settings: Settings, pusher: Pusher) -> Limits | None:
    """The limits to check, or ``None`` when there are none (or the pusher is exempt)."""
    if pusher.is_admin and settings.quota_exempt_admins:
        return None
    limits = limits_for(session, settings, pusher.owner_id)
    if not (limits.total_size or limits.versions or limits.blob_size):
        return None
    return limits


def _check_blob_size(pusher: Pusher, limits: Limits, size: int) -> None:
    if limits.blob_size and size > limits.blob_size:
        raise QuotaExceeded(
            pusher.owner_name, Quota.BLOB_SIZE, limit=limits.blob_size, usage=size, requested=size
        )


def _check_total_size(session: Session, pusher: Pusher, limits: Limits, size: int) -> None:
    used = usage_of(session, pusher.owner_id).total_size
    if used + size > limits.total_size:
        raise QuotaExceeded(
            pusher.owner_name,
            Quota.TOTAL_SIZE,
            limit=limits.total_size,
            usage=used,
            requested=used + size,
        )


def _versions(session: Session, owner_id: str) -> int:
    count = session.scalar(
        select(func.count(PackageVersion.id))
        .join(Package, Package.id == PackageVersion.package_id)
        .where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE)
    )
    return int(count or 0)


def _owner_blob_ids(owner_id: str) -> CompoundSelect[Any]:
    """Ids of the blobs the owner's images link or whose versions reference (distinct)."""
    packages = select(Package.id).where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE)
    linked = select(BlobLink.blob_id).where(BlobLink.package_id.in_(packages))
    referenced = (
        select(PackageFile.blob_id)
        .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
        .where(PackageVersion.package_id.in_(packages))
    )
    return union(linked, referenced)


def _holds(session: Session, owner_id: str, digest: str) -> bool:
    """Whether the owner's usage already counts blob ``digest``."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    PackageBlob.digest == digest, PackageBlob.id.in_(_owner_blob_ids(owner_id))
                )
            )
        )
    )


def _has_version(session: Session, owner_id: str, image: str, digest: str) -> bool:
    return bool(
        session.scalar(
            select(
                exists()
                .where(PackageVersion.package_id == Package.id)
                .where(
                    Package.owner_id == owner_id,
                    Package.type == PACKAGE_TYPE,
                    Package.name == image,
                    PackageVersion.digest == digest,
                )
            )
        )
    )
