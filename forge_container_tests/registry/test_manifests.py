"""The manifests service: parsing, pushing, pulling and deleting manifests and tags."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forge_container.cache import ContentCache
from forge_container.digest import digest_of
from forge_container.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    SizeInvalid,
    TagInvalid,
)
from forge_container.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
)
from forge_container.models import (
    BlobLink,
    Package,
    PackageBlob,
    PackageFile,
    PackageTag,
    PackageVersion,
)
from forge_container.registry import manifests
from forge_container.registry.manifest_format import parse_manifest, parse_reference
from forge_container.registry.manifests import PushedManifest
from forge_container.state import get_state
from forge_container.storage.paths import blob_path
from forge_container_tests.manifest_fixtures import (
    GITEA_BLOB,
    GITEA_BLOB_DIGEST,
    GITEA_CONFIG,
    GITEA_CONFIG_DIGEST,
    GITEA_INDEX,
    GITEA_INDEX_DIGEST,
    GITEA_MANIFEST,
    GITEA_MANIFEST_DIGEST,
    GITEA_UNTAGGED,
    GITEA_UNTAGGED_DIGEST,
    LAYER_GZIP,
    descriptor,
    empty_config,
    image_config,
    image_manifest,
    index_manifest,
    platform,
    seed_blob,
)

OWNER = "u:1"
IMAGE = "app"
DIGEST_A = "sha256:" + "a" * 64


def push(
    app: Flask,
    reference: str,
    body: bytes,
    content_type: str | None = OCI_MANIFEST,
    *,
    tags: Sequence[str] = (),
    image: str = IMAGE,
) -> PushedManifest:
    """A push as the view makes it, in its own app context (its own session)."""
    return put(app, reference, io.BytesIO(body), content_type, tags=tags, image=image)


def put(
    app: Flask,
    reference: str,
    body: io.BytesIO,
    content_type: str | None = OCI_MANIFEST,
    *,
    tags: Sequence[str] = (),
    image: str = IMAGE,
    content_length: int | None = None,
) -> PushedManifest:
    state = get_state(app)
    with app.app_context():
        return manifests.put_manifest(
            state.db.session(),
            state.storage,
            state.settings,
            owner_id=OWNER,
            owner_name="alice",
            image=image,
            reference=reference,
            body=body,
            content_type=content_type,
            content_length=content_length,
            tags=tags,
            by="u:1",
        )


def get(
    app: Flask,
    reference: str,
    *,
    read: bool = True,
    image: str = IMAGE,
    cache: ContentCache | None = None,
) -> manifests.StoredManifest:
    state = get_state(app)
    with app.app_context():
        return manifests.get_manifest(
            state.db.session(),
            state.storage,
            owner_id=OWNER,
            image=image,
            reference=reference,
            read=read,
            cache=cache,
        )


def delete(app: Flask, reference: str) -> None:
    with app.app_context():
        manifests.delete_manifest(
            get_state(app).db.session(), owner_id=OWNER, image=IMAGE, reference=reference
        )


def seed_gitea_blobs(app: Flask) -> None:
    seed_blob(app, OWNER, IMAGE, GITEA_BLOB)
    seed_blob(app, OWNER, IMAGE, GITEA_CONFIG)


def count(session: Session, model: type[Any]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def version(session: Session, digest: str) -> PackageVersion:
    found = session.scalars(select(PackageVersion).where(PackageVersion.digest == digest)).one()
    return found


def tags(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(PackageTag.name, PackageVersion.digest).join(
            PackageVersion, PackageVersion.id == PackageTag.version_id
        )
    )
    return {name: digest for name, digest in rows}


def files(session: Session, digest: str) -> list[tuple[str, str | None, str]]:
    rows = session.execute(
        select(PackageFile.role, PackageFile.media_type, PackageBlob.digest)
        .join(PackageBlob, PackageBlob.id == PackageFile.blob_id)
        .join(PackageVersion, PackageVersion.id == PackageFile.version_id)
        .where(PackageVersion.digest == digest)
        .order_by(PackageFile.position)
    )
    return [(role, media_type, digest) for role, media_type, digest in rows]


def linked(session: Session, digest: str) -> bool:
    query = (
        select(func.count())
        .select_from(BlobLink)
        .join(PackageBlob, PackageBlob.id == BlobLink.blob_id)
        .where(PackageBlob.digest == digest)
    )
    return bool(session.scalar(query))


# References and manifest parsing (no database)


def test_references_are_tags_or_digests() -> None:
    assert parse_reference("latest").tag == "latest"
    assert str(parse_reference(DIGEST_A).digest) == DIGEST_A
    sha512 = "sha512:" + "b" * 128
    assert str(parse_reference(sha512).digest) == sha512


@pytest.mark.parametrize("reference", ["sha256:bad", "md5:" + "a" * 32, "sha384:" + "a" * 96])
def test_a_bad_digest_reference_is_digest_invalid(reference: str) -> None:
    with pytest.raises(DigestInvalid):
        parse_reference(reference)


@pytest.mark.parametrize("reference", [".hidden", "-x", "a" * 129, "tag!"])
def test_a_bad_tag_is_tag_invalid_on_push_and_unknown_on_pull(reference: str) -> None:
    with pytest.raises(TagInvalid):
        parse_reference(reference, push=True)
    with pytest.raises(ManifestUnknown):
        parse_reference(reference)


CONFIG = descriptor(b"{}", "application/vnd.oci.image.config.v1+json")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"blablabla", OCI_MANIFEST, "not valid JSON"),
        (b"", OCI_MANIFEST, "not valid JSON"),
        (b"\xff\xfe\x00", OCI_MANIFEST, "not valid JSON"),
        (b"[" * 100_000, OCI_MANIFEST, "not valid JSON"),
        (b"[]", OCI_MANIFEST, "JSON object"),
        (json.dumps({"config": CONFIG, "layers": []}).encode(), OCI_MANIFEST, "schemaVersion"),
        (image_manifest(CONFIG, [], schemaVersion=True), OCI_MANIFEST, "schemaVersion"),
        (image_manifest(CONFIG, [], schemaVersion="2"), OCI_MANIFEST, "schemaVersion"),
        (json.dumps({"schemaVersion": 2, "layers": []}).encode(), OCI_MANIFEST, "config"),
        (image_manifest({**CONFIG, "digest": "sha256:xyz"}, []), OCI_MANIFEST, "config.digest"),
        (image_manifest({**CONFIG, "digest": 5}, []), OCI_MANIFEST, "config.digest"),
        (image_manifest({**CONFIG, "size": -1}, []), OCI_MANIFEST, "config.size"),
        (image_manifest({**CONFIG, "size": 1.5}, []), OCI_MANIFEST, "config.size"),
        (image_manifest({**CONFIG, "size": True}, []), OCI_MANIFEST, "config.size"),
        (image_manifest({**CONFIG, "mediaType": ""}, []), OCI_MANIFEST, "config.mediaType"),
        (image_manifest(CONFIG, {"a": 1}), OCI_MANIFEST, "layers must be a list"),  # type: ignore[arg-type]
        (image_manifest(CONFIG, ["x"]), OCI_MANIFEST, "layers[0]"),  # type: ignore[list-item]
        (image_manifest(CONFIG, [{**CONFIG, "urls": "x"}]), OCI_MANIFEST, "urls"),
        (image_manifest(CONFIG, [{**CONFIG, "data": 1}]), OCI_MANIFEST, "data"),
        (image_manifest(CONFIG, [], annotations={"a": 1}), OCI_MANIFEST, "annotations"),
        (image_manifest(CONFIG, [], artifactType=3), OCI_MANIFEST, "artifactType"),
        (image_manifest(CONFIG, [], subject="x"), OCI_MANIFEST, "subject"),
        (index_manifest([{**CONFIG, "platform": "linux"}]), OCI_INDEX, "platform"),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}).encode(), OCI_INDEX, "manifests"),
        (image_manifest(CONFIG, []), OCI_INDEX, "does not match"),
        (image_manifest(CONFIG, []), DOCKER_MANIFEST, "does not match"),
        (image_manifest(CONFIG, [], media_type=None), "application/vnd.example", "unsupported"),
        (
            image_manifest(CONFIG, [], media_type="application/vnd.oci.artifact.manifest.v1+json"),
            None,
            "unsupported",
        ),
        (json.dumps({"schemaVersion": 2}).encode(), None, "no media type"),
    ],
)
def test_invalid_manifests_say_what_is_wrong(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(ManifestInvalid) as raised:
        parse_manifest(body, content_type)
    assert message in raised.value.message
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode(), None),
        (json.dumps({"schemaVersion": 1}).encode(), "application/json"),
        (b'{"schemaVersion": 2}', DOCKER_SCHEMA1_SIGNED),
        (image_manifest(CONFIG, [], media_type=DOCKER_SCHEMA1_SIGNED), None),
    ],
)
def test_schema1_is_refused_with_a_clear_message(body: bytes, content_type: str | None) -> None:
    with pytest.raises(ManifestInvalid) as raised:
        parse_manifest(body, content_type)
    assert "schema 1 is not supported" in raised.value.message


def test_media_type_comes_from_content_type_else_from_the_body_else_from_the_shape() -> None:
    body = image_manifest(CONFIG, [], media_type=None)
    assert parse_manifest(body, OCI_MANIFEST + "; charset=utf-8").media_type == OCI_MANIFEST
    assert parse_manifest(body, DOCKER_MANIFEST).media_type == DOCKER_MANIFEST
    assert parse_manifest(body, None).media_type == OCI_MANIFEST
    assert parse_manifest(index_manifest([], media_type=None), None).media_type == OCI_INDEX  # type: ignore[arg-type]
    docker = image_manifest(CONFIG, [], media_type=DOCKER_MANIFEST)
    assert parse_manifest(docker, "application/json").media_type == DOCKER_MANIFEST
    assert parse_manifest(docker, "application/octet-stream").media_type == DOCKER_MANIFEST


def test_descriptor_details_and_artifact_types() -> None:
    foreign = descriptor(b"x", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
    docker_foreign = descriptor(b"y", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    with_urls = descriptor(b"z", LAYER_GZIP, urls=["https://example.org/z"])
    body = image_manifest(
        CONFIG,
        [foreign, docker_foreign, with_urls, descriptor(b"w", LAYER_GZIP) | {"data": "dw=="}],
        extra={"custom": True},
        layers_note=None,
    )
    manifest = parse_manifest(body, OCI_MANIFEST)
    assert [layer.foreign for layer in manifest.layers] == [True, True, True, False]
    assert manifest.artifact_type == CONFIG["mediaType"]
    artifact = image_manifest(CONFIG, [], artifactType="application/vnd.example")
    assert parse_manifest(artifact, OCI_MANIFEST).artifact_type == "application/vnd.example"
    assert parse_manifest(index_manifest([]), OCI_INDEX).artifact_type is None
    null_layers = json.dumps({"schemaVersion": 2, "config": CONFIG, "layers": None}).encode()
    assert parse_manifest(null_layers, OCI_MANIFEST).layers == ()


# Push


def test_push_by_tag_writes_the_version_its_files_and_the_tag(app: Flask, session: Session) -> None:
    seed_gitea_blobs(app)
    pushed = push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    assert pushed == PushedManifest(GITEA_MANIFEST_DIGEST, DOCKER_MANIFEST, 423, None, ())

    stored = version(session, GITEA_MANIFEST_DIGEST)
    assert stored.media_type == DOCKER_MANIFEST
    assert stored.size == 423 + 1069 + 32
    assert stored.created_by == "u:1"
    assert stored.artifact_type == DOCKER_CONFIG
    assert stored.subject_digest is None
    assert files(session, GITEA_MANIFEST_DIGEST) == [
        ("manifest", DOCKER_MANIFEST, GITEA_MANIFEST_DIGEST),
        ("config", DOCKER_CONFIG, GITEA_CONFIG_DIGEST),
        ("layer", "application/vnd.docker.image.rootfs.diff.tar.gzip", GITEA_BLOB_DIGEST),
    ]
    assert tags(session) == {"latest": GITEA_MANIFEST_DIGEST}
    assert linked(session, GITEA_MANIFEST_DIGEST)
    meta = stored.metadata_json
    assert meta["kind"] == "image"
    assert meta["platform"] == "linux/amd64"
    assert len(meta["history"]) == 2
    assert meta["size"] == 1524
    assert [layer["digest"] for layer in meta["layers"]] == [GITEA_BLOB_DIGEST]
    storage = get_state(app).storage
    assert storage.read_bytes(blob_path(digest_of(GITEA_MANIFEST))) == GITEA_MANIFEST


def test_push_by_digest_is_untagged(app: Flask, session: Session) -> None:
    seed_gitea_blobs(app)
    pushed = push(app, GITEA_UNTAGGED_DIGEST, GITEA_UNTAGGED)
    assert pushed.digest == GITEA_UNTAGGED_DIGEST
    assert version(session, GITEA_UNTAGGED_DIGEST).media_type == OCI_MANIFEST
    assert tags(session) == {}


def test_index_of_gitea_vectors_with_per_platform_sizes(app: Flask, session: Session) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    push(app, GITEA_UNTAGGED_DIGEST, GITEA_UNTAGGED)
    pushed = push(app, "multi", GITEA_INDEX, OCI_INDEX)
    assert pushed.digest == GITEA_INDEX_DIGEST

    index = version(session, GITEA_INDEX_DIGEST)
    assert index.size == 524 + 1524 + 1514
    assert [(m["platform"], m["digest"], m["size"]) for m in index.metadata_json["manifests"]] == [
        ("linux/arm/v7", GITEA_MANIFEST_DIGEST, 1524),
        ("linux/arm64/v8", GITEA_UNTAGGED_DIGEST, 1514),
    ]
    assert files(session, GITEA_INDEX_DIGEST) == [
        ("manifest", OCI_INDEX, GITEA_INDEX_DIGEST),
        ("child", DOCKER_MANIFEST, GITEA_MANIFEST_DIGEST),
        ("child", OCI_MANIFEST, GITEA_UNTAGGED_DIGEST),
    ]
    assert index.artifact_type is None

    first_id = index.id
    push(app, "multi", GITEA_INDEX, OCI_INDEX)
    session.expire_all()
    assert version(session, GITEA_INDEX_DIGEST).id == first_id
    assert count(session, PackageVersion) == 3
    assert count(session, PackageFile) == 3 + 3 + 3


def test_pushing_a_tag_elsewhere_moves_it(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    first = push(app, "latest", image_manifest(config, []))
    second = push(app, "latest", image_manifest(config, [], annotations={"v": "2"}))
    assert tags(session) == {"latest": second.digest}
    assert count(session, PackageTag) == 1
    assert {first.digest, second.digest} <= {
        v.digest for v in session.scalars(select(PackageVersion))
    }


def test_the_same_bytes_under_another_content_type_change_the_served_type(
    app: Flask, session: Session
) -> None:
    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [], media_type=None)
    digest = push(app, "latest", body, DOCKER_MANIFEST).digest
    push(app, "latest", body, OCI_MANIFEST)
    assert get(app, digest).media_type == OCI_MANIFEST
    assert count(session, PackageVersion) == 1


def test_a_body_that_does_not_match_the_digest_is_refused(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [])
    with pytest.raises(DigestInvalid):
        push(app, str(digest_of(body + b"  ")), body)
    assert count(session, PackageVersion) == 0


def test_a_sha512_digest_reference_is_hashed_with_sha512(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [])
    digest = digest_of(body, "sha512")
    assert push(app, str(digest), body).digest == str(digest)
    assert get(app, str(digest)).data == body
    assert get_state(app).storage.exists(blob_path(digest))


def test_missing_blobs_are_manifest_blob_unknown_and_nothing_is_written(
    app: Flask, session: Session
) -> None:
    layer = descriptor(b"never pushed", LAYER_GZIP)
    body = image_manifest(descriptor(b"{}", "application/vnd.oci.image.config.v1+json"), [layer])
    with pytest.raises(ManifestBlobUnknown) as raised:
        push(app, "latest", body)
    assert raised.value.detail == {"digest": str(digest_of(b"{}"))}
    assert count(session, Package) == 0

    config = empty_config(app, OWNER, IMAGE)
    with pytest.raises(ManifestBlobUnknown) as raised:
        push(app, "latest", image_manifest(config, [layer]))
    assert raised.value.detail == {"digest": layer["digest"]}
    assert count(session, PackageVersion) == count(session, PackageTag) == 0


def test_blobs_of_another_image_must_be_mounted_first(app: Flask) -> None:
    config = image_config(app, OWNER, "other")
    with pytest.raises(ManifestBlobUnknown):
        push(app, "latest", image_manifest(config, []))


def test_a_wrong_descriptor_size_is_size_invalid(app: Flask) -> None:
    config = image_config(app, OWNER, IMAGE)
    with pytest.raises(SizeInvalid) as raised:
        push(app, "latest", image_manifest({**config, "size": config["size"] + 1}, []))
    assert raised.value.detail == {"digest": config["digest"], "size": config["size"] + 1}


def test_non_distributable_layers_need_not_be_pushed(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    pushed_layer = seed_blob(app, OWNER, IMAGE, b"a real layer") | {"mediaType": LAYER_GZIP}
    foreign = descriptor(
        b"windows base",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        urls=["https://example.org/base"],
    )
    body = image_manifest(config, [foreign, pushed_layer])
    digest = push(app, "latest", body).digest
    assert [role for role, _, _ in files(session, digest)] == ["manifest", "config", "layer"]
    layers = version(session, digest).metadata_json["layers"]
    assert [layer.get("stored", True) for layer in layers] == [False, True]


def test_index_children_must_be_manifests_of_the_image(app: Flask, session: Session) -> None:
    child = descriptor(b"never pushed", OCI_MANIFEST, platform=platform("linux", "amd64"))
    with pytest.raises(ManifestBlobUnknown) as raised:
        push(app, "sparse", index_manifest([child]), OCI_INDEX)
    assert raised.value.detail == {"digest": child["digest"]}

    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [])
    push(app, str(digest_of(body)), body)
    wrong_size = descriptor(body, OCI_MANIFEST) | {"size": len(body) + 1}
    with pytest.raises(SizeInvalid):
        push(app, "index", index_manifest([wrong_size]), OCI_INDEX)
    assert count(session, PackageVersion) == 1


def test_nested_and_empty_indexes(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [])
    push(app, str(digest_of(body)), body)
    inner = index_manifest([descriptor(body, OCI_MANIFEST, platform=platform("linux", "amd64"))])
    push(app, str(digest_of(inner)), inner, OCI_INDEX)
    outer = index_manifest([descriptor(inner, OCI_INDEX)])
    pushed = push(app, "index-of-index", outer, OCI_INDEX)
    meta = version(session, pushed.digest).metadata_json
    assert meta["manifests"][0]["digest"] == str(digest_of(inner))
    assert push(app, "empty", index_manifest([]), OCI_INDEX).digest == str(
        digest_of(index_manifest([]))
    )


def test_a_missing_subject_is_accepted_and_recorded(app: Flask, session: Session) -> None:
    config = empty_config(app, OWNER, IMAGE)
    subject = descriptor(b"missing content", OCI_MANIFEST)
    body = image_manifest(
        config,
        [],
        artifactType="application/vnd.example.sbom",
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    pushed = push(app, "sbom", body)
    assert pushed.subject == subject["digest"]
    stored = version(session, pushed.digest)
    assert stored.subject_digest == subject["digest"]
    assert stored.artifact_type == "application/vnd.example.sbom"
    assert stored.metadata_json["annotations"] == {
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z"
    }
    assert stored.metadata_json["platform"] == "unknown/unknown"


def test_tag_parameters_tag_a_digest_push(app: Flask, session: Session) -> None:
    config = image_config(app, OWNER, IMAGE)
    body = image_manifest(config, [])
    digest = str(digest_of(body))
    pushed = push(app, digest, body, tags=["v1", "latest", "v1"])
    assert pushed.tags == ("v1", "latest")
    assert tags(session) == {"v1": digest, "latest": digest}


@pytest.mark.parametrize(
    ("reference", "tag_params", "status"),
    [
        ("latest", ["v1"], 400),
        (None, ["bad tag"], 400),
        (None, [f"t{i}" for i in range(manifests.MAX_TAGS_PER_PUSH + 1)], 414),
    ],
)
def test_bad_tag_parameters(
    app: Flask, reference: str | None, tag_params: list[str], status: int
) -> None:
    body = image_manifest(CONFIG, [])
    with pytest.raises(TagInvalid) as raised:
        push(app, reference or str(digest_of(body)), body, tags=tag_params)
    assert raised.value.status == status


def test_a_manifest_over_the_limit_is_413(app: Flask) -> None:
    limit = get_state(app).settings.max_manifest_size
    for content_length in (limit + 1, None):
        with pytest.raises(ManifestInvalid) as raised:
            put(app, "latest", io.BytesIO(b" " * (limit + 1)), content_length=content_length)
        assert raised.value.status == 413


# Pull


def test_get_by_tag_and_by_digest(app: Flask) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    by_tag = get(app, "latest")
    assert (by_tag.digest, by_tag.media_type, by_tag.size) == (
        GITEA_MANIFEST_DIGEST,
        DOCKER_MANIFEST,
        423,
    )
    assert by_tag.data == GITEA_MANIFEST
    assert get(app, GITEA_MANIFEST_DIGEST, read=False).data is None
    with pytest.raises(ManifestUnknown):
        get(app, "unknown-tag")
    with pytest.raises(ManifestUnknown):
        get(app, DIGEST_A)
    with pytest.raises(DigestInvalid):
        get(app, "sha256:baddigeststring")


def test_a_manifest_whose_bytes_are_gone_is_unknown(app: Flask) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    get_state(app).storage.delete(blob_path(digest_of(GITEA_MANIFEST)))
    with pytest.raises(ManifestUnknown):
        get(app, "latest")


def test_cached_bytes_are_served_without_reading_storage(app: Flask) -> None:
    cache = get_state(app).manifest_bytes
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    assert get(app, "latest", read=False, cache=cache).data is None
    assert len(cache) == 0
    assert get(app, "latest", cache=cache).data == GITEA_MANIFEST
    assert cache.get(GITEA_MANIFEST_DIGEST) == GITEA_MANIFEST
    get_state(app).storage.delete(blob_path(digest_of(GITEA_MANIFEST)))
    assert get(app, GITEA_MANIFEST_DIGEST, cache=cache).data == GITEA_MANIFEST


def test_a_deleted_manifest_is_unknown_even_with_its_bytes_cached(app: Flask) -> None:
    cache = get_state(app).manifest_bytes
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    assert get(app, "latest", cache=cache).data == GITEA_MANIFEST
    delete(app, GITEA_MANIFEST_DIGEST)
    assert cache.get(GITEA_MANIFEST_DIGEST) == GITEA_MANIFEST
    for reference in ("latest", GITEA_MANIFEST_DIGEST):
        with pytest.raises(ManifestUnknown):
            get(app, reference, cache=cache)


def test_cached_bytes_are_not_served_for_an_image_without_the_manifest(app: Flask) -> None:
    cache = get_state(app).manifest_bytes
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    assert get(app, "latest", cache=cache).data == GITEA_MANIFEST
    with pytest.raises(ManifestUnknown):
        get(app, GITEA_MANIFEST_DIGEST, image="other", cache=cache)


def test_a_re_pushed_tag_is_seen_at_once_through_the_cache(app: Flask) -> None:
    cache = get_state(app).manifest_bytes
    config = image_config(app, OWNER, IMAGE)
    first_body = image_manifest(config, [])
    second_body = image_manifest(config, [], annotations={"v": "2"})
    first = push(app, "latest", first_body)
    assert get(app, "latest", cache=cache).data == first_body
    second = push(app, "latest", second_body)
    pulled = get(app, "latest", cache=cache)
    assert (pulled.digest, pulled.data) == (second.digest, second_body)
    assert get(app, first.digest, cache=cache).data == first_body


def test_only_small_bytes_that_match_their_digest_are_cached(app: Flask) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    too_small = ContentCache(max_bytes=1 << 20, max_item=len(GITEA_MANIFEST) - 1)
    assert get(app, "latest", cache=too_small).data == GITEA_MANIFEST
    assert len(too_small) == 0
    path = blob_path(digest_of(GITEA_MANIFEST))
    storage = get_state(app).storage
    storage.delete(path)
    storage.write_bytes(path, b"{}")
    cache = ContentCache()
    assert get(app, "latest", cache=cache).data == b"{}"
    assert cache.get(GITEA_MANIFEST_DIGEST) is None


# Delete


def test_delete_by_tag_removes_only_the_tag(app: Flask, session: Session) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    push(app, "main", GITEA_MANIFEST, DOCKER_MANIFEST)
    delete(app, "latest")
    assert tags(session) == {"main": GITEA_MANIFEST_DIGEST}
    assert get(app, GITEA_MANIFEST_DIGEST).data == GITEA_MANIFEST
    with pytest.raises(ManifestUnknown):
        delete(app, "latest")


def test_delete_by_digest_removes_the_manifest_its_files_tags_and_link(
    app: Flask, session: Session
) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    push(app, "main", GITEA_MANIFEST, DOCKER_MANIFEST)
    delete(app, GITEA_MANIFEST_DIGEST)
    assert count(session, PackageVersion) == count(session, PackageFile) == 0
    assert tags(session) == {}
    assert not linked(session, GITEA_MANIFEST_DIGEST)
    assert linked(session, GITEA_CONFIG_DIGEST) and linked(session, GITEA_BLOB_DIGEST)
    for reference in ("latest", GITEA_MANIFEST_DIGEST):
        with pytest.raises(ManifestUnknown):
            get(app, reference)
    with pytest.raises(ManifestUnknown):
        delete(app, GITEA_MANIFEST_DIGEST)


def test_deleting_an_index_keeps_its_children_and_a_child_may_go_first(
    app: Flask, session: Session
) -> None:
    seed_gitea_blobs(app)
    push(app, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    push(app, GITEA_UNTAGGED_DIGEST, GITEA_UNTAGGED)
    push(app, "multi", GITEA_INDEX, OCI_INDEX)

    delete(app, GITEA_UNTAGGED_DIGEST)
    assert get(app, "multi").data == GITEA_INDEX
    delete(app, GITEA_INDEX_DIGEST)
    assert get(app, "latest").digest == GITEA_MANIFEST_DIGEST
    assert {v.digest for v in session.scalars(select(PackageVersion))} == {GITEA_MANIFEST_DIGEST}


def test_deleting_a_subject_keeps_its_referrers(app: Flask, session: Session) -> None:
    config = empty_config(app, OWNER, IMAGE)
    subject_body = image_manifest(config, [])
    subject = push(app, "image", subject_body)
    signature = image_manifest(
        config,
        [],
        artifactType="application/vnd.example.sig",
        subject=descriptor(subject_body, OCI_MANIFEST),
    )
    referrer = push(app, str(digest_of(signature)), signature)
    delete(app, subject.digest)
    assert version(session, referrer.digest).subject_digest == subject.digest


def test_a_bad_reference_on_delete(app: Flask) -> None:
    with pytest.raises(ManifestUnknown):
        delete(app, "-bad")
    with pytest.raises(DigestInvalid):
        delete(app, "sha256:short")
