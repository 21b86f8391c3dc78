"""Applying owners' cleanup rules: preview, or remove in bounded batches; events after commit.

What a rule removes from an image is decided in :mod:`~forge_container.registry.cleanup_plan`;
here the plan is carried out, parents before children, ``settings.job_batch_size`` removals
per transaction, each removal checked again in its transaction (a tag pushed, or an index
listing the manifest, since the plan keeps it). Blobs are left to garbage collection. The
rules themselves are stored by :mod:`~forge_container.registry.cleanup_rules` (re-exported).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from forge_container import events
from forge_container.config import Settings
from forge_container.errors import ManifestUnknown
from forge_container.models import (
    Package,
    PackageBlob,
    PackageFile,
    PackageTag,
    PackageVersion,
    utcnow,
)
from forge_container.registry import versions
from forge_container.registry.cleanup_plan import Doomed, Plan, Rule, Tag, Version, plan_image
from forge_container.registry.cleanup_rules import (
    RuleInfo,
    RuleInvalid,
    as_utc,
    compiled,
    delete_rule,
    enabled_rules,
    get_rule,
    save_rule,
)
from forge_container.registry.packages import PACKAGE_TYPE, write_lock
from forge_container.storage import StorageDriver

__all__ = [
    "CleanupReport",
    "RemovedTag",
    "RemovedVersion",
    "RuleInfo",
    "RuleInvalid",
    "apply_rules",
    "delete_rule",
    "get_rule",
    "preview",
    "save_rule",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemovedTag:
    """A tag removed from a manifest that stays."""

    owner_id: str
    owner_name: str
    image: str
    tag: str
    digest: str


@dataclass(frozen=True)
class RemovedVersion:
    """A manifest removed with its tags; ``reason`` as in :class:`.cleanup_plan.Doomed`."""

    owner_id: str
    owner_name: str
    image: str
    digest: str
    tags: tuple[str, ...]
    size: int
    reason: str


@dataclass(frozen=True)
class CleanupReport:
    """What a run removed, or would remove (``dry_run``).

    ``size`` adds up the removed images as pushed (an index holds its children's sizes, so
    they count once); layers still used elsewhere are in it, and GC frees the bytes later.
    ``failed`` names the owners or images whose cleanup failed (logged; tried again next run).
    """

    dry_run: bool
    rules: int = 0
    versions: tuple[RemovedVersion, ...] = ()
    tags: tuple[RemovedTag, ...] = ()
    size: int = 0
    failed: tuple[str, ...] = ()

    @property
    def tag_count(self) -> int:
        """Every tag removed, those of removed manifests included."""
        return len(self.tags) + sum(len(v.tags) for v in self.versions)

    def __add__(self, other: CleanupReport) -> CleanupReport:
        return replace(
            self,
            rules=self.rules + other.rules,
            versions=self.versions + other.versions,
            tags=self.tags + other.tags,
            size=self.size + other.size,
            failed=self.failed + other.failed,
        )


def preview(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    owner_id: str,
    *,
    now: datetime | None = None,
) -> CleanupReport:
    """What the owner's rule would remove now, enabled or not (empty without a rule)."""
    rule = get_rule(session, owner_id)
    session.rollback()
    if rule is None:
        return CleanupReport(dry_run=True)
    return _run_rule(session, settings, rule, now=now or utcnow(), dry_run=True)


