"""The upload service: hash state across workers and its fallback, limits."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from forge_container.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    SizeInvalid,
)
from forge_container.models import BlobUpload
from forge_container.registry import blobs, uploads
from forge_container.state import RegistryState
from forge_container.storage.paths import upload_path

ALICE = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")


def sha(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def append(
    state: RegistryState,
    upload_id: str,
    data: bytes,
    *,
    at: int | None = None,
    who: uploads.Uploader = ALICE,
) -> uploads.UploadStatus:
    content_range = None if at is None else (at, at + len(data) - 1)
    return uploads.append_chunk(
        state.db.session(),
        state.storage,
        state.settings,
        who,
        upload_id,
        io.BytesIO(data),
        content_length=len(data),
        content_range=content_range,
    )


def finish(
    state: RegistryState, upload_id: str, digest: str | None, data: bytes = b""
) -> blobs.BlobInfo:
    return uploads.finish_upload(
        state.db.session(),
        state.storage,
        state.settings,
        ALICE,
        upload_id,
        digest,
        io.BytesIO(data),
        content_length=len(data),
    )


def linked(state: RegistryState, digest: str, image: str = "app") -> bool:
    return blobs.find_linked(state.db.session(), "u:1", image, digest) is not None


def test_chunks_continue_from_the_saved_hash_state(state: RegistryState) -> None:
    upload = uploads.start_upload(state.db.session(), ALICE)
    assert append(state, upload.id, b"abc").received == 3
    assert append(state, upload.id, b"def", at=3).received == 6
    info = finish(state, upload.id, sha(b"abcdefgh"), b"gh")
    assert info == blobs.BlobInfo(digest=sha(b"abcdefgh"), size=8)
    assert linked(state, info.digest)
    assert state.db.session.get(BlobUpload, upload.id) is None
    assert not state.storage.exists(upload_path(upload.id))


@pytest.mark.parametrize(
    "values",
    [
        {"hash_state": None, "hash_state_format": None},
        {"hash_state_format": "rehashes-0.0.1:sha256"},
        {"hash_state": b"corrupt"},
    ],
)
def test_without_a_usable_hash_state_the_stored_bytes_are_hashed_again(
    state: RegistryState, session: Session, values: dict[str, object]
) -> None:
    upload = uploads.start_upload(session, ALICE)
    append(state, upload.id, b"abc")
    session.execute(update(BlobUpload).where(BlobUpload.id == upload.id).values(**values))
    session.commit()
    append(state, upload.id, b"def", at=3)  # hashes nothing: the state is unusable
    info = finish(state, upload.id, sha(b"abcdefg"), b"g")
    assert info.size == 7


def test_a_mismatch_after_a_rehash_keeps_everything(state: RegistryState, session: Session) -> None:
    upload = uploads.start_upload(session, ALICE)
    append(state, upload.id, b"abc")
    with pytest.raises(DigestInvalid):
        finish(state, upload.id, sha(b"abcd", "sha512"), b"x")
    assert uploads.upload_status(session, state.storage, ALICE, upload.id).received == 3
    assert state.storage.stat(upload_path(upload.id)) == 3
    assert finish(state, upload.id, sha(b"abcd", "sha512"), b"d").size == 4


def test_a_sha512_session_hashes_in_sha512(state: RegistryState, session: Session) -> None:
    upload = uploads.start_upload(session, ALICE, algorithm="sha512")
    append(state, upload.id, b"abc")
    row = session.get(BlobUpload, upload.id)
    assert row is not None
    assert row.digest_algorithm == "sha512"
    assert row.hash_state_format is not None
    assert row.hash_state_format.endswith(":sha512")
    assert finish(state, upload.id, sha(b"abc", "sha512")).digest == sha(b"abc", "sha512")


def test_start_refuses_unknown_algorithms(session: Session) -> None:
    with pytest.raises(DigestInvalid):
        uploads.start_upload(session, ALICE, algorithm="sha1")


def test_a_missing_digest_is_refused_before_the_session_is_looked_up(
    state: RegistryState,
) -> None:
    with pytest.raises(DigestInvalid):
        finish(state, "no-such-upload", None)
    with pytest.raises(BlobUploadUnknown):
        finish(state, "no-such-upload", sha(b""))


@pytest.mark.parametrize("upload_id", ["", "../x", "a" * 65, "a/b", "a.b"])
def test_malformed_ids_are_unknown_sessions(state: RegistryState, upload_id: str) -> None:
    with pytest.raises(BlobUploadUnknown):
        uploads.upload_status(state.db.session(), state.storage, ALICE, upload_id)


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(ALICE, principal_id="u:2"),
        dataclasses.replace(ALICE, principal_id=None),
        dataclasses.replace(ALICE, image="other"),
        dataclasses.replace(ALICE, owner_id="u:2"),
    ],
)
def test_sessions_are_bound(state: RegistryState, other: uploads.Uploader) -> None:
    upload = uploads.start_upload(state.db.session(), ALICE)
    with pytest.raises(BlobUploadUnknown):
        append(state, upload.id, b"abc", who=other)
    with pytest.raises(BlobUploadUnknown):
        uploads.cancel_upload(state.db.session(), state.storage, other, upload.id)
    assert uploads.upload_status(state.db.session(), state.storage, ALICE, upload.id).received == 0


def test_the_size_limit_counts_what_the_session_holds(state: RegistryState) -> None:
    limited = dataclasses.replace(
        state, settings=dataclasses.replace(state.settings, max_blob_size=5)
    )
    upload = uploads.start_upload(limited.db.session(), ALICE)
    append(limited, upload.id, b"abcd")
    with pytest.raises(SizeInvalid) as excinfo:
        append(limited, upload.id, b"ef")
    assert excinfo.value.status == 413
    assert state.storage.stat(upload_path(upload.id)) == 4
    body = io.BytesIO(b"efgh")
    with pytest.raises(SizeInvalid):  # no Content-Length: caught while streaming
        uploads.append_chunk(
            limited.db.session(),
            limited.storage,
            limited.settings,
            ALICE,
            upload.id,
            body,
            content_length=None,
            content_range=None,
        )
    assert state.storage.stat(upload_path(upload.id)) == 4
    assert append(limited, upload.id, b"e").received == 5


def test_a_short_body_is_cut_off(state: RegistryState) -> None:
    upload = uploads.start_upload(state.db.session(), ALICE)
    with pytest.raises(BlobUploadInvalid):
        uploads.append_chunk(
            state.db.session(),
            state.storage,
            state.settings,
            ALICE,
            upload.id,
            io.BytesIO(b"abc"),
            content_length=10,
            content_range=None,
        )
    assert uploads.upload_status(state.db.session(), state.storage, ALICE, upload.id).received == 0
    assert state.storage.stat(upload_path(upload.id)) == 0


def test_a_failed_monolithic_upload_leaves_no_file(state: RegistryState) -> None:
    with pytest.raises(DigestInvalid):
        uploads.upload_blob(
            state.db.session(),
            state.storage,
            state.settings,
            ALICE,
            sha(b"other"),
            io.BytesIO(b"data"),
            content_length=4,
        )
    assert list(state.storage.list("")) == []


def test_a_monolithic_upload_of_known_content_links_it_again(state: RegistryState) -> None:
    for image in ("app", "copy"):
        who = dataclasses.replace(ALICE, image=image)
        info = uploads.upload_blob(
            state.db.session(),
            state.storage,
            state.settings,
            who,
            sha(b"data"),
            io.BytesIO(b"data"),
            content_length=None,
        )
        assert info == blobs.BlobInfo(sha(b"data"), 4)
    assert linked(state, sha(b"data"), "app")
    assert linked(state, sha(b"data"), "copy")
    assert list(state.storage.list("uploads")) == []
