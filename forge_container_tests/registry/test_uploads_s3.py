"""Uploads, upload expiry and garbage collection on the ``s3`` backend (a real S3 server).

Parts are 5 MiB (the fixture's part size): chunks below it wait in a tail object, a session
past it holds a multipart upload, which cancelling and expiring abort.
"""

from __future__ import annotations

import io
import random
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from forge_container.config_storage import S3_MIN_PART_SIZE
from forge_container.digest import digest_of
from forge_container.errors import DigestInvalid
from forge_container.models import BlobUpload, utcnow
from forge_container.registry import expiry, uploads
from forge_container.state import RegistryState
from forge_container.storage.paths import blob_path, upload_path
from forge_container_tests.helpers import upload_bytes
from forge_container_tests.registry.test_gc import collect, image, layer
from forge_container_tests.s3_server import Bucket

PART = S3_MIN_PART_SIZE
ALICE = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")


@pytest.fixture
def app_config(s3_config: dict[str, Any]) -> dict[str, Any]:
    return s3_config


def noise(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def append(state: RegistryState, upload_id: str, data: bytes) -> int:
    return uploads.append_chunk(
        state.db.session(), state.storage, state.settings, ALICE, upload_id, io.BytesIO(data),
        content_length=len(data), content_range=None,
    ).received  # fmt: skip


def finish(state: RegistryState, upload_id: str, digest: str, data: bytes = b"") -> int:
    return uploads.finish_upload(
        state.db.session(), state.storage, state.settings, ALICE, upload_id, digest,
        io.BytesIO(data), content_length=len(data),
    ).size  # fmt: skip


def new_session(state: RegistryState) -> str:
    return uploads.start_upload(state.db.session(), ALICE).id


def blob_key(data: bytes) -> str:
    return blob_path(digest_of(data))


def test_a_monolithic_upload_lands_at_its_digest(state: RegistryState, s3_bucket: Bucket) -> None:
    data = noise(2 * PART + 3, 1)
    info = upload_bytes(state, ALICE, data)
    assert info.size == len(data)
    assert s3_bucket.objects() == [blob_key(data)]
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.get(blob_key(data)) == data


def test_chunks_below_the_part_size_add_up_to_the_blob(
    state: RegistryState, s3_bucket: Bucket
) -> None:
    upload_id = new_session(state)
    data = noise(PART + PART // 2, 2)
    step = PART // 4
    for start in range(0, len(data), step):
        assert append(state, upload_id, data[start : start + step]) == min(start + step, len(data))
    assert s3_bucket.multipart_uploads() == [upload_path(upload_id)]
    assert s3_bucket.parts(upload_path(upload_id)) == [PART]
    assert finish(state, upload_id, str(digest_of(data))) == len(data)
    assert s3_bucket.objects() == [blob_key(data)]
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.get(blob_key(data)) == data


def test_a_session_without_its_hash_state_is_hashed_from_s3(
    state: RegistryState, s3_bucket: Bucket
) -> None:
    upload_id = new_session(state)
    first, last = noise(PART + 10, 3), b"the last chunk"
    append(state, upload_id, first)
    session = state.db.session()
    session.execute(
        update(BlobUpload)
        .where(BlobUpload.id == upload_id)
        .values(hash_state=None, hash_state_format=None)
    )
    session.commit()
    wrong = str(digest_of(b"something else"))
    with pytest.raises(DigestInvalid):
        finish(state, upload_id, wrong, last)
    assert state.storage.stat(upload_path(upload_id)) == len(first)  # kept for a retry
    assert finish(state, upload_id, str(digest_of(first + last)), last) == len(first + last)
    assert s3_bucket.get(blob_key(first + last)) == first + last
    assert s3_bucket.objects() == [blob_key(first + last)]
    assert s3_bucket.multipart_uploads() == []


def test_cancelling_aborts_the_multipart_upload(state: RegistryState, s3_bucket: Bucket) -> None:
    upload_id = new_session(state)
    append(state, upload_id, noise(PART + 1, 4))
    assert s3_bucket.multipart_uploads() == [upload_path(upload_id)]
    uploads.cancel_upload(state.db.session(), state.storage, ALICE, upload_id)
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.objects() == []


def test_expiry_aborts_idle_sessions_and_removes_orphans(
    state: RegistryState, s3_bucket: Bucket
) -> None:
    upload_id = new_session(state)
    append(state, upload_id, noise(PART + 1, 5))
    orphan = upload_path("orphan-of-a-crashed-monolithic-upload")
    state.storage.append(orphan, [noise(PART, 6), b"tail"])
    assert len(s3_bucket.multipart_uploads()) == 2

    report = expiry.expire_uploads(
        state.db.session(), state.storage, state.settings, now=utcnow() + timedelta(days=30)
    )

    assert (report.sessions, report.orphans, report.bytes) == (1, 1, 2 * PART + 1 + 4)
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.objects() == []


def test_garbage_collection_deletes_the_objects(app: Flask, s3_bucket: Bucket) -> None:
    image(app, "old", "latest", layers=(layer(1),))
    image(app, "new", "latest", layers=(layer(2),))
    assert blob_key(layer(1)) in s3_bucket.objects()

    report = collect(app, gc_untagged_age=3600)

    assert report.blobs == 3  # the old manifest, its config and its layer
    keys = s3_bucket.objects()
    assert blob_key(layer(1)) not in keys
    assert blob_key(layer(2)) in keys
    assert all(key.startswith("blobs/") for key in keys)
