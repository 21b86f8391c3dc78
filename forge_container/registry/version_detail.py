"""One version in detail: its platforms with real sizes, layers and history, its labels
and annotations, and the referrers (signatures, SBOMs, attestations) under each subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forge_container.models import PackageTag, PackageVersion
from forge_container.registry.browse import as_utc

#: Artifact types by what people call them (signatures, SBOMs, attestations).
ARTIFACT_KINDS = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": "signature",
    "application/vnd.dev.cosign.simplesigning.v1+json": "signature",
    "application/vnd.cncf.notary.signature": "signature",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "sigstore bundle",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "sigstore bundle",
    "application/spdx+json": "SBOM",
    "text/spdx": "SBOM",
    "application/vnd.cyclonedx+json": "SBOM",
    "application/vnd.cyclonedx+xml": "SBOM",
    "application/vnd.syft+json": "SBOM",
    "application/vnd.in-toto+json": "attestation",
    "application/vnd.dsse.envelope.v1+json": "attestation",
}


@dataclass(frozen=True)
class Platform:
    """One platform of a version: its manifest digest and the bytes it pulls."""

    name: str
    digest: str
    size: int
    attestation: bool = False


@dataclass(frozen=True)
class PlatformDetail:
    """A platform's layers and build history, read from its image config."""

    platform: Platform
    layers: tuple[Mapping[str, Any], ...]
    history: tuple[str, ...]
    created: str | None


@dataclass(frozen=True)
class Referrer:
    digest: str
    artifact_type: str | None
    kind: str
    size: int
    pushed_at: datetime
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class ReferrerGroup:
    """The referrers of one subject: the version itself, or one of its platforms."""

    subject: str
    label: str
    referrers: tuple[Referrer, ...]


@dataclass(frozen=True)
class VersionDetail:
    digest: str
    media_type: str
    kind: str
    artifact_type: str | None
    size: int
    pushed_at: datetime
    pushed_by: str | None
    tags: tuple[str, ...]
    subject: str | None
    metadata: Mapping[str, Any]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    platforms: tuple[PlatformDetail, ...]
    referrers: tuple[ReferrerGroup, ...]


def platforms(meta: Mapping[str, Any] | None) -> tuple[Platform, ...]:
    """A version's platforms with their sizes: an index's children, or the image itself."""
    meta = meta or {}
    entries = meta.get("manifests")
    if isinstance(entries, list):
        return tuple(
            Platform(
                name=str(e.get("platform", "unknown/unknown")),
                digest=str(e.get("digest", "")),
                size=int(e.get("size") or 0),
                attestation=bool(e.get("attestation")),
            )
            for e in entries
            if isinstance(e, dict)
        )
    return (Platform(str(meta.get("platform", "unknown/unknown")), "", int(meta.get("size") or 0)),)


def artifact_kind(artifact_type: str | None) -> str:
    """``signature``, ``SBOM``, ``attestation`` ... for a referrer's artifact type."""
    if not artifact_type:
        return "artifact"
    if artifact_type in ARTIFACT_KINDS:
        return ARTIFACT_KINDS[artifact_type]
    if "sbom" in artifact_type or "spdx" in artifact_type or "cyclonedx" in artifact_type:
        return "SBOM"
    if "signature" in artifact_type:
        return "signature"
    return "attestation" if "in-toto" in artifact_type else "artifact"


def kind_of(version: PackageVersion) -> str:
    """``index`` for a multi-platform index, else ``image``."""
    meta = version.metadata_json or {}
    return "index" if meta.get("kind") == "index" else "image"


def version_detail(session: Session, package_id: int, version: PackageVersion) -> VersionDetail:
    """Everything the page shows of one version; an index's platforms from its children."""
    meta = version.metadata_json or {}
    own = platforms(meta)
    children: dict[str, PackageVersion] = {}
    child_digests = [p.digest for p in own if p.digest]
    if child_digests:
        children = {
            v.digest: v
            for v in session.scalars(
                select(PackageVersion).where(
                    PackageVersion.package_id == package_id,
                    PackageVersion.digest.in_(child_digests),
                )
            )
        }
    details = []
    for entry in own:
        child = children.get(entry.digest) if entry.digest else version
        child_meta = (child.metadata_json or {}) if child is not None else {}
        created = child_meta.get("created")
        details.append(
            PlatformDetail(
                platform=entry,
                layers=tuple(x for x in child_meta.get("layers", []) if isinstance(x, dict)),
                history=tuple(x for x in child_meta.get("history", []) if isinstance(x, str)),
                created=created if isinstance(created, str) else None,
            )
        )
    return VersionDetail(
        digest=version.digest,
        media_type=version.media_type,
        kind=kind_of(version),
        artifact_type=version.artifact_type,
        size=version.size,
        pushed_at=as_utc(version.created_at),
        pushed_by=version.created_by,
        tags=tags_of(session, version.id),
        subject=version.subject_digest,
        metadata=meta,
        labels=_strings(meta.get("labels")),
        annotations=_strings(meta.get("annotations")),
        platforms=tuple(details),
        referrers=_referrer_groups(session, package_id, version.digest, own),
    )


def _referrer_groups(
    session: Session, package_id: int, digest: str, own: Sequence[Platform]
) -> tuple[ReferrerGroup, ...]:
    labels = {digest: "this version"}
    labels.update((p.digest, p.name) for p in own if p.digest)
    rows = session.scalars(
        select(PackageVersion)
        .where(
            PackageVersion.package_id == package_id,
            PackageVersion.subject_digest.in_(sorted(labels)),
        )
        .order_by(PackageVersion.created_at, PackageVersion.digest)
    )
    grouped: dict[str, list[Referrer]] = {}
    for row in rows:
        grouped.setdefault(str(row.subject_digest), []).append(
            Referrer(
                digest=row.digest,
                artifact_type=row.artifact_type,
                kind=artifact_kind(row.artifact_type),
                size=row.size,
                pushed_at=as_utc(row.created_at),
                annotations=_strings((row.metadata_json or {}).get("annotations")),
            )
        )
    return tuple(
        ReferrerGroup(subject=s, label=labels[s], referrers=tuple(grouped[s]))
        for s in labels
        if s in grouped
    )


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def tags_of(session: Session, version_id: int) -> tuple[str, ...]:
    """The version's tags, by name."""
    names = session.scalars(
        select(PackageTag.name).where(PackageTag.version_id == version_id).order_by(PackageTag.name)
    )
    return tuple(names)
