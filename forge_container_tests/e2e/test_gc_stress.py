"""Garbage collection four times a second while images sharing layers are pushed over HTTP.

A live gunicorn serves the pushes; in this process a thread collects garbage on the same
database and storage with a one-second grace and untagged age, so layers uploaded before a
pause, and index children pushed before their index, are collected under the pushers' feet.
The pushers do what clients do when told a blob is unknown: upload again and retry. In the
end every tag must pull with every digest right, the referrers of kept images must stay,
what was replaced or never used must be gone, and the server must never have answered 5xx.
On SQLite (one writer at a time) fewer pushers run, for less time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from forge_container import jobs
from forge_container.demo import create_app
from forge_container_tests.e2e.conftest import Reply, Server, Site, create_site, running, watching

POSTGRES = os.environ.get("FORGE_TEST_DATABASE", "sqlite") == "postgresql"
PUSHERS = 6 if POSTGRES else 3
PUSH_SECONDS = 10.0 if POSTGRES else 8.0
GC_EVERY = 0.25
#: Seconds a layer may wait for its manifest, and an untagged manifest for its index.
GRACE = 1
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SHARED = "shared"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


#: Layers the images share: small, so the run is about races, not bandwidth.
POOL = [random.Random(n).randbytes(1024 * (1 + n % 24)) for n in range(12)]


class Unknown(Exception):
    """The registry said a blob or child manifest is unknown: upload again and retry."""


@dataclass
class Expected:
    """What a tag must pull as at the end."""

    digest: str
    body: bytes
    #: Blobs of the manifest, or of each child manifest of an index.
    blobs: dict[str, bytes]
    children: dict[str, bytes] = field(default_factory=dict)
    referrers: set[str] = field(default_factory=set)


@dataclass
class Pusher:
    """One client pushing images into ``alice/<image>`` (and tags of its own in shared)."""

    server: Server
    token: str
    number: int
    stop: threading.Event
    rng: random.Random = field(init=False)
    tally: Counter[str] = field(default_factory=Counter)
    final: dict[tuple[str, str], Expected] = field(default_factory=dict)
    #: Digests that must be gone at the end: replaced manifests, blobs never used.
    garbage: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.number)

    # -- HTTP

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        reply = self.server.request(method, path, headers=headers, timeout=60, **kwargs)
        self.tally[f"{method} {reply.status}"] += 1
        if reply.status >= 500:
            self.errors.append(f"{method} {path}: {reply.status} {reply.body[:200]!r}")
        return reply

    def upload(self, image: str, data: bytes) -> None:
        """Upload ``data`` unless the image has it: monolithic, chunked, or a mount."""
        base = f"/v2/alice/{image}/blobs"
        digest = digest_of(data)
        if self.request("HEAD", f"{base}/{digest}").status == 200:
            return
        way = self.rng.choice(["monolithic", "chunked", "mount"])
        if way == "monolithic":
            reply = self.request("POST", f"{base}/uploads/?digest={digest}", body=data)
            assert reply.status == 201, reply
            return
        if way == "mount":
            source = f"alice/{SHARED}"
            reply = self.request("POST", f"{base}/uploads/?mount={digest}&from={source}")
            if reply.status == 201:
                return
            assert reply.status == 202, reply
            location = path_of(reply.headers["location"])
            put = self.request("PUT", with_query(location, f"digest={digest}"), body=data)
            assert put.status == 201, put
            return
        reply = self.request("POST", f"{base}/uploads/")
        assert reply.status == 202, reply
        half = len(data) // 2
        location = path_of(reply.headers["location"])
        patch = self.request(
            "PATCH",
            location,
            body=data[:half],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"0-{half - 1}",
            },
        )
        assert patch.status == 202, patch
        location = path_of(patch.headers["location"])
        put = self.request("PUT", with_query(location, f"digest={digest}"), body=data[half:])
        assert put.status == 201, put

    def put_manifest(self, image: str, reference: str, body: bytes, media_type: str) -> None:
        reply = self.request(
            "PUT",
            f"/v2/alice/{image}/manifests/{reference}",
            body=body,
            headers={"Content-Type": media_type},
        )
        if reply.status == 404 and reply.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN":
            self.tally["blob unknown, retried"] += 1
            raise Unknown(reference)
        assert reply.status == 201, reply

    def pause(self) -> None:
        """Sometimes longer than the grace: what was just uploaded may be collected."""
        time.sleep(self.rng.choice([0, 0, 0.1, 0.4, GRACE + 0.3]))

    # -- images

    def image(self, image: str, name: str, *, reference: str | None = None) -> Expected:
        """Push an image manifest (by tag, or untagged by digest), re-uploading if told to."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "author": name}).encode()
        layers = self.rng.sample(POOL, self.rng.randint(1, 3))
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(config, OCI_CONFIG),
                "layers": [descriptor(layer, LAYER) for layer in layers],
            }
        ).encode()
        blobs = {digest_of(data): data for data in [config, *layers]}
        for _ in range(10):
            for data in blobs.values():
                self.upload(image, data)
            self.pause()
            try:
                self.put_manifest(image, reference or digest_of(body), body, OCI_MANIFEST)
                return Expected(digest_of(body), body, blobs)
            except Unknown:
                continue
        raise AssertionError(f"{image}: the manifest never went in")

    def index(self, image: str, tag: str, name: str) -> Expected:
        """Two untagged platform manifests, a pause, then the index that lists them."""
        for _ in range(10):
            children = [self.image(image, f"{name}-{arch}") for arch in ("amd64", "arm64")]
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [descriptor(c.body, OCI_MANIFEST) for c in children],
                }
            ).encode()
            self.pause()
            try:
                self.put_manifest(image, tag, body, OCI_INDEX)
            except Unknown:
                continue
            blobs = {d: b for child in children for d, b in child.blobs.items()}
            return Expected(digest_of(body), body, blobs, {c.digest: c.body for c in children})
        raise AssertionError(f"{image}: the index never went in")

    def signature(self, image: str, subject: Expected, name: str) -> str:
        """An untagged artifact whose subject is ``subject``."""
        payload = f"signature of {subject.digest} by {name}".encode()
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.signature",
                "config": descriptor(b"{}", OCI_EMPTY),
                "layers": [descriptor(payload, "text/plain")],
                "subject": descriptor(subject.body, OCI_MANIFEST),
            }
        ).encode()
        for _ in range(10):
            for data in (b"{}", payload):
                self.upload(image, data)
            try:
                self.put_manifest(image, digest_of(body), body, OCI_MANIFEST)
                return digest_of(body)
            except Unknown:
                continue
        raise AssertionError(f"{image}: the signature never went in")

    def run(self) -> None:
        image = f"stress-{self.number}"
        count = 0
        try:
            while not self.stop.is_set():
                count += 1
                where = self.rng.choice([image, image, SHARED])
                tag = f"p{self.number}-t{count % 3}"
                name = f"{self.number}-{count}"
                if self.rng.random() < 0.25:
                    pushed = self.index(where, tag, name)
                else:
                    pushed = self.image(where, name, reference=tag)
                    if self.rng.random() < 0.5:
                        pushed.referrers.add(self.signature(where, pushed, name))
                replaced = self.final.get((where, tag))
                if replaced is not None and replaced.digest != pushed.digest:
                    self.garbage.append((where, "manifests", replaced.digest))
                self.final[(where, tag)] = pushed
                if self.rng.random() < 0.3:  # uploaded, and never used
                    unused = f"unused {name}".encode()
                    self.upload(where, unused)
                    self.garbage.append((where, "blobs", digest_of(unused)))
        except Exception as exc:  # reported by the test
            self.errors.append(f"pusher {self.number}: {exc!r}")


