"""Manifests and blobs for the manifest tests: Gitea's byte-exact vectors and builders.

Blobs are seeded straight into storage and linked to an image (as a finished upload would
leave them), so these tests do not depend on the upload endpoints.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Flask

from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST
from forge_container.registry.packages import ensure_blob, ensure_package, link_blob
from forge_container.state import get_state
from forge_container.storage.paths import blob_path

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# Gitea's integration test fixtures (gitea-registry.md, Appendix A), byte for byte.
GITEA_BLOB = base64.b64decode("H4sIAAAJbogA/2IYBaNgFIxYAAgAAP//Lq+17wAEAAA=")
GITEA_BLOB_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
GITEA_CONFIG = (
    b'{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin'
    b':/usr/bin:/sbin:/bin"],"Cmd":["/true"],"ArgsEscaped":true,"Image":"sha256:9bd8b88dc68b80'
    b'cffe126cc820e4b52c6e558eb3b37680bfee8e5f3ed7b8c257"},"container":"b89fe92a887d55c0961f02'
    b'bdfbfd8ac3ddf66167db374770d2d9e9fab3311510","container_config":{"Hostname":"b89fe92a887d'
    b'","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/b'
    b'in/sh","-c","#(nop) ","CMD [\\"/true\\"]"],"ArgsEscaped":true,"Image":"sha256:9bd8b88dc6'
    b'8b80cffe126cc820e4b52c6e558eb3b37680bfee8e5f3ed7b8c257"},"created":"2022-01-01T00:00:00.'
    b'000000000Z","docker_version":"20.10.12","history":[{"created":"2022-01-01T00:00:00.00000'
    b'0000Z","created_by":"/bin/sh -c #(nop) COPY file:0e7589b0c800daaf6fa460d2677101e4676dd94'
    b'91980210cb345480e513f3602 in /true "},{"created":"2022-01-01T00:00:00.000000001Z","creat'
    b'ed_by":"/bin/sh -c #(nop)  CMD [\\"/true\\"]","empty_layer":true}],"os":"linux","rootfs"'
    b':{"type":"layers","diff_ids":["sha256:0ff3b91bdf21ecdf2f2f3d4372c2098a14dbe06cd678e8f0a'
    b'85fd4902d00e2e2"]}}'
)
GITEA_CONFIG_DIGEST = "sha256:4607e093bec406eaadb6f3a340f63400c9d3a7038680744c406903766b938f0d"
GITEA_MANIFEST = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","'
    b'config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:'
    b'4607e093bec406eaadb6f3a340f63400c9d3a7038680744c406903766b938f0d","size":1069},"layers":'
    b'[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:a3ed9'
    b'5caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4","size":32}]}'
)
GITEA_MANIFEST_DIGEST = "sha256:4f10484d1c1bb13e3956b4de1cd42db8e0f14a75be1617b60f2de3cd59c803c6"
GITEA_UNTAGGED = GITEA_MANIFEST.replace(
    b"application/vnd.docker.distribution.manifest.v2+json", OCI_MANIFEST.encode()
)
GITEA_UNTAGGED_DIGEST = "sha256:4305f5f5572b9a426b88909b036e52ee3cf3d7b9c1b01fac840e90747f56623d"
GITEA_INDEX = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","is_tagged":tr'
    b'ue,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","dig'
    b'est":"sha256:4f10484d1c1bb13e3956b4de1cd42db8e0f14a75be1617b60f2de3cd59c803c6","platfor'
    b'm":{"os":"linux","architecture":"arm","variant":"v7"}},{"mediaType":"application/vnd.oci'
    b'.image.manifest.v1+json","digest":"sha256:4305f5f5572b9a426b88909b036e52ee3cf3d7b9c1b01'
    b'fac840e90747f56623d","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}'
)
GITEA_INDEX_DIGEST = "sha256:2c6b5afb967d5de02795ee1d177c3746d005df4b4c2b829385b0d186b3414b6b"


def seed_blob(
    app: Flask, owner_id: str, image: str, data: bytes, *, algorithm: str = "sha256"
) -> dict[str, Any]:
    """Store ``data`` and link it to ``image``; its descriptor (octet-stream media type)."""
    state = get_state(app)
    digest = digest_of(data, algorithm)
    state.storage.write_bytes(blob_path(digest), data)
    with app.app_context():
        session = state.db.session()
        package = ensure_package(session, owner_id, owner_id, image)
        link_blob(session, package, ensure_blob(session, str(digest), len(data)), None)
        session.commit()
    return descriptor(data, "application/octet-stream", algorithm=algorithm)


def descriptor(
    data: bytes, media_type: str, *, algorithm: str = "sha256", **extra: Any
) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": str(digest_of(data, algorithm)),
        "size": len(data),
        **extra,
    }


def config_bytes(os_name: str = "linux", arch: str = "amd64", **fields: Any) -> bytes:
    """An OCI image config for one platform."""
    config = {
        "architecture": arch,
        "os": os_name,
        "author": "OCI Conformance Test",
        "rootfs": {"type": "layers", "diff_ids": []},
        **fields,
    }
    return json.dumps(config).encode()


def image_manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    *,
    media_type: str | None = OCI_MANIFEST,
    **fields: Any,
) -> bytes:
    body: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        body["mediaType"] = media_type
    body.update(config=config, layers=layers, **fields)
    return json.dumps(body).encode()


def index_manifest(
    children: list[dict[str, Any]], *, media_type: str = OCI_INDEX, **fields: Any
) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": children, **fields}
    ).encode()


def platform(os_name: str, arch: str, variant: str | None = None) -> dict[str, str]:
    return {"os": os_name, "architecture": arch} | ({"variant": variant} if variant else {})


def empty_config(app: Flask, owner_id: str, image: str) -> dict[str, Any]:
    """The OCI empty config ``{}``, seeded, as artifacts use it."""
    seed_blob(app, owner_id, image, b"{}")
    return descriptor(b"{}", OCI_EMPTY)


def image_config(app: Flask, owner_id: str, image: str, **kwargs: Any) -> dict[str, Any]:
    """A seeded image config descriptor (see :func:`config_bytes`)."""
    data = config_bytes(**kwargs)
    seed_blob(app, owner_id, image, data)
    return descriptor(data, OCI_CONFIG)