def apply_rules(
    session: Session,
    storage: StorageDriver,
    settings: Settings,
    *,
    owner_id: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CleanupReport:
    """Run every enabled rule (or only ``owner_id``'s); a failing owner does not stop the rest.

    Commits as it goes (start with no pending changes in ``session``). Idempotent: a second
    run at the same ``now`` removes nothing more. ``storage`` is unused: blobs are GC's.
    """
    moment = now or utcnow()
    report = CleanupReport(dry_run=dry_run)
    for rule in enabled_rules(session, owner_id, settings.job_batch_size):
        report += _run_rule(session, settings, rule, now=moment, dry_run=dry_run)
    return report


def _run_rule(
    session: Session, settings: Settings, rule: RuleInfo, *, now: datetime, dry_run: bool
) -> CleanupReport:
    report = CleanupReport(dry_run=dry_run, rules=1)
    try:
        criteria = compiled(rule)
    except RuleInvalid:
        log.exception("cleanup rule of owner %s cannot run", rule.owner_id)
        return replace(report, failed=(rule.owner_id,))
    grace = timedelta(seconds=settings.gc_grace)
    for package_id, image, owner_name in _packages(session, rule.owner_id, settings.job_batch_size):
        try:
            plan = _plan(session, criteria, package_id, image, now=now, grace=grace)
        except SQLAlchemyError:
            report += _failed(session, dry_run, owner_name, image)
            continue
        finally:
            session.rollback()
        if dry_run:
            report += _report_of(rule.owner_id, owner_name, image, plan)
        else:
            report += _carry_out(session, settings, rule.owner_id, owner_name, image, plan)
    return report


def _failed(session: Session, dry_run: bool, owner_name: str, image: str) -> CleanupReport:
    session.rollback()
    log.exception("cleanup of %s/%s failed; it is tried again next run", owner_name, image)
    return CleanupReport(dry_run=dry_run, failed=(f"{owner_name}/{image}",))


def _packages(session: Session, owner_id: str, batch: int) -> Iterator[tuple[int, str, str]]:
    last = 0
    while True:
        rows = session.execute(
            select(Package.id, Package.name, Package.owner_name)
            .where(Package.owner_id == owner_id, Package.type == PACKAGE_TYPE, Package.id > last)
            .order_by(Package.id)
            .limit(batch)
        ).all()
        session.rollback()
        yield from ((r.id, r.name, r.owner_name) for r in rows)
        if len(rows) < batch:
            return
        last = rows[-1].id


def _plan(
    session: Session, rule: Rule, package_id: int, image: str, *, now: datetime, grace: timedelta
) -> Plan:
    found = session.execute(
        select(
            PackageVersion.id,
            PackageVersion.digest,
            PackageVersion.subject_digest,
            PackageVersion.size,
            PackageVersion.created_at,
            PackageVersion.updated_at,
        ).where(PackageVersion.package_id == package_id)
    )
    version_list = [
        Version(
            r.id,
            r.digest,
            r.subject_digest,
            r.size or 0,
            as_utc(r.created_at),
            as_utc(r.updated_at),
        )
        for r in found
    ]
    tags = [
        Tag(r.id, r.name, r.version_id, r.digest, as_utc(r.updated_at))
        for r in session.execute(
            select(
                PackageTag.id,
                PackageTag.name,
                PackageTag.version_id,
                PackageVersion.digest,
                PackageTag.updated_at,
            )
            .join(PackageVersion, PackageVersion.id == PackageTag.version_id)
            .where(PackageTag.package_id == package_id)
        )
    ]
    children: dict[int, list[str]] = {}
    for version_id, digest in session.execute(
        select(PackageFile.version_id, PackageBlob.digest)
        .join(PackageBlob, PackageBlob.id == PackageFile.blob_id)
        .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
        .where(PackageVersion.package_id == package_id, PackageFile.role == "child")
    ):
        children.setdefault(version_id, []).append(digest)
    return plan_image(rule, image, version_list, tags, children, now=now, grace=grace)


def _report_of(owner_id: str, owner_name: str, image: str, plan: Plan) -> CleanupReport:
    return CleanupReport(
        dry_run=True,
        tags=tuple(_removed_tag(owner_id, owner_name, image, t) for t in plan.untag),
        versions=tuple(
            _removed_version(owner_id, owner_name, image, d, tuple(t.name for t in d.tags))
            for d in plan.delete
        ),
        size=sum(d.version.size for d in plan.delete if not d.in_removed_index),
    )


def _carry_out(
    session: Session, settings: Settings, owner_id: str, owner_name: str, image: str, plan: Plan
) -> CleanupReport:
    """Do the plan, ``job_batch_size`` removals per transaction; events after each commit."""
    work: list[Tag | Doomed] = [*plan.untag, *plan.delete]
    report = CleanupReport(dry_run=False)
    for start in range(0, len(work), settings.job_batch_size):
        tags: list[RemovedTag] = []
        removed: list[RemovedVersion] = []
        size = 0
        try:
            write_lock(session)
            for item in work[start : start + settings.job_batch_size]:
                if isinstance(item, Tag):
                    if _untag(session, item):
                        tags.append(_removed_tag(owner_id, owner_name, image, item))
                    continue
                untagged, deleted = _delete(session, owner_id, image, item)
                if deleted:
                    removed.append(_removed_version(owner_id, owner_name, image, item, untagged))
                    size += 0 if item.in_removed_index else item.version.size
                else:
                    tags.extend(
                        RemovedTag(owner_id, owner_name, image, name, item.version.digest)
                        for name in untagged
                    )
            session.commit()
        except SQLAlchemyError:
            return report + _failed(session, False, owner_name, image)
        except BaseException:
            session.rollback()
            raise
        for tag in tags:
            events.send(events.tag_deleted, **_event(tag), tag=tag.tag, principal_id=None)
        for version in removed:
            events.send(
                events.manifest_deleted, **_event(version), tags=version.tags, principal_id=None
            )
        report += CleanupReport(dry_run=False, tags=tuple(tags), versions=tuple(removed), size=size)
    return report


def _untag(session: Session, tag: Tag) -> bool:
    """Delete the tag unless it moved to another manifest since the plan."""
    result = session.execute(
        delete(PackageTag).where(PackageTag.id == tag.id, PackageTag.version_id == tag.version_id)
    )
    return versions.rowcount(result) > 0


def _delete(
    session: Session, owner_id: str, image: str, doomed: Doomed
) -> tuple[tuple[str, ...], bool]:
    """Remove the version's planned tags, then the version if nothing came to need it.

    Its row is locked first: a push tagging it, or an index listing it, waits for this
    transaction and then finds it gone, or committed first and is seen here and keeps it.
    """
    version = doomed.version
    row = session.execute(
        select(PackageVersion.package_id).where(PackageVersion.id == version.id).with_for_update()
    ).one_or_none()
    if row is None:
        return (), False
    untagged = tuple(t.name for t in doomed.tags if _untag(session, t))
    if _still_needed(session, row.package_id, version):
        return untagged, False
    try:
        versions.delete_version(session, owner_id, image, version.digest)
    except ManifestUnknown:
        return untagged, False
    return untagged, True


def _still_needed(session: Session, package_id: int, version: Version) -> bool:
    """A tag on it, an index listing it, or its subject present: its parents went first."""
    if session.scalar(select(exists().where(PackageTag.version_id == version.id))):
        return True
    parent = aliased(PackageVersion)
    manifest = aliased(PackageFile)
    listed = (
        select(PackageFile.id)
        .join(parent, parent.id == PackageFile.version_id)
        .join(manifest, manifest.blob_id == PackageFile.blob_id)
        .where(
            PackageFile.role == "child",
            parent.package_id == package_id,
            parent.id != version.id,
            manifest.version_id == version.id,
            manifest.position == versions.MANIFEST_POSITION,
        )
    )
    if session.scalar(select(listed.exists())):
        return True
    if version.subject is None:
        return False
    return bool(
        session.scalar(
            select(
                exists().where(
                    PackageVersion.package_id == package_id,
                    PackageVersion.digest == version.subject,
                )
            )
        )
    )


def _removed_tag(owner_id: str, owner_name: str, image: str, tag: Tag) -> RemovedTag:
    return RemovedTag(owner_id, owner_name, image, tag.name, tag.digest)


def _removed_version(
    owner_id: str, owner_name: str, image: str, doomed: Doomed, tags: tuple[str, ...]
) -> RemovedVersion:
    return RemovedVersion(
        owner_id=owner_id,
        owner_name=owner_name,
        image=image,
        digest=doomed.version.digest,
        tags=tags,
        size=doomed.version.size,
        reason=doomed.reason,
    )


def _event(removed: RemovedTag | RemovedVersion) -> dict[str, Any]:
    return {
        "owner_id": removed.owner_id,
        "owner_name": removed.owner_name,
        "image": removed.image,
        "digest": removed.digest,
    }
