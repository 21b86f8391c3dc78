"""The blob service: links decide what an image serves, ranges resolve against the size."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from forge_container.config import Settings
from forge_container.config_storage import S3Settings
from forge_container.digest import parse_digest
from forge_container.errors import BlobUnknown, DigestInvalid, RangeInvalid
from forge_container.registry import blobs, uploads
from forge_container.registry.blobs import ByteRange
from forge_container.state import RegistryState, get_state
from forge_container.storage.paths import blob_path
from forge_container_tests.helpers import upload_bytes

DATA = b"0123456789"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def state(app: Flask) -> Iterator[RegistryState]:
    """``DATA`` uploaded into image ``app`` of owner ``u:1``."""
    with app.app_context():
        state = get_state(app)
        who = uploads.Uploader("u:1", "alice", "app", "u:1")
        upload_bytes(state, who, DATA)
        yield state


def read(state: RegistryState, byte_range: ByteRange | None) -> tuple[int, int, bytes]:
    body = blobs.read_blob(
        state.db.session(), state.storage, "u:1", "app", DIGEST, byte_range=byte_range
    )
    assert body.stream is not None
    with body.stream:
        return body.start, body.length, body.stream.read(body.length)


def test_an_image_finds_the_blobs_it_links(state: RegistryState) -> None:
    session = state.db.session()
    assert blobs.find_linked(session, "u:1", "app", DIGEST) == blobs.BlobInfo(DIGEST, 10)
    assert blobs.find_linked(session, "u:1", "other", DIGEST) is None
    assert blobs.find_linked(session, "u:2", "app", DIGEST) is None
    assert blobs.stat_blob(session, state.storage, "u:1", "app", DIGEST).size == 10
    with pytest.raises(BlobUnknown):
        blobs.stat_blob(session, state.storage, "u:1", "other", DIGEST)


@pytest.mark.parametrize(
    ("byte_range", "start", "length"),
    [
        (None, 0, 10),
        (ByteRange(0, 0), 0, 1),
        (ByteRange(2, 5), 2, 4),
        (ByteRange(7, None), 7, 3),
        (ByteRange(7, 100), 7, 3),
        (ByteRange(None, 3), 7, 3),
        (ByteRange(None, 30), 0, 10),
    ],
)
def test_ranges_resolve_against_the_size(
    state: RegistryState, byte_range: ByteRange | None, start: int, length: int
) -> None:
    assert read(state, byte_range) == (start, length, DATA[start : start + length])


@pytest.mark.parametrize("byte_range", [ByteRange(10, None), ByteRange(11, 12), ByteRange(None, 0)])
def test_ranges_outside_the_blob(state: RegistryState, byte_range: ByteRange) -> None:
    with pytest.raises(RangeInvalid) as excinfo:
        read(state, byte_range)
    assert excinfo.value.status == 416
    assert excinfo.value.headers == {"Content-Range": "bytes */10"}


def test_no_body_is_opened_when_none_is_wanted(state: RegistryState) -> None:
    body = blobs.read_blob(state.db.session(), state.storage, "u:1", "app", DIGEST, with_body=False)
    assert body.stream is None
    assert body.info.size == 10


def test_missing_bytes_make_an_unknown_blob(state: RegistryState) -> None:
    state.storage.delete(blob_path(parse_digest(DIGEST)))
    session = state.db.session()
    with pytest.raises(BlobUnknown):
        blobs.stat_blob(session, state.storage, "u:1", "app", DIGEST)
    for with_body in (True, False):
        with pytest.raises(BlobUnknown):
            blobs.read_blob(session, state.storage, "u:1", "app", DIGEST, with_body=with_body)


@pytest.mark.parametrize("digest", ["sha256:xyz", "sha384:" + "0" * 96, "", "sha256:" + "F" * 64])
def test_invalid_digests(state: RegistryState, digest: str) -> None:
    session = state.db.session()
    with pytest.raises(DigestInvalid):
        blobs.stat_blob(session, state.storage, "u:1", "app", digest)
    with pytest.raises(DigestInvalid):
        blobs.unlink_blob(session, "u:1", "app", digest)


def test_unlinking(state: RegistryState) -> None:
    session = state.db.session()
    with pytest.raises(BlobUnknown):
        blobs.unlink_blob(session, "u:1", "other", DIGEST)
    blobs.unlink_blob(session, "u:1", "app", DIGEST)
    assert blobs.find_linked(session, "u:1", "app", DIGEST) is None
    assert state.storage.exists(blob_path(parse_digest(DIGEST)))
    with pytest.raises(BlobUnknown):
        blobs.unlink_blob(session, "u:1", "app", DIGEST)


# -- downloads: stream, offload or redirect -----------------------------------------------------


S3_REDIRECTS = S3Settings("bucket", "", None, None, None, redirect=True, redirect_expiry=60)


def download(
    state: RegistryState, settings: Settings, **options: Any
) -> blobs.BlobBody | blobs.BlobHandoff:
    return blobs.download_blob(
        state.db.session(), state.storage, settings, "u:1", "app", DIGEST, **options
    )


def configured(state: RegistryState, **changes: Any) -> Settings:
    """The app's settings with ``offload``, ``s3`` or ``operations`` fields changed."""
    settings = state.settings
    offload = dataclasses.replace(
        settings.offload, **{k: v for k, v in changes.items() if k in ("mode", "prefix")}
    )
    operations = dataclasses.replace(
        settings.operations, bandwidth_download=changes.get("bandwidth_download", 0)
    )
    return dataclasses.replace(
        settings, offload=offload, operations=operations, s3=changes.get("s3")
    )


