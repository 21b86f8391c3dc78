"""Media types of the OCI image spec and Docker's distribution formats (pure constants)."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Manifests that reference a config and layers.
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Manifests that reference other manifests (multi-platform images, artifact indexes).
INDEX_MANIFESTS = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Every manifest type a client may push.
MANIFESTS = IMAGE_MANIFESTS | INDEX_MANIFESTS
#: Docker schema 1, refused with a clear error.
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})


def base_type(content_type: str | None) -> str | None:
    """A ``Content-Type`` without parameters, lower-cased (the spec says to ignore them)."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None
