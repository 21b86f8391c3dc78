"""What the UI shows of a version, read from its manifest and image config (pure functions).

Nothing here fails: a config that is missing, too large, not JSON or not an image config
gives ``{"platform": "unknown/unknown"}``, so artifacts with empty or foreign configs push
like any image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from forge_container.mediatypes import DOCKER_CONFIG, OCI_CONFIG

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
#: Configs larger than this are not read for metadata (the image still pushes).
CONFIG_READ_LIMIT = 4 * 1024 * 1024
UNKNOWN_PLATFORM = "unknown/unknown"
#: Manifest annotations kept whole up to this JSON size; above it only the OCI ones.
ANNOTATIONS_LIMIT = 64 * 1024
#: Bounds on what one version's metadata holds, whatever the config says.
MAX_ITEMS = 1000
MAX_TEXT = 4096

#: ``org.opencontainers.image.<key>`` → metadata field, from labels and annotations.
OCI_FIELDS = {
    "title": "title",
    "description": "description",
    "version": "version",
    "revision": "revision",
    "source": "source",
    "url": "url",
    "documentation": "documentation",
    "licenses": "licenses",
    "authors": "authors",
    "vendor": "vendor",
}
_URL_FIELDS = frozenset({"source", "url", "documentation"})
_NOP = "#(nop) "


@dataclass(frozen=True)
class Layer:
    """A layer as the UI lists it; ``stored`` is false for foreign layers never pushed."""

    digest: str
    size: int
    media_type: str
    stored: bool = True


@dataclass(frozen=True)
class IndexChild:
    """An index entry with what its own version knows (size and metadata)."""

    digest: str
    media_type: str
    platform: Mapping[str, Any] | None
    annotations: Mapping[str, str]
    size: int
    metadata: Mapping[str, Any]


def config_metadata(media_type: str | None, data: bytes | None) -> dict[str, Any]:
    """Platform, labels, history and OCI fields of an image config (or a Helm chart's)."""
    document = _json_object(data)
    if document is None:
        return {"platform": UNKNOWN_PLATFORM}
    if media_type == HELM_CONFIG:
        return _helm(document)
    if media_type not in (OCI_CONFIG, DOCKER_CONFIG) and not _looks_like_image(document):
        return {"platform": UNKNOWN_PLATFORM}
    meta: dict[str, Any] = {"platform": platform_string(document)}
    for key in ("created", "author", "os", "architecture", "variant"):
        value = _get(document, key)
        if isinstance(value, str) and value:
            meta[key] = _clip(value)
    config = _get(document, "config")
    labels = _get(config, "labels") if isinstance(config, dict) else None
    if isinstance(labels, dict):
        meta["labels"] = {
            _clip(k): _clip(v) for k, v in list(labels.items())[:MAX_ITEMS] if isinstance(v, str)
        }
        meta.update(oci_fields(meta["labels"]))
    history = _get(document, "history")
    if isinstance(history, list):
        meta["history"] = [
            step for step in map(_created_by, history[:MAX_ITEMS]) if step is not None
        ]
    return meta


def image_metadata(
    config: Mapping[str, Any],
    *,
    annotations: Mapping[str, str],
    layers: Iterable[Layer],
    artifact_type: str | None,
    size: int,
    referrer: bool = False,
) -> dict[str, Any]:
    """A manifest's metadata: its config's, overlaid with its annotations and layers."""
    meta: dict[str, Any] = {"kind": "image", **config}
    meta.update(oci_fields(annotations))
    meta.update(annotation_metadata(annotations, whole=referrer))
    listed = list(layers)
    meta["layers"] = [
        {"digest": layer.digest, "size": layer.size, "media_type": layer.media_type}
        | ({} if layer.stored else {"stored": False})
        for layer in listed[:MAX_ITEMS]
    ]
    if len(listed) > MAX_ITEMS:
        meta["layers_truncated"] = True
    if artifact_type:
        meta["artifact_type"] = artifact_type
    meta["size"] = size
    return meta


def index_metadata(
    children: Iterable[IndexChild],
    *,
    annotations: Mapping[str, str],
    artifact_type: str | None,
    size: int,
    referrer: bool = False,
) -> dict[str, Any]:
    """An index's metadata: each child's platform, digest and size (a platform's size)."""
    meta: dict[str, Any] = {"kind": "index"}
    meta.update(oci_fields(annotations))
    meta.update(annotation_metadata(annotations, whole=referrer))
    entries = []
    for child in list(children)[:MAX_ITEMS]:
        platform = child.metadata.get("platform")
        if child.platform is not None:
            platform = platform_string(child.platform)
        entry: dict[str, Any] = {
            "digest": child.digest,
            "media_type": child.media_type,
            "platform": platform if isinstance(platform, str) else UNKNOWN_PLATFORM,
            "size": child.size,
        }
        if child.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            entry["attestation"] = True
        entries.append(entry)
    meta["manifests"] = entries
    if artifact_type:
        meta["artifact_type"] = artifact_type
    meta["size"] = size
    return meta


def annotation_metadata(annotations: Mapping[str, str], *, whole: bool = False) -> dict[str, Any]:
    """``annotations`` whole when small (or ``whole``), else only the OCI ones, flagged.

    Referrers (manifests with a subject) keep them whole: the referrers API lists them.
    """
    if not annotations:
        return {}
    if whole or len(json.dumps(annotations)) <= ANNOTATIONS_LIMIT:
        return {"annotations": dict(annotations)}
    kept = {k: _clip(v) for k, v in annotations.items() if k.startswith("org.opencontainers.")}
    return {"annotations": dict(list(kept.items())[:MAX_ITEMS]), "annotations_truncated": True}


def oci_fields(values: Mapping[str, str]) -> dict[str, str]:
    """Description, source, revision ... from ``org.opencontainers.image.*`` keys.

    URL fields are kept only when they are http(s) URLs, so a page may link them safely.
    """
    fields: dict[str, str] = {}
    for suffix, field in OCI_FIELDS.items():
        value = values.get(f"org.opencontainers.image.{suffix}")
        if not isinstance(value, str) or not value.strip():
            continue
        if field in _URL_FIELDS and not value.startswith(("https://", "http://")):
            continue
        fields[field] = _clip(value.strip())
    return fields


def platform_string(platform: Mapping[str, Any]) -> str:
    """``os/architecture[/variant]``, or ``unknown/unknown`` without os and architecture."""
    os_name = _get(platform, "os")
    arch = _get(platform, "architecture")
    if not (isinstance(os_name, str) and os_name and isinstance(arch, str) and arch):
        return UNKNOWN_PLATFORM
    variant = _get(platform, "variant")
    parts = [os_name, arch] + ([variant] if isinstance(variant, str) and variant else [])
    return _clip("/".join(parts))


def _helm(chart: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"platform": UNKNOWN_PLATFORM, "type": "helm"}
    for key, field in (("name", "title"), ("version", "version"), ("description", "description")):
        value = chart.get(key)
        if isinstance(value, str) and value:
            meta[field] = _clip(value)
    home, sources = chart.get("home"), chart.get("sources")
    if isinstance(home, str) and home.startswith(("https://", "http://")):
        meta["url"] = _clip(home)
    source = sources[0] if isinstance(sources, list) and sources else None
    if isinstance(source, str) and source.startswith(("https://", "http://")):
        meta["source"] = _clip(source)
    maintainers = chart.get("maintainers")
    if isinstance(maintainers, list):
        names = [m["name"] for m in maintainers if isinstance(m, dict) and m.get("name")]
        if names and all(isinstance(n, str) for n in names):
            meta["authors"] = _clip(", ".join(names))
    return meta


def _created_by(step: Any) -> str | None:
    """A history step as the UI shows it: the command after ``#(nop)``, trimmed."""
    created_by = _get(step, "created_by") if isinstance(step, dict) else None
    if not isinstance(created_by, str):
        return None
    _, nop, after = created_by.partition(_NOP)
    text = (after if nop else created_by).strip()
    return _clip(text) if text else None


def _looks_like_image(document: dict[str, Any]) -> bool:
    return _get(document, "rootfs") is not None or (
        _get(document, "os") is not None and _get(document, "architecture") is not None
    )


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if not data or len(data) > CONFIG_READ_LIMIT:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _get(document: Mapping[str, Any], key: str) -> Any:
    """``document[key]``, matching the key case-insensitively (``Labels`` or ``labels``)."""
    if key in document:
        return document[key]
    lowered = key.lower()
    for name, value in document.items():
        if isinstance(name, str) and name.lower() == lowered:
            return value
    return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
