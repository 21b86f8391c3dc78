"""Reading a pushed manifest: references, media types and descriptors, checked (pure).

Every problem with the bytes is a :class:`~forge_container.errors.ManifestInvalid` (400)
that says what is wrong; nothing here touches the database or storage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forge_container.digest import Digest, InvalidDigest, parse_digest
from forge_container.errors import DigestInvalid, ManifestInvalid, ManifestUnknown, TagInvalid
from forge_container.mediatypes import (
    INDEX_MANIFESTS,
    MANIFESTS,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    base_type,
)
from forge_container.names import is_valid_tag

#: ``Content-Type`` values that say nothing about the manifest: the body's ``mediaType`` wins.
GENERIC_TYPES = frozenset({"application/json", "application/octet-stream", "text/plain"})
SCHEMA1_MESSAGE = (
    "Docker image manifest schema 1 is not supported: push with a current client"
    " (Docker schema 2 or OCI)"
)


@dataclass(frozen=True)
class Reference:
    """A manifest reference from a URL: exactly one of a tag or a digest."""

    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        return self.tag if self.tag is not None else str(self.digest)


def parse_reference(reference: str, *, push: bool = False) -> Reference:
    """A tag or a digest; anything with a ``:`` is read as a digest.

    An invalid digest is 400 DIGEST_INVALID. An invalid tag is 400 TAG_INVALID on a push and
    404 MANIFEST_UNKNOWN otherwise (no manifest can have that name).
    """
    if ":" in reference:
        try:
            return Reference(digest=parse_digest(reference))
        except InvalidDigest as exc:
            raise DigestInvalid(str(exc), detail={"digest": reference}) from None
    if is_valid_tag(reference):
        return Reference(tag=reference)
    if push:
        raise TagInvalid(
            f"invalid tag {reference!r}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}",
            detail={"tag": reference},
        )
    raise ManifestUnknown(f"manifest unknown: {reference!r} is neither a tag nor a digest")


@dataclass(frozen=True)
class Descriptor:
    """A reference to content by media type, digest and size (OCI image spec)."""

    media_type: str
    digest: Digest
    #: ``None`` only for manifests (index entries, subjects), which are known by digest.
    size: int | None
    urls: tuple[str, ...] = ()
    platform: Mapping[str, Any] | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        """A non-distributable layer: the client need not push it (Windows base layers)."""
        return (
            bool(self.urls)
            or "nondistributable" in self.media_type
            or ("foreign" in self.media_type)
        )


@dataclass(frozen=True)
class Manifest:
    """A checked image manifest or index; ``artifact_type`` follows the referrers rules."""

    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: Mapping[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MANIFESTS


def parse_manifest(data: bytes, content_type: str | None) -> Manifest:
    """Check ``data`` as a manifest of the type ``content_type`` or its ``mediaType`` names.

    Accepted: OCI image manifests and indexes (artifacts included) and Docker schema 2
    manifests and manifest lists. Schema 1 is refused with a clear message.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ManifestInvalid(f"the manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("the manifest must be a JSON object")
    media_type = _media_type(document, base_type(content_type))
    is_index = media_type in INDEX_MANIFESTS
    config = None if is_index else _descriptor(document.get("config"), "config")
    layers = () if is_index else _descriptors(document, "layers")
    manifests = _descriptors(document, "manifests", sized=False) if is_index else ()
    subject = document.get("subject")
    artifact_type = _optional_str(document, "artifactType")
    if artifact_type is None and config is not None:
        artifact_type = config.media_type
    return Manifest(
        media_type=media_type,
        config=config,
        layers=layers,
        manifests=manifests,
        subject=None if subject is None else _descriptor(subject, "subject", sized=False),
        artifact_type=artifact_type,
        annotations=_annotations(document.get("annotations"), "annotations"),
    )


def _media_type(document: dict[str, Any], header: str | None) -> str:
    """The ``Content-Type`` if it names a manifest type, else the body's ``mediaType``."""
    body = _optional_str(document, "mediaType")
    version = document.get("schemaVersion")
    if type(version) is not int:  # bool is an int to Python, not to JSON
        raise ManifestInvalid(f"schemaVersion must be 2, got {version!r}")
    if header in SCHEMA1 or body in SCHEMA1 or version == 1:
        raise ManifestInvalid(SCHEMA1_MESSAGE)
    if version != 2:
        raise ManifestInvalid(f"schemaVersion must be 2, got {version!r}")
    if header is not None and header not in GENERIC_TYPES:
        if header not in MANIFESTS:
            raise ManifestInvalid(f"unsupported manifest media type {header!r}")
        if body is not None and body != header:
            raise ManifestInvalid(
                f"Content-Type {header!r} does not match the manifest's mediaType {body!r}"
            )
        return header
    if body is None:
        # OCI makes mediaType optional; the shape tells an index from a manifest.
        if "manifests" in document and "config" not in document:
            return OCI_INDEX
        if "config" in document:
            return OCI_MANIFEST
        raise ManifestInvalid("no media type: send a Content-Type or a mediaType field")
    if body not in MANIFESTS:
        raise ManifestInvalid(f"unsupported manifest media type {body!r}")
    return body


def _descriptors(
    document: dict[str, Any], where: str, *, sized: bool = True
) -> tuple[Descriptor, ...]:
    """A required list of descriptors; ``null`` (how Go writes an empty one) is empty."""
    if where not in document:
        raise ManifestInvalid(f"{where} is required")
    value = document[where]
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be a list of descriptors")
    return tuple(_descriptor(item, f"{where}[{i}]", sized=sized) for i, item in enumerate(value))


def _descriptor(value: Any, where: str, *, sized: bool = True) -> Descriptor:
    """A checked descriptor; without ``sized``, a missing size is tolerated (Gitea's and
    Distribution's clients omit it on index entries, which are found by digest)."""
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    raw = value.get("digest")
    try:
        digest = parse_digest(raw) if isinstance(raw, str) else None
    except InvalidDigest as exc:
        raise ManifestInvalid(f"{where}.digest: {exc}", detail={"digest": raw}) from None
    if digest is None:
        raise ManifestInvalid(f"{where}.digest must be a string")
    size = value.get("size")
    if (size is not None or sized) and (type(size) is not int or size < 0):
        raise ManifestInvalid(f"{where}.size must be a non-negative integer, got {size!r}")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}.urls must be a list of strings")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise ManifestInvalid(f"{where}.platform must be an object")
    if "data" in value and not isinstance(value["data"], str):
        raise ManifestInvalid(f"{where}.data must be a base64 string")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls),
        platform=platform,
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
    )


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ManifestInvalid(f"{where} must map strings to strings")
    return value


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value or None
