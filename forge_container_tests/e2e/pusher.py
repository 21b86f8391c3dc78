"""A small OCI client over ``http.client`` for tests that run many of them at once.

Every request goes out on a connection of its own, so parallel clients spread over the
workers of a live server. Nothing here retries and nothing asserts on a status the test
may want to count: each reply is recorded in a :class:`Tally` under its operation, and a
4xx or 5xx whose body is not an OCI error is recorded as ``unclean``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from forge_container_tests.e2e.conftest import Reply, Server
from forge_container_tests.e2e.layouts import CREATED, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST

OCTET_STREAM = "application/octet-stream"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def path_of(location: str) -> str:
    """A ``Location`` as a path with its query (absolute URLs are cut down)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(path: str, query: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{query}"


def error_codes(reply: Reply) -> list[str] | None:
    """The codes of an OCI error body, or ``None`` when the body is not one."""
    try:
        errors = reply.json()["errors"]
        return [str(error["code"]) for error in errors] or None
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with the media type a descriptor gives them."""

    data: bytes
    media_type: str = OCI_LAYER_TAR

    @cached_property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Image:
    """An OCI image manifest over ``layers``, with a config of its own named ``title``."""

    title: str
    layers: tuple[Blob, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def config(self) -> Blob:
        config = {
            "created": CREATED,
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.title": self.title}},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in self.layers]},
        }
        return Blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)

    @cached_property
    def manifest(self) -> bytes:
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": [layer.descriptor() for layer in self.layers],
        }
        if self.annotations:
            document["annotations"] = dict(self.annotations)
        return json.dumps(document, indent=2).encode()

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


class Tally:
    """Statuses per operation, shared by the threads of one scenario."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, int]] = Counter()
        self.unclean: list[tuple[str, Reply]] = []

    def record(self, operation: str, reply: Reply, method: str) -> None:
        clean = reply.status < 400 or method == "HEAD" or error_codes(reply) is not None
        with self._lock:
            self.counts[operation, reply.status] += 1
            if not clean:
                self.unclean.append((operation, reply))

    def statuses(self, operation: str) -> set[int]:
        return {status for (op, status) in self.counts if op == operation}

    def summary(self) -> str:
        return ", ".join(f"{op} {status}: {n}" for (op, status), n in sorted(self.counts.items()))


class Client:
    """One client of one image (``owner/image``) with a bearer token of its own.

    ``mount_from`` names images the token may also pull from (a mount needs that).
    """

    def __init__(
        self,
        server: Server,
        name: str,
        tally: Tally,
        *,
        actions: str = "pull,push,delete",
        mount_from: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.name = name
        self.tally = tally
        scopes = [f"repository:{name}:{actions}", *(f"repository:{s}:pull" for s in mount_from)]
        token = server.token("alice", scopes)
        self.auth = {"Authorization": f"Bearer {token}"}

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        reply = self.server.request(
            method, path, headers={**self.auth, **(headers or {})}, body=body, timeout=60
        )
        self.tally.record(operation, reply, method)
        return reply

    # -- push ----------------------------------------------------------------------------

    def push_blob(
        self,
        blob: Blob,
        *,
        chunk_size: int | None = None,
        before_finish: Callable[[], object] | None = None,
    ) -> Reply:
        """Upload ``blob``: monolithic ``POST ?digest=``, or in chunks of ``chunk_size``.

        ``before_finish`` runs just before the request that completes the upload (to line up
        the commits of parallel clients); the reply of that request is returned.
        """
        uploads = f"/v2/{self.name}/blobs/uploads/"
        if chunk_size is None:
            if before_finish is not None:
                before_finish()
            return self.request(
                "POST blob",
                "POST",
                f"{uploads}?digest={blob.digest}",
                headers={"Content-Type": OCTET_STREAM},
                body=blob.data,
            )
        opened = self.request("POST upload", "POST", uploads)
        if opened.status != 202:
            return opened
        return self._chunks(blob, path_of(opened.headers["location"]), chunk_size, before_finish)

    def mount(self, blob: Blob, source: str) -> Reply:
        """Mount ``blob`` from the image ``source``: 201, or 202 with a session instead."""
        return self.request(
            "POST mount",
            "POST",
            f"/v2/{self.name}/blobs/uploads/?mount={blob.digest}&from={source}",
        )

    def _chunks(
        self,
        blob: Blob,
        location: str,
        chunk_size: int,
        before_finish: Callable[[], object] | None,
    ) -> Reply:
        """PATCH every chunk but the last, then PUT the last one with the digest."""
        data = blob.data
        last = max(0, (len(data) - 1) // chunk_size * chunk_size)
        for start in range(0, last, chunk_size):
            end = start + chunk_size
            sent = self.request(
                "PATCH chunk",
                "PATCH",
                location,
                headers={"Content-Type": OCTET_STREAM, "Content-Range": f"{start}-{end - 1}"},
                body=data[start:end],
            )
            if sent.status != 202:
                return sent
            location = path_of(sent.headers["location"])
        if before_finish is not None:
            before_finish()
        return self.request(
            "PUT upload",
            "PUT",
            with_query(location, f"digest={blob.digest}"),
            headers={"Content-Type": OCTET_STREAM},
            body=data[last:],
        )

    def put_manifest(self, reference: str, manifest: bytes, query: str = "") -> Reply:
        return self.request(
            "PUT manifest",
            "PUT",
            f"/v2/{self.name}/manifests/{reference}{query}",
            headers={"Content-Type": OCI_MANIFEST},
            body=manifest,
        )

    def delete_manifest(self, reference: str) -> Reply:
        return self.request("DELETE manifest", "DELETE", f"/v2/{self.name}/manifests/{reference}")

    def delete_blob(self, digest: str) -> Reply:
        return self.request("DELETE blob", "DELETE", f"/v2/{self.name}/blobs/{digest}")

    def push_image(self, image: Image, tags: Sequence[str], *, chunk_size: int | None) -> None:
        """Push every blob, then the manifest under each tag; fail on the first non-201."""
        for blob in image.blobs:
            reply = self.push_blob(blob, chunk_size=chunk_size)
            assert reply.status == 201, (self.name, blob.digest, reply)
        for tag in tags:
            reply = self.put_manifest(tag, image.manifest)
            assert reply.status == 201, (self.name, tag, reply)
            assert reply.headers["docker-content-digest"] == image.digest

    # -- pull ----------------------------------------------------------------------------

    def get_manifest(self, reference: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request(
            "GET manifest",
            "GET",
            f"/v2/{self.name}/manifests/{reference}",
            headers={"Accept": OCI_MANIFEST, **(headers or {})},
        )

    def get_blob(self, digest: str) -> Reply:
        return self.request("GET blob", "GET", f"/v2/{self.name}/blobs/{digest}")

    def pull(self, reference: str) -> str:
        """Pull ``reference`` and every blob it names, checking each digest; its digest."""
        manifest = self.get_manifest(reference)
        assert manifest.status == 200, (self.name, reference, manifest)
        digest = manifest.headers["docker-content-digest"]
        assert digest_of(manifest.body) == digest, (self.name, reference)
        document = manifest.json()
        for descriptor in [document["config"], *document["layers"]]:
            blob = self.get_blob(descriptor["digest"])
            assert blob.status == 200, (self.name, descriptor, blob)
            assert digest_of(blob.body) == descriptor["digest"], (self.name, descriptor)
            assert len(blob.body) == descriptor["size"], (self.name, descriptor)
        return digest
