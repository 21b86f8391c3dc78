"""Garbage collection, step 1: untagged manifests nothing kept needs.

In each image, a manifest is *kept* when it is tagged; when it is untagged, not a referrer,
and younger than ``GC_UNTAGGED_AGE`` (0: untagged manifests are never collected); or when it
is a referrer whose subject is not pushed yet, younger than ``GC_GRACE``. A kept index keeps
its children, and a kept manifest keeps its referrers: referrers follow their subject, so
the signatures and SBOMs of a kept image stay and those of a removed one go. Everything
else is collected, with its files; blob links and blobs follow in the next steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Select, delete, exists, or_, select
from sqlalchemy.orm import Session

from forge_container.config import Settings
from forge_container.models import Package, PackageFile, PackageTag, PackageVersion
from forge_container.registry.packages import write_lock

if TYPE_CHECKING:
    from forge_container.registry.gc import Gone

#: The role of an index's children among its files.
CHILD = "child"
#: The manifest's own bytes are a version's first file.
MANIFEST_POSITION = 0
#: Ids per ``IN (...)`` query (SQLite caps bound parameters).
IN_BATCH = 500


@dataclass(frozen=True)
class RemovedManifest:
    """A manifest (version) collected; ``size`` counts it with what it references."""

    owner_id: str
    owner_name: str
    image: str
    digest: str
    size: int


@dataclass(frozen=True)
class _Node:
    id: int
    digest: str
    subject: str | None
    created_at: datetime
    size: int
    tagged: bool
    manifest_blob: int | None
    children: tuple[int, ...]


def collect(
    session: Session, settings: Settings, *, now: datetime, dry_run: bool, gone: Gone
) -> list[RemovedManifest]:
    """Collect (or, ``dry_run``, list) the untagged manifests of every image."""
    untagged = (
        now - timedelta(seconds=settings.gc_untagged_age) if settings.gc_untagged_age else None
    )
    grace = now - timedelta(seconds=settings.gc_grace)
    removed: list[RemovedManifest] = []
    last = 0
    while True:
        images = session.execute(
            _images_with_candidates(untagged, last).limit(settings.job_batch_size)
        ).all()
        session.rollback()
        if not images:
            break
        last = images[-1].id
        for image in images:
            nodes = _graph(session, image.id)
            session.rollback()
            doomed = garbage(nodes, untagged=untagged, grace=grace)
            if not doomed:
                continue
            if dry_run:
                ids = sorted(doomed)
                gone.versions.update(ids)
                gone.files.update((image.id, blob) for blob in _file_blobs(session, ids))
                session.rollback()
            else:
                ids = _delete(session, image.id, doomed, settings.job_batch_size)
            by_id = {node.id: node for node in nodes}
            removed.extend(
                RemovedManifest(
                    image.owner_id, image.owner_name, image.name, by_id[i].digest, by_id[i].size
                )
                for i in sorted(ids)
            )
    return removed


def garbage(nodes: Iterable[_Node], *, untagged: datetime | None, grace: datetime) -> set[int]:
    """The versions of one image that nothing kept needs (see the module docstring)."""
    nodes = list(nodes)
    digests = {node.digest for node in nodes}

    def root(node: _Node) -> bool:
        created = aware(node.created_at)
        if node.tagged:
            return True
        if node.subject is None:
            return untagged is None or created >= untagged
        return node.subject not in digests and created >= grace

    return {node.id for node in nodes} - _kept(nodes, [node for node in nodes if root(node)])


def _kept(nodes: list[_Node], roots: Iterable[_Node]) -> set[int]:
    """The ids of ``roots`` and of what they keep: an index its children, a manifest its
    referrers (transitively, within ``nodes``)."""
    by_manifest = {node.manifest_blob: node for node in nodes if node.manifest_blob is not None}
    referrers: dict[str, list[_Node]] = defaultdict(list)
    for node in nodes:
        if node.subject is not None:
            referrers[node.subject].append(node)
    kept: set[int] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node.id in kept:
            continue
        kept.add(node.id)
        todo.extend(by_manifest[blob] for blob in node.children if blob in by_manifest)
        todo.extend(referrers.get(node.digest, ()))
    return kept


def _images_with_candidates(untagged: datetime | None, last: int) -> Select[int, str, str, str]:
    """Images with an untagged referrer, or an untagged manifest older than ``untagged``."""
    candidate: ColumnElement[bool] = PackageVersion.subject_digest.is_not(None)
    if untagged is not None:
        candidate = or_(candidate, PackageVersion.created_at < untagged)
    versions = select(PackageVersion.package_id).where(
        candidate, ~exists().where(PackageTag.version_id == PackageVersion.id)
    )
    return (
        select(Package.id, Package.owner_id, Package.owner_name, Package.name)
        .where(Package.id > last, Package.id.in_(versions))
        .order_by(Package.id)
    )


def _graph(session: Session, package_id: int) -> list[_Node]:
    """Every version of the image, with its tags, manifest blob and children."""
    tagged = set(
        session.scalars(select(PackageTag.version_id).where(PackageTag.package_id == package_id))
    )
    manifest: dict[int, int] = {}
    children: dict[int, list[int]] = defaultdict(list)
    for version, blob, position in session.execute(
        select(PackageFile.version_id, PackageFile.blob_id, PackageFile.position)
        .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
        .where(
            PackageVersion.package_id == package_id,
            or_(PackageFile.position == MANIFEST_POSITION, PackageFile.role == CHILD),
        )
    ):
        if position == MANIFEST_POSITION:
            manifest[version] = blob
        else:
            children[version].append(blob)
    return [
        _Node(
            id=row.id,
            digest=row.digest,
            subject=row.subject_digest,
            created_at=row.created_at,
            size=row.size,
            tagged=row.id in tagged,
            manifest_blob=manifest.get(row.id),
            children=tuple(children.get(row.id, ())),
        )
        for row in session.execute(
            select(
                PackageVersion.id,
                PackageVersion.digest,
                PackageVersion.subject_digest,
                PackageVersion.created_at,
                PackageVersion.size,
            ).where(PackageVersion.package_id == package_id)
        )
    ]


def _delete(session: Session, package_id: int, doomed: set[int], batch: int) -> list[int]:
    """Delete ``doomed`` versions a batch at a time; the ids of those deleted.

    An index and its children may fall in different batches: a child still listed by a
    version outside its batch stays, and is tried again once that version is gone.
    """
    deleted: list[int] = []
    pending = sorted(doomed)
    while pending:
        progress: list[int] = []
        for start in range(0, len(pending), batch):
            progress.extend(_delete_batch(session, package_id, pending[start : start + batch]))
        if not progress:
            break
        deleted.extend(progress)
        pending = sorted(set(pending) - set(progress))
    return deleted


def _delete_batch(session: Session, package_id: int, ids: list[int]) -> list[int]:
    """Lock ``ids`` (skipping versions a push holds), check them again, delete the rest."""
    write_lock(session)
    locked = set(
        session.scalars(
            select(PackageVersion.id)
            .where(PackageVersion.id.in_(ids))
            .with_for_update(skip_locked=True)
        )
    )
    doomed = sorted(_still_garbage(session, package_id, locked)) if locked else []
    if doomed:
        session.execute(delete(PackageTag).where(PackageTag.version_id.in_(doomed)))
        session.execute(delete(PackageFile).where(PackageFile.version_id.in_(doomed)))
        session.execute(delete(PackageVersion).where(PackageVersion.id.in_(doomed)))
    session.commit()
    return doomed


def _still_garbage(session: Session, package_id: int, locked: set[int]) -> set[int]:
    """Of the ``locked`` versions, those nothing outside them needs now.

    Read in fresh statements, after the locks: a tag, an index or a subject pushed since
    the graph was read counts.
    """
    ids = sorted(locked)
    rows = session.execute(
        select(
            PackageVersion.id,
            PackageVersion.digest,
            PackageVersion.subject_digest,
            PackageVersion.created_at,
            PackageFile.blob_id,
        )
        .outerjoin(
            PackageFile,
            (PackageFile.version_id == PackageVersion.id)
            & (PackageFile.position == MANIFEST_POSITION),
        )
        .where(PackageVersion.id.in_(ids))
    ).all()
    tagged = set(
        session.scalars(select(PackageTag.version_id).where(PackageTag.version_id.in_(ids)))
    )
    children: dict[int, list[int]] = defaultdict(list)
    for version, blob in session.execute(
        select(PackageFile.version_id, PackageFile.blob_id).where(
            PackageFile.version_id.in_(ids), PackageFile.role == CHILD
        )
    ):
        children[version].append(blob)
    nodes = [
        _Node(
            id=row.id,
            digest=row.digest,
            subject=row.subject_digest,
            created_at=row.created_at,
            size=0,
            tagged=row.id in tagged,
            manifest_blob=row.blob_id,
            children=tuple(children.get(row.id, ())),
        )
        for row in rows
    ]
    outside = (PackageVersion.package_id == package_id, PackageVersion.id.not_in(ids))
    blobs = sorted({node.manifest_blob for node in nodes if node.manifest_blob is not None})
    listed = set(
        session.scalars(
            select(PackageFile.blob_id)
            .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
            .where(*outside, PackageFile.role == CHILD, PackageFile.blob_id.in_(blobs))
        )
    )
    subjects = sorted({node.subject for node in nodes if node.subject is not None})
    present = set(
        session.scalars(
            select(PackageVersion.digest).where(*outside, PackageVersion.digest.in_(subjects))
        )
    )
    roots = [
        node
        for node in nodes
        if node.tagged or node.manifest_blob in listed or node.subject in present
    ]
    return locked - _kept(nodes, roots)


def _file_blobs(session: Session, version_ids: list[int]) -> set[int]:
    blobs: set[int] = set()
    for start in range(0, len(version_ids), IN_BATCH):
        batch = version_ids[start : start + IN_BATCH]
        blobs.update(
            session.scalars(select(PackageFile.blob_id).where(PackageFile.version_id.in_(batch)))
        )
    return blobs


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC (SQLite hands back naive datetimes; everything is stored in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