def path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(path: str, query: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{query}"


@dataclass
class Collector:
    """Garbage collection every :data:`GC_EVERY` seconds, in this process."""

    app: Flask
    stop: threading.Event
    runs: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def collect(self) -> None:
        with self.app.app_context():
            report = jobs.collect_garbage()
        self.runs += 1
        self.removed.update(manifests=len(report.manifests), links=report.links, blobs=report.blobs)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.collect()
            except Exception as exc:  # reported by the test
                self.errors.append(repr(exc))
            self.stop.wait(GC_EVERY)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with create_site(tmp_path / "site") as site:
        yield site


@pytest.fixture
def collector_app(site: Site) -> Iterator[Flask]:
    """The site's app in this process, with a one-second grace and untagged age."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in list(os.environ):
            if variable.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_")):
                patch.delenv(variable)
        patch.setenv("FORGE_DEMO_INSTANCE_PATH", str(site.instance_path))
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": site.database_url,
                "SECRET_KEY": site.secret_key,
                "CONTAINER_REGISTRY_STORAGE_PATH": str(site.storage_path),
                "CONTAINER_REGISTRY_GC_GRACE": GRACE,
                "CONTAINER_REGISTRY_GC_UNTAGGED_AGE": GRACE,
            }
        )
    yield app
    with app.app_context():
        from forge_container.demo import db

        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def test_nothing_a_push_needs_is_collected_while_garbage_goes(
    site: Site, collector_app: Flask, tmp_path: Path
) -> None:
    workers = 4 if POSTGRES else 2
    log = tmp_path / "gunicorn.log"
    with running(site, log, workers=workers, threads=4) as server, watching(server):
        scopes = [
            f"repository:alice/{name}:pull,push"
            for name in [SHARED, *(f"stress-{n}" for n in range(PUSHERS))]
        ]
        token = server.token("alice", scopes)
        stop = threading.Event()
        pushers = [Pusher(server, token, n, stop) for n in range(PUSHERS)]
        collector = Collector(collector_app, stop)
        threads = [threading.Thread(target=p.run) for p in pushers]
        threads.append(threading.Thread(target=collector.run))
        for thread in threads:
            thread.start()
        time.sleep(PUSH_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)

        errors = [e for p in pushers for e in p.errors] + collector.errors
        assert not errors, "\n".join(errors)
        # Everything is past its grace now: one more collection takes all garbage.
        time.sleep(GRACE + 0.5)
        collector.collect()

        checker = Pusher(server, token, -1, stop)
        final = {key: e for p in pushers for key, e in p.final.items()}
        for (image, tag), expected in final.items():
            verify(checker, image, tag, expected)
        for image, kind, digest in (g for p in pushers for g in p.garbage):
            status = checker.request("HEAD", f"/v2/alice/{image}/{kind}/{digest}").status
            assert status == 404, (image, kind, digest)

    tally = sum((p.tally for p in pushers), Counter())
    print(f"\npushes: {tally}\ncollections: {collector.runs}, removed: {collector.removed}")
    assert len(final) >= PUSHERS and collector.runs >= 3
    assert collector.removed["manifests"] > 0 and collector.removed["blobs"] > 0
    assert checker.errors == []


def verify(client: Pusher, image: str, tag: str, expected: Expected) -> None:
    """The tag pulls as pushed: manifest, children, blobs and referrers, digests checked."""
    base = f"/v2/alice/{image}"
    reply = client.request("GET", f"{base}/manifests/{tag}")
    assert reply.status == 200, (image, tag, reply)
    assert reply.headers["docker-content-digest"] == expected.digest
    assert reply.body == expected.body
    for digest, body in expected.children.items():
        child = client.request("GET", f"{base}/manifests/{digest}")
        assert child.status == 200 and child.body == body, (image, tag, digest, child)
    for digest, data in expected.blobs.items():
        blob = client.request("GET", f"{base}/blobs/{digest}")
        assert blob.status == 200, (image, tag, digest, blob)
        assert digest_of(blob.body) == digest and blob.body == data
    if expected.referrers:
        listed = client.request("GET", f"{base}/referrers/{expected.digest}")
        assert listed.status == 200, listed
        found = {m["digest"] for m in listed.json()["manifests"]}
        assert expected.referrers <= found, (image, tag, expected.referrers, found)
        for digest in expected.referrers:
            assert client.request("GET", f"{base}/manifests/{digest}").status == 200
