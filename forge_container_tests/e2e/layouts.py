"""OCI image layouts on disk (``oci-layout``, ``index.json``, ``blobs/sha256/...``).

skopeo copies from and to them (``oci:DIR:tag``). Layers are tars of files whose bytes come
from a seed, so a layout built twice is identical, byte for byte; only :meth:`Layout.big_layer`
uses ``os.urandom`` and streams to disk in pieces, never holding the layer in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

#: Fixed timestamps keep configs and tars deterministic.
CREATED = "2024-01-02T03:04:05Z"
MTIME = 1704164645
PIECE = 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: Mapping[str, str] | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            entry["platform"] = dict(self.platform)
        if self.annotations:
            entry["annotations"] = dict(self.annotations)
        return entry

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Descriptor:
        return cls(
            media_type=entry["mediaType"],
            digest=entry["digest"],
            size=entry["size"],
            platform=entry.get("platform"),
            annotations=entry.get("annotations") or {},
        )


@dataclass(frozen=True)
class Layer:
    """A layer blob and the digest of its uncompressed tar (the config's ``diff_id``)."""

    descriptor: Descriptor
    diff_id: str


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _RandomReader:
    """``size`` bytes of ``os.urandom``, read in pieces."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n < 0 else min(n, self.remaining)
        self.remaining -= n
        return os.urandom(n)


def seeded_bytes(seed: int, size: int) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(PIECE):
            digest.update(piece)
    return "sha256:" + digest.hexdigest()


class Layout:
    """One OCI image layout directory; :meth:`tag` writes ``index.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        if not (root / "oci-layout").exists():
            self.blobs.mkdir(parents=True, exist_ok=True)
            (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
            self._write_index([])

    # -- reading ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def read_json(self, descriptor: Descriptor) -> Any:
        return json.loads(self.read_blob(descriptor.digest))

    def tags(self) -> dict[str, Descriptor]:
        """The descriptors ``index.json`` names, by their ``ref.name`` annotation."""
        index = json.loads((self.root / "index.json").read_text())
        found: dict[str, Descriptor] = {}
        for entry in index["manifests"]:
            descriptor = Descriptor.from_json(entry)
            if REF_NAME in descriptor.annotations:
                found[descriptor.annotations[REF_NAME]] = descriptor
        return found

    def resolve(self, tag: str) -> Descriptor:
        return self.tags()[tag]

    def walk(self, descriptor: Descriptor) -> Iterator[Descriptor]:
        """The descriptor and everything it references: children, configs, layers."""
        yield descriptor
        if descriptor.media_type in INDEX_TYPES:
            for child in self.read_json(descriptor)["manifests"]:
                yield from self.walk(Descriptor.from_json(child))
        elif descriptor.media_type in MANIFEST_TYPES:
            manifest = self.read_json(descriptor)
            yield Descriptor.from_json(manifest["config"])
            for layer in manifest["layers"]:
                yield Descriptor.from_json(layer)

    def digests(self, tag: str) -> list[str]:
        """Every digest reachable from ``tag``, in walking order."""
        return [d.digest for d in self.walk(self.resolve(tag))]

    def verify(self, tag: str) -> None:
        """Assert every blob reachable from ``tag`` is present with its size and digest."""
        for descriptor in self.walk(self.resolve(tag)):
            path = self.blob_path(descriptor.digest)
            assert path.stat().st_size == descriptor.size, descriptor
            assert sha256_file(path) == descriptor.digest, descriptor

    # -- writing ---------------------------------------------------------------------------

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            temp = path.with_name(path.name + ".tmp")
            temp.write_bytes(data)
            temp.rename(path)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def add_json(self, document: Mapping[str, Any], media_type: str) -> Descriptor:
        return self.add_blob(json.dumps(document, indent=2).encode(), media_type)

    def layer(self, sizes: Sequence[int], *, seed: int, level: int = 6) -> Layer:
        """A gzip'ed tar of ``len(sizes)`` files of seeded random bytes."""
        files = {
            f"data/{seed}/file-{i}.bin": seeded_bytes(seed * 1000 + i, size)
            for i, size in enumerate(sizes)
        }
        return self._tar_layer(files, gzip_level=level)

    def big_layer(self, size: int) -> Layer:
        """An uncompressed tar of one file of ``size`` bytes from ``os.urandom``."""
        return self._tar_layer({"big/random.bin": size}, gzip_level=None)

    def _tar_layer(self, files: Mapping[str, bytes | int], *, gzip_level: int | None) -> Layer:
        fd, name = tempfile.mkstemp(dir=self.blobs, prefix=".layer-")
        temp = Path(name)
        with os.fdopen(fd, "wb") as out:
            compressed = _HashingWriter(out)
            gzipped = None
            if gzip_level is not None:
                gzipped = gzip.GzipFile(
                    filename="", mode="wb", fileobj=compressed, compresslevel=gzip_level, mtime=0
                )
            plain = _HashingWriter(gzipped if gzipped is not None else out)
            with tarfile.open(
                fileobj=cast(IO[bytes], plain),
                mode="w",
                format=tarfile.PAX_FORMAT,
            ) as tar:
                for path, content in files.items():
                    info = tarfile.TarInfo(path)
                    info.mtime = MTIME
                    info.mode = 0o644
                    if isinstance(content, int):
                        info.size = content
                        tar.addfile(info, cast(IO[bytes], _RandomReader(content)))
                    else:
                        info.size = len(content)
                        tar.addfile(info, io.BytesIO(content))
            if gzipped is not None:
                gzipped.close()
        if gzip_level is None:
            digest, size, media_type = plain.digest, plain.size, OCI_LAYER_TAR
        else:
            digest, size, media_type = compressed.digest, compressed.size, OCI_LAYER_GZIP
        temp.rename(self.blob_path(digest))
        return Layer(Descriptor(media_type, digest, size), diff_id=plain.digest)

    def image(
        self,
        layers: Sequence[Layer],
        *,
        os_name: str = "linux",
        architecture: str = "amd64",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """An image manifest over ``layers`` with a config (platform, labels, history)."""
        config = {
            "created": CREATED,
            "architecture": architecture,
            "os": os_name,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "Labels": dict(labels or {}),
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [
                {"created": CREATED, "created_by": f"/bin/sh -c #(nop) ADD layer {i}"}
                for i in range(len(layers))
            ],
        }
        config_descriptor = self.add_json(config, OCI_CONFIG)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.to_json(),
            "layers": [layer.descriptor.to_json() for layer in layers],
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        descriptor = self.add_json(manifest, OCI_MANIFEST)
        return Descriptor(
            OCI_MANIFEST,
            descriptor.digest,
            descriptor.size,
            platform={"architecture": architecture, "os": os_name},
        )

    def index(self, manifests: Sequence[Descriptor]) -> Descriptor:
        """An image index of ``manifests`` (their platforms included)."""
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        return self.add_json(document, OCI_INDEX)

    def tag(self, tag: str, descriptor: Descriptor) -> None:
        """Name ``descriptor`` ``tag`` in ``index.json`` (replacing an older one)."""
        entries = [d for name, d in self.tags().items() if name != tag]
        tagged = Descriptor(
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            annotations={REF_NAME: tag},
        )
        self._write_index([*entries, tagged])

    def _write_index(self, entries: Sequence[Descriptor]) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [e.to_json() for e in entries],
        }
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


def single_image(
    root: Path, tag: str, *, seed: int, sizes: Sequence[Sequence[int]] = ((2048, 700),)
) -> Layout:
    """A layout with one linux/amd64 image: one layer per entry of ``sizes``."""
    layout = Layout(root)
    layers = [layout.layer(files, seed=seed * 10 + i) for i, files in enumerate(sizes)]
    manifest = layout.image(
        layers,
        labels={"org.opencontainers.image.title": f"e2e-{seed}", "e2e.seed": str(seed)},
        annotations={"org.opencontainers.image.description": f"image from seed {seed}"},
    )
    layout.tag(tag, manifest)
    return layout


def multi_arch(root: Path, tag: str, *, seed: int) -> Layout:
    """A layout with an index of a linux/amd64 and a linux/arm64 image."""
    layout = Layout(root)
    children = []
    for offset, architecture in enumerate(("amd64", "arm64")):
        layers = [
            layout.layer((1024 + offset, 300), seed=seed * 10 + offset),
            layout.layer((4096,), seed=seed * 10 + 5 + offset),
        ]
        children.append(
            layout.image(layers, architecture=architecture, labels={"e2e.arch": architecture})
        )
    layout.tag(tag, layout.index(children))
    return layout


def big_image(root: Path, tag: str, *, size: int) -> Layout:
    """A layout with one image whose only layer is an uncompressed tar of ``size`` bytes."""
    layout = Layout(root)
    layout.tag(tag, layout.image([layout.big_layer(size)]))
    return layout
