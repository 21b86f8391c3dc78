"""``/v2/<name>/manifests/<reference>`` over HTTP: the spec's data sets, Gitea's cases, races."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from werkzeug.test import TestResponse

from forge_container.digest import digest_of
from forge_container.mediatypes import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from forge_container.models import PackageTag, PackageVersion
from forge_container.state import get_state
from forge_container_tests.helpers import basic, error_codes
from forge_container_tests.manifest_fixtures import (
    GITEA_BLOB,
    GITEA_BLOB_DIGEST,
    GITEA_CONFIG,
    GITEA_INDEX,
    GITEA_INDEX_DIGEST,
    GITEA_MANIFEST,
    GITEA_MANIFEST_DIGEST,
    GITEA_UNTAGGED,
    GITEA_UNTAGGED_DIGEST,
    LAYER_GZIP,
    config_bytes,
    descriptor,
    image_manifest,
    index_manifest,
    platform,
    seed_blob,
)

NAME = "alice/conformance"
IMAGE = "conformance"
ALICE = basic("alice", "pw-alice")
EXAMPLE_1 = "application/vnd.example.oci.conformance.v1"
EXAMPLE_2 = "application/vnd.example.oci.conformance.v2"
NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


@pytest.fixture
def owner(forge: Any) -> str:
    forge.user("alice")
    forge.user("bob")
    owner_id: str = forge.owner("alice").id
    return owner_id


def put(
    client: FlaskClient,
    reference: str,
    body: bytes,
    content_type: str | None = OCI_MANIFEST,
    *,
    name: str = NAME,
    query: str = "",
    headers: dict[str, str] = ALICE,
) -> TestResponse:
    extra = {"Content-Type": content_type} if content_type else {}
    return client.put(
        f"/v2/{name}/manifests/{reference}{query}", data=body, headers={**headers, **extra}
    )


class DataSet:
    """One of the conformance suite's data sets, pushed as the suite pushes it.

    Blobs are seeded into the image; manifests are pushed children first, each with the
    media type of its body; ``tags`` and ``manifests`` remember what a pull must return.
    """

    def __init__(
        self, app: Flask, client: FlaskClient, owner_id: str, algorithm: str = "sha256"
    ) -> None:
        self.app, self.client, self.owner_id, self.algorithm = app, client, owner_id, algorithm
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}
        self.subjects: dict[str, str] = {}

    def blob(self, data: bytes, media_type: str, *, data_field: bool = False) -> dict[str, Any]:
        seed_blob(self.app, self.owner_id, IMAGE, data, algorithm=self.algorithm)
        found = descriptor(data, media_type, algorithm=self.algorithm)
        if data_field:
            found["data"] = base64.b64encode(data).decode()
        return found

    def image(
        self,
        *,
        arch: str = "amd64",
        layers: int = 2,
        layer_media_type: str = LAYER_GZIP,
        layer_bytes: bytes | None = None,
        config: dict[str, Any] | None = None,
        extra_layers: tuple[dict[str, Any], ...] = (),
        data_field: bool = False,
        custom: bool = False,
        tag: str | None = None,
        tag_params: tuple[str, ...] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        if config is None:
            extra = {"x-custom": os.urandom(4).hex()} if custom else {}
            config = self.blob(config_bytes(arch=arch, **extra), OCI_CONFIG, data_field=data_field)
        listed = [*extra_layers] + [
            self.blob(layer_bytes or os.urandom(64), layer_media_type, data_field=data_field)
            for _ in range(layers)
        ]
        if custom:
            fields["x-custom-field"] = {"nested": [1, 2]}
        body = image_manifest(config, listed, **fields)
        return self.push(body, OCI_MANIFEST, tag, tag_params, fields.get("subject"))

    def index(
        self,
        children: Sequence[tuple[dict[str, Any], dict[str, str] | None]],
        *,
        tag: str | None = None,
        tag_params: tuple[str, ...] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        entries = [child | ({"platform": p} if p else {}) for child, p in children]
        body = index_manifest(entries, **fields)
        return self.push(body, OCI_INDEX, tag, tag_params, fields.get("subject"))

    def push(
        self,
        body: bytes,
        media_type: str,
        tag: str | None,
        tag_params: tuple[str, ...],
        subject: dict[str, Any] | None,
    ) -> dict[str, Any]:
        digest = str(digest_of(body, self.algorithm))
        query = "?" + "&".join(f"tag={t}" for t in tag_params) if tag_params else ""
        response = put(self.client, tag or digest, body, media_type, query=query)
        assert response.status_code == 201, response.data
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.headers["Location"] == f"/v2/{NAME}/manifests/{digest}"
        assert response.headers.getlist("OCI-Tag") == list(tag_params)
        if subject is not None:
            assert response.headers["OCI-Subject"] == subject["digest"]
            self.subjects[digest] = subject["digest"]
        else:
            assert "OCI-Subject" not in response.headers
        self.manifests[digest] = (body, media_type)
        for name in (tag, *tag_params):
            if name is not None:
                self.tags[name] = digest
        return descriptor(body, media_type, algorithm=self.algorithm)

    def check_pull(self) -> None:
        """Every manifest by digest and tag, GET and HEAD, and the tags list."""
        references = [(d, d) for d in self.manifests] + list(self.tags.items())
        for reference, digest in references:
            body, media_type = self.manifests[digest]
            got = self.client.get(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
            assert got.status_code == 200, reference
            assert got.data == body
            assert got.headers["Content-Type"] == media_type
            assert got.headers["Docker-Content-Digest"] == digest
            assert got.headers["Content-Length"] == str(len(body))
            head = self.client.head(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
            assert head.status_code == 200
            assert head.data == b""
            assert head.headers["Content-Length"] == str(len(body))
            assert head.headers["Content-Type"] == media_type
            assert head.headers["Docker-Content-Digest"] == digest
        if self.tags:
            listing = self.client.get(f"/v2/{NAME}/tags/list", headers=ALICE).get_json()
            assert set(self.tags) <= set(listing["tags"])

    def check_delete(self) -> None:
        """Tags first, then manifests newest first, as the suite deletes; each at once."""
        for tag in self.tags:
            assert (
                self.client.delete(f"/v2/{NAME}/manifests/{tag}", headers=ALICE).status_code == 202
            )
            assert self.client.head(f"/v2/{NAME}/manifests/{tag}", headers=ALICE).status_code == 404
        for digest in reversed(list(self.manifests)):
            url = f"/v2/{NAME}/manifests/{digest}"
            assert self.client.delete(url, headers=ALICE).status_code == 202
            assert self.client.head(url, headers=ALICE).status_code == 404


def build_image(s: DataSet) -> None:
    s.image(tag="image")


def build_image_uncompressed(s: DataSet) -> None:
    s.image(layer_media_type="application/vnd.oci.image.layer.v1.tar", tag="image-uncompressed")


def build_large_manifest(s: DataSet) -> None:
    annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    s.image(tag="large-manifest", annotations=annotations)


def build_index(s: DataSet) -> None:
    amd, arm = s.image(arch="amd64"), s.image(arch="arm64")
    s.index([(amd, platform("linux", "amd64")), (arm, platform("linux", "arm64"))], tag="index")


def build_nested_index(s: DataSet) -> None:
    inner = [
        s.index(
            [(s.image(arch="amd64"), platform("linux", "amd64")), (s.image(arch="arm64"), None)]
        )
        for _ in range(2)
    ]
    s.index([(inner[0], None), (inner[1], None)], tag="index-of-index")


def build_empty_index(s: DataSet) -> None:
    s.index([], tag="index")


def artifact(s: DataSet, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "artifactType": EXAMPLE_1,
        "config": s.blob(b"{}", OCI_EMPTY),
        "layers": 1,
        "layer_media_type": EXAMPLE_1,
    }
    return s.image(**(options | kwargs))


def build_artifact(s: DataSet) -> None:
    artifact(s, tag="artifact")


def build_artifact_without_layers(s: DataSet) -> None:
    artifact(s, layer_bytes=b"{}", layer_media_type=OCI_EMPTY, tag="artifact-without-layers")


def build_artifact_index(s: DataSet) -> None:
    children = [(artifact(s), platform("linux", arch)) for arch in ("amd64", "arm64")]
    s.index(children, artifactType=EXAMPLE_1, tag="artifact-index")


def build_artifacts_with_subject(s: DataSet) -> None:
    subject = s.image(tag="image")
    s.image(subject=subject)
    note = {"org.opencontainers.conformance": "hello conformance test"}
    artifact(s, subject=subject, annotations=note | {"u": "1"}, tag="tagged-artifact1")
    artifact(
        s,
        artifactType=EXAMPLE_2,
        layer_media_type="application/octet-stream",
        subject=subject,
        annotations=note | {"u": "2"},
        tag="tagged-artifact2",
    )


def build_index_with_subject(s: DataSet) -> None:
    subject = s.index([(s.image(arch=a), platform("linux", a)) for a in ("amd64", "arm64")])
    children = [(artifact(s), platform("linux", a)) for a in ("amd64", "arm64")]
    s.index(children, artifactType=EXAMPLE_1, subject=subject, tag="tagged-artifact")


def build_missing_subject(s: DataSet) -> None:
    missing = descriptor(b"missing content", OCI_MANIFEST) | {"size": 123}
    artifact(s, subject=missing, tag="tagged-artifact")


def build_data_field(s: DataSet) -> None:
    s.image(data_field=True, tag="data-field")


def build_non_distributable_layers(s: DataSet) -> None:
    never_pushed = tuple(
        {
            "mediaType": media_type,
            "digest": str(digest_of(os.urandom(256))),
            "size": size,
            "urls": ["https://store.example.com/blobs/sha256/x"],
        }
        for media_type, size in ((NONDISTRIBUTABLE, 123456), (NONDISTRIBUTABLE[:-5], 12345))
    )
    s.image(extra_layers=never_pushed, layers=1, tag="non-distributable-image")


def build_custom_fields(s: DataSet) -> None:
    children = [(s.image(arch=a, custom=True), platform("linux", a)) for a in ("amd64", "arm64")]
    extra: dict[str, Any] = {"x-custom-field": "index"}
    s.index(children, tag="custom-fields", **extra)


def build_no_layers(s: DataSet) -> None:
    s.image(layers=0, tag="no-layers")


def build_zero_byte_layer(s: DataSet) -> None:
    s.image(layers=1, layer_bytes=b"", layer_media_type="application/octet-stream", tag="empty")


def build_tag_parameters(s: DataSet) -> None:
    amd = s.image(arch="amd64", tag_params=("tag-param-0",))
    arm = s.image(arch="arm64", tag_params=("tag-param-1",))
    s.index(
        [(amd, platform("linux", "amd64")), (arm, platform("linux", "arm64"))],
        tag_params=("tag-param-2", "tag-param-sha256"),
    )


DATA_SETS: dict[str, Callable[[DataSet], None]] = {
    "image": build_image,
    "image-uncompressed": build_image_uncompressed,
    "large-manifest": build_large_manifest,
    "index": build_index,
    "nested-index": build_nested_index,
    "empty-index": build_empty_index,
    "artifact": build_artifact,
    "artifact-without-layers": build_artifact_without_layers,
    "artifact-index": build_artifact_index,
    "artifacts-with-subject": build_artifacts_with_subject,
    "index-with-subject": build_index_with_subject,
    "missing-subject": build_missing_subject,
    "data-field": build_data_field,
    "non-distributable-layers": build_non_distributable_layers,
    "custom-fields": build_custom_fields,
    "no-layers": build_no_layers,
    "zero-byte-layer": build_zero_byte_layer,
    "tag-param": build_tag_parameters,
}


def build_sha512_index(s: DataSet) -> None:
    """Content hashed with sha512 is pushed by digest only (a tag push hashes sha256)."""
    amd, arm = s.image(arch="amd64"), s.image(arch="arm64")
    s.index([(amd, platform("linux", "amd64")), (arm, platform("linux", "arm64"))])


CASES = [(name, "sha256") for name in sorted(DATA_SETS)] + [
    ("sha512", "sha512"),
    ("tag-param", "sha512"),
]
DATA_SETS["sha512"] = build_sha512_index


@pytest.mark.parametrize(("data_set", "algorithm"), CASES)
def test_conformance_data_set(
    app: Flask, client: FlaskClient, owner: str, data_set: str, algorithm: str
) -> None:
    s = DataSet(app, client, owner, algorithm)
    DATA_SETS[data_set](s)
    s.check_pull()
    s.check_delete()


def test_sparse_manifests_are_refused_with_manifest_blob_unknown(
    app: Flask, client: FlaskClient, owner: str
) -> None:
    s = DataSet(app, client, owner)
    config = s.blob(config_bytes(), OCI_CONFIG)
    missing_layer = descriptor(os.urandom(64), LAYER_GZIP)
    response = put(client, "sparse-image", image_manifest(config, [missing_layer]))
    assert response.status_code == 404
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.get_json()["errors"][0]["detail"] == {"digest": missing_layer["digest"]}

    image = s.image()
    random_child = descriptor(os.urandom(1024), OCI_MANIFEST)
    body = index_manifest(
        [
            image | {"platform": platform("linux", "amd64")},
            random_child | {"platform": platform("linux", "arm64")},
        ]
    )
    response = put(client, "sparse-index", body, OCI_INDEX)
    assert response.status_code == 404
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.get_json()["errors"][0]["detail"] == {"digest": random_child["digest"]}


def test_bad_digest_image_is_digest_invalid(app: Flask, client: FlaskClient, owner: str) -> None:
    s = DataSet(app, client, owner)
    body = image_manifest(s.blob(config_bytes(), OCI_CONFIG), [])
    response = put(client, str(digest_of(body)), body + b"  ")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    for method in (client.put, client.get):
        response = method(f"/v2/{NAME}/manifests/sha256:baddigeststring", data=body, headers=ALICE)
        assert response.status_code == 400
        assert error_codes(response) == ["DIGEST_INVALID"]


def seed_gitea(app: Flask, owner_id: str) -> None:
    seed_blob(app, owner_id, IMAGE, GITEA_BLOB)
    seed_blob(app, owner_id, IMAGE, GITEA_CONFIG)


def test_gitea_upload_pull_and_delete_cases(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_gitea(app, owner)
    assert put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST, headers={}).status_code == 401
    for tag in ("latest", "main"):
        response = put(client, tag, GITEA_MANIFEST, DOCKER_MANIFEST)
        assert response.status_code == 201
        assert response.headers["Docker-Content-Digest"] == GITEA_MANIFEST_DIGEST
        # Gitea re-types the same bytes as OCI; their mediaType says Docker, so we refuse.
        retyped = put(client, tag, GITEA_MANIFEST, OCI_MANIFEST)
        assert retyped.status_code == 400
        assert error_codes(retyped) == ["MANIFEST_INVALID"]
        assert client.head(f"/v2/{NAME}/manifests/unknown-tag", headers=ALICE).status_code == 404
        head = client.head(f"/v2/{NAME}/manifests/{tag}", headers=ALICE)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == "423"
        assert head.headers["Docker-Content-Digest"] == GITEA_MANIFEST_DIGEST
        got = client.get(f"/v2/{NAME}/manifests/{tag}", headers=ALICE)
        assert (got.status_code, got.data) == (200, GITEA_MANIFEST)
        assert got.headers["Content-Type"] == DOCKER_MANIFEST

    untagged = put(client, GITEA_UNTAGGED_DIGEST, GITEA_UNTAGGED)
    assert untagged.status_code == 201
    head = client.head(f"/v2/{NAME}/manifests/{GITEA_UNTAGGED_DIGEST}", headers=ALICE)
    assert (head.status_code, head.headers["Content-Length"]) == (200, "413")

    for _ in range(2):  # UploadAgain: idempotent
        index = put(client, "multi", GITEA_INDEX, OCI_INDEX)
        assert index.status_code == 201
        assert index.headers["Docker-Content-Digest"] == GITEA_INDEX_DIGEST
    listing = client.get(f"/v2/{NAME}/tags/list", headers=ALICE).get_json()
    assert listing == {"name": NAME, "tags": ["latest", "main", "multi"]}
    with app.app_context():
        session = get_state(app).db.session()
        index_meta = session.scalars(
            select(PackageVersion.metadata_json).where(PackageVersion.digest == GITEA_INDEX_DIGEST)
        ).one()
        assert [m["size"] for m in index_meta["manifests"]] == [1524, 1514]
        assert session.scalar(select(func.count()).select_from(PackageVersion)) == 3

    for reference in (GITEA_UNTAGGED_DIGEST, "multi"):
        url = f"/v2/{NAME}/manifests/{reference}"
        assert client.delete(url, headers=ALICE).status_code == 202
        assert client.head(url, headers=ALICE).status_code == 404
        assert client.delete(url, headers=ALICE).status_code == 404


def test_etag_and_if_none_match(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_gitea(app, owner)
    put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    url = f"/v2/{NAME}/manifests/latest"
    got = client.get(url, headers=ALICE)
    assert got.headers["ETag"] == f'"{GITEA_MANIFEST_DIGEST}"'
    for method in (client.get, client.head):
        cached = method(url, headers={**ALICE, "If-None-Match": f'"{GITEA_MANIFEST_DIGEST}"'})
        assert cached.status_code == 304
        assert cached.data == b""
    stale = client.get(url, headers={**ALICE, "If-None-Match": '"sha256:other"'})
    assert (stale.status_code, stale.data) == (200, GITEA_MANIFEST)


def test_the_accept_header_does_not_convert(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_gitea(app, owner)
    put(client, GITEA_UNTAGGED_DIGEST, GITEA_UNTAGGED)
    got = client.get(
        f"/v2/{NAME}/manifests/{GITEA_UNTAGGED_DIGEST}",
        headers={**ALICE, "Accept": DOCKER_MANIFEST},
    )
    assert (got.status_code, got.headers["Content-Type"]) == (200, OCI_MANIFEST)


def test_the_manifest_is_a_blob_of_the_image_until_deleted(
    app: Flask, client: FlaskClient, owner: str
) -> None:
    seed_gitea(app, owner)
    put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    blob_url = f"/v2/{NAME}/blobs/{GITEA_MANIFEST_DIGEST}"
    with client.get(blob_url, headers=ALICE) as got:
        assert (got.status_code, got.data) == (200, GITEA_MANIFEST)
    client.delete(f"/v2/{NAME}/manifests/{GITEA_MANIFEST_DIGEST}", headers=ALICE)
    assert client.head(blob_url, headers=ALICE).status_code == 404
    assert client.head(f"/v2/{NAME}/blobs/{GITEA_BLOB_DIGEST}", headers=ALICE).status_code == 200


@pytest.mark.parametrize(
    ("reference", "body", "content_type", "status", "code"),
    [
        ("latest", b"blablabla", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        ("latest", b'{"schemaVersion": 1, "fsLayers": []}', None, 400, "MANIFEST_INVALID"),
        (
            "latest",
            b"{}",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            400,
            "MANIFEST_INVALID",
        ),
        (".latest", GITEA_MANIFEST, DOCKER_MANIFEST, 400, "TAG_INVALID"),
        ("latest", GITEA_UNTAGGED, OCI_MANIFEST, 404, "MANIFEST_BLOB_UNKNOWN"),
        ("latest?tag=x", GITEA_UNTAGGED, OCI_MANIFEST, 400, "TAG_INVALID"),
        (GITEA_UNTAGGED_DIGEST + "?tag=a+b", GITEA_UNTAGGED, OCI_MANIFEST, 400, "TAG_INVALID"),
        (
            GITEA_UNTAGGED_DIGEST + "?" + "&".join(f"tag=t{i}" for i in range(65)),
            GITEA_UNTAGGED,
            OCI_MANIFEST,
            414,
            "TAG_INVALID",
        ),
    ],
)
def test_push_errors(
    client: FlaskClient,
    owner: str,
    reference: str,
    body: bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    response = put(client, reference, body, content_type)
    assert response.status_code == status
    assert error_codes(response) == [code]


def test_schema1_says_why(client: FlaskClient, owner: str) -> None:
    response = put(client, "latest", b'{"schemaVersion": 1}', None)
    assert "schema 1 is not supported" in response.get_json()["errors"][0]["message"]


def test_a_manifest_larger_than_the_limit_is_413(
    app: Flask, client: FlaskClient, owner: str
) -> None:
    limit = get_state(app).settings.max_manifest_size
    response = put(client, "latest", b" " * (limit + 1))
    assert response.status_code == 413
    assert error_codes(response) == ["MANIFEST_INVALID"]


@pytest.mark.parametrize(
    ("method", "reference", "status", "code"),
    [
        ("get", "unknown-tag", 404, "MANIFEST_UNKNOWN"),
        ("get", ".INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        ("get", "sha256:" + "0" * 64, 404, "MANIFEST_UNKNOWN"),
        ("get", "sha384:" + "0" * 96, 400, "DIGEST_INVALID"),
        ("delete", "unknown-tag", 404, "MANIFEST_UNKNOWN"),
        ("delete", "sha256:" + "0" * 64, 404, "MANIFEST_UNKNOWN"),
    ],
)
def test_pull_and_delete_errors(
    client: FlaskClient, owner: str, method: str, reference: str, status: int, code: str
) -> None:
    response = getattr(client, method)(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
    assert response.status_code == status
    assert error_codes(response) == [code]


def test_only_the_owner_may_push_and_delete(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_gitea(app, owner)
    assert put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST).status_code == 201
    bob = basic("bob", "pw-bob")
    assert put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST, headers=bob).status_code == 403
    assert client.delete(f"/v2/{NAME}/manifests/latest", headers=bob).status_code == 403
    assert client.get(f"/v2/{NAME}/manifests/latest").status_code == 200  # public owner


def race(app: Flask, calls: list[Callable[[FlaskClient], TestResponse]]) -> list[int]:
    """Run each call on its own thread and client at the same moment; their statuses."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = [0] * len(calls)

    def run(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        statuses[i] = calls[i](client).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_pushes_of_one_tag_and_one_manifest(app: Flask, owner: str) -> None:
    config = seed_blob(app, owner, IMAGE, config_bytes()) | {"mediaType": OCI_CONFIG}
    bodies = [image_manifest(config, [], annotations={"n": str(i)}) for i in range(4)]
    same = bodies[0]
    calls: list[Callable[[FlaskClient], TestResponse]] = [
        *(lambda c, b=b: put(c, "latest", b) for b in bodies),
        *(lambda c: put(c, "latest", same) for _ in range(4)),
        *(lambda c: put(c, str(digest_of(same)), same, query="?tag=v1&tag=v2") for _ in range(4)),
    ]
    assert race(app, calls) == [201] * len(calls)
    with app.app_context():
        session = get_state(app).db.session()
        digests = session.scalars(select(PackageVersion.digest)).all()
        assert sorted(digests) == sorted({str(digest_of(b)) for b in bodies})
        tag_rows = session.execute(select(PackageTag.name, PackageTag.version_id)).all()
        assert sorted(name for name, _ in tag_rows) == ["latest", "v1", "v2"]
    latest = app.test_client().get(f"/v2/{NAME}/manifests/latest", headers=ALICE)
    assert latest.data in bodies


def test_concurrent_push_and_delete_never_fail_badly(app: Flask, owner: str) -> None:
    config = seed_blob(app, owner, IMAGE, config_bytes()) | {"mediaType": OCI_CONFIG}
    body = image_manifest(config, [])
    digest = str(digest_of(body))
    calls: list[Callable[[FlaskClient], TestResponse]] = [
        *(lambda c: put(c, "latest", body) for _ in range(4)),
        *(lambda c: c.delete(f"/v2/{NAME}/manifests/{digest}", headers=ALICE) for _ in range(4)),
        *(lambda c: c.get(f"/v2/{NAME}/manifests/latest", headers=ALICE) for _ in range(4)),
    ]
    statuses = race(app, calls)
    assert set(statuses[:4]) == {201}
    assert set(statuses[4:8]) <= {202, 404}
    assert set(statuses[8:]) <= {200, 404}


def test_metadata_reaches_the_version(app: Flask, client: FlaskClient, owner: str) -> None:
    labels = {"org.opencontainers.image.source": "https://example.org/src"}
    config_data = config_bytes(arch="arm64", variant="v8", config={"Labels": labels})
    config = seed_blob(app, owner, IMAGE, config_data) | {"mediaType": OCI_CONFIG}
    body = image_manifest(
        config, [], annotations={"org.opencontainers.image.description": "a tool"}
    )
    assert put(client, "latest", body).status_code == 201
    with app.app_context():
        meta = get_state(app).db.session().scalars(select(PackageVersion.metadata_json)).one()
    assert meta["platform"] == "linux/arm64/v8"
    assert meta["source"] == "https://example.org/src"
    assert meta["description"] == "a tool"
    assert meta["size"] == len(body) + len(config_data)
    assert json.loads(body)["annotations"] == meta["annotations"]


def test_a_pull_runs_one_statement_and_opens_no_transaction(
    app: Flask, client: FlaskClient, owner: str
) -> None:
    seed_gitea(app, owner)
    assert put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST).status_code == 201
    client.get(f"/v2/{NAME}/manifests/latest", headers=ALICE)  # warm the login cache
    statements: list[str] = []
    begun: list[object] = []
    with app.app_context():
        engine = get_state(app).db.engine
        session_class = get_state(app).db.session.session_factory.class_

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def on_begin(session: Any, transaction: Any, connection: Any) -> None:
        begun.append(transaction)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(session_class, "after_begin", on_begin)
    try:
        for reference in ("latest", GITEA_MANIFEST_DIGEST):
            got = client.get(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
            assert (got.status_code, got.data) == (200, GITEA_MANIFEST)
            head = client.head(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
            assert head.headers["Docker-Content-Digest"] == GITEA_MANIFEST_DIGEST
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(session_class, "after_begin", on_begin)
    assert len(statements) == 4
    assert begun == []


def test_if_none_match_star_and_lists(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_gitea(app, owner)
    put(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    url = f"/v2/{NAME}/manifests/latest"
    for value in (
        "*",
        f'"sha256:other", "{GITEA_MANIFEST_DIGEST}"',
        f'W/"{GITEA_MANIFEST_DIGEST}"',
    ):
        cached = client.get(url, headers={**ALICE, "If-None-Match": value})
        assert cached.status_code == 304
        assert cached.headers["ETag"] == f'"{GITEA_MANIFEST_DIGEST}"'
        assert cached.headers["Docker-Content-Digest"] == GITEA_MANIFEST_DIGEST