def test_by_default_downloads_stream(state: RegistryState) -> None:
    body = download(state, state.settings)
    assert isinstance(body, blobs.BlobBody)
    assert body.stream is not None
    with body.stream:
        assert body.stream.read() == DATA


def test_an_nginx_offload_names_the_blob_under_the_prefix(state: RegistryState) -> None:
    hexdigest = DIGEST.removeprefix("sha256:")
    handoff = download(state, configured(state, mode="x-accel-redirect", prefix="/_b/"))
    assert handoff == blobs.BlobHandoff(
        blobs.BlobInfo(DIGEST, 10), blobs.ACCEL_REDIRECT, f"/_b/sha256/{hexdigest[:2]}/{hexdigest}"
    )
    capped = download(state, configured(state, mode="x-accel-redirect", bandwidth_download=5))
    assert isinstance(capped, blobs.BlobHandoff)
    assert capped.rate_limit == 5


def test_a_sendfile_offload_names_the_local_file(state: RegistryState) -> None:
    handoff = download(state, configured(state, mode="x-sendfile"))
    assert isinstance(handoff, blobs.BlobHandoff)
    assert handoff.how == blobs.SENDFILE
    assert handoff.target == state.storage.local_path(blob_path(parse_digest(DIGEST)))


@pytest.mark.parametrize("changes", [{"mode": "x-sendfile"}, {"s3": S3_REDIRECTS}])
def test_a_speed_cap_keeps_the_bytes_in_the_app(
    state: RegistryState, changes: dict[str, Any]
) -> None:
    body = download(state, configured(state, bandwidth_download=5, **changes))
    assert isinstance(body, blobs.BlobBody)
    assert body.stream is not None
    body.stream.close()


@pytest.mark.parametrize(
    "options",
    [
        {"whole": False},
        {"byte_range": ByteRange(0, 3)},
        {"with_body": False},
    ],
)
@pytest.mark.parametrize("mode", ["x-accel-redirect", "x-sendfile"])
def test_only_whole_blob_gets_are_handed_off(
    state: RegistryState, mode: str, options: dict[str, Any]
) -> None:
    body = download(state, configured(state, mode=mode), **options)
    assert isinstance(body, blobs.BlobBody)
    if body.stream is not None:
        body.stream.close()


def test_redirects_need_a_driver_that_gives_out_urls(state: RegistryState) -> None:
    body = download(state, configured(state, s3=S3_REDIRECTS))  # the filesystem driver has no URLs
    assert isinstance(body, blobs.BlobBody)
    assert body.stream is not None
    body.stream.close()


@pytest.mark.parametrize("mode", ["x-accel-redirect", "x-sendfile"])
def test_missing_bytes_are_never_handed_off(state: RegistryState, mode: str) -> None:
    state.storage.delete(blob_path(parse_digest(DIGEST)))
    with pytest.raises(BlobUnknown):
        download(state, configured(state, mode=mode))
    with pytest.raises(BlobUnknown):
        download(state, configured(state, mode=mode), with_body=False)


def test_handoffs_follow_the_links(state: RegistryState) -> None:
    with pytest.raises(BlobUnknown):
        blobs.download_blob(
            state.db.session(),
            state.storage,
            configured(state, mode="x-accel-redirect"),
            "u:1",
            "other",
            DIGEST,
        )
