"""One writer per session: claims, their renewal, loss, and the recovery of stale ones."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from forge_container.errors import BlobUploadInvalid, BlobUploadUnknown, SizeInvalid
from forge_container.models import BlobUpload, utcnow
from forge_container.registry import upload_claims, uploads
from forge_container.state import RegistryState
from forge_container.storage.paths import upload_path

ALICE = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")


def load(state: RegistryState, upload_id: str) -> upload_claims.Snapshot:
    return upload_claims.load(
        state.db.session(), state.storage, upload_id, owner_id="u:1", image="app", created_by="u:1"
    )


def session_with(state: RegistryState, data: bytes) -> str:
    """A session holding ``data``."""
    upload = uploads.start_upload(state.db.session(), ALICE)
    if data:
        uploads.append_chunk(
            state.db.session(),
            state.storage,
            state.settings,
            ALICE,
            upload.id,
            io.BytesIO(data),
            content_length=len(data),
            content_range=None,
        )
    return upload.id


def age(session: Session, upload_id: str, seconds: float) -> None:
    session.execute(
        update(BlobUpload)
        .where(BlobUpload.id == upload_id)
        .values(updated_at=utcnow() - timedelta(seconds=seconds))
    )
    session.commit()


def test_a_claimed_session_refuses_a_second_writer(state: RegistryState, session: Session) -> None:
    upload_id = session_with(state, b"abcd")
    held = upload_claims.claim(session, state.storage, load(state, upload_id))
    snapshot = load(state, upload_id)
    assert snapshot.busy
    assert snapshot.received == 4  # still readable while claimed
    with pytest.raises(upload_claims.UploadRangeInvalid) as excinfo:
        upload_claims.claim(session, state.storage, snapshot)
    assert excinfo.value.status == 416
    assert excinfo.value.received == 4
    assert held.end(4, None)
    assert not load(state, upload_id).busy


def test_a_claim_on_an_outdated_snapshot_is_refused(state: RegistryState, session: Session) -> None:
    upload_id = session_with(state, b"ab")
    outdated = load(state, upload_id)
    upload_claims.claim(session, state.storage, load(state, upload_id)).end(2, None)
    session.execute(update(BlobUpload).where(BlobUpload.id == upload_id).values(bytes_received=3))
    session.commit()
    with pytest.raises(upload_claims.UploadRangeInvalid):
        upload_claims.claim(session, state.storage, outdated)


def test_keepalive_renews_a_due_claim_and_notices_a_lost_one(
    state: RegistryState, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = session_with(state, b"ab")
    held = upload_claims.claim(session, state.storage, load(state, upload_id))
    before = load(state, upload_id).updated_at
    held.keepalive()
    assert load(state, upload_id).updated_at == before  # not due yet
    monkeypatch.setattr(upload_claims, "CLAIM_RENEWAL", timedelta(0))
    held.keepalive()
    assert load(state, upload_id).updated_at != before
    assert held.end(2, None)  # the renewed token still identifies the claim
    lost = upload_claims.claim(session, state.storage, load(state, upload_id))
    uploads.cancel_upload(session, state.storage, ALICE, upload_id)
    with pytest.raises(BlobUploadUnknown):
        lost.keepalive()
    assert not lost.end(2, None)


def test_a_stale_claim_with_intact_bytes_is_released(
    state: RegistryState, session: Session
) -> None:
    upload_id = session_with(state, b"abcd")
    upload_claims.claim(session, state.storage, load(state, upload_id))
    age(session, upload_id, upload_claims.CLAIM_TIMEOUT.total_seconds() - 10)
    assert load(state, upload_id).busy  # not stale yet
    age(session, upload_id, upload_claims.CLAIM_TIMEOUT.total_seconds() + 10)
    snapshot = load(state, upload_id)
    assert not snapshot.busy
    assert snapshot.received == 4
    assert snapshot.hash_state is not None  # the saved state survives for the next chunk


def test_a_stale_claim_with_extra_bytes_drops_the_session(
    state: RegistryState, session: Session
) -> None:
    upload_id = session_with(state, b"abcd")
    upload_claims.claim(session, state.storage, load(state, upload_id))
    state.storage.append(upload_path(upload_id), [b"half a chunk"])  # the writer died here
    age(session, upload_id, upload_claims.CLAIM_TIMEOUT.total_seconds() + 10)
    with pytest.raises(BlobUploadUnknown):
        load(state, upload_id)
    assert session.get(BlobUpload, upload_id) is None
    assert not state.storage.exists(upload_path(upload_id))


def test_a_session_whose_file_disagrees_is_dropped_at_the_next_claim(
    state: RegistryState, session: Session
) -> None:
    upload_id = session_with(state, b"abcd")
    state.storage.delete(upload_path(upload_id))
    with pytest.raises(BlobUploadUnknown):
        upload_claims.claim(session, state.storage, load(state, upload_id))
    assert session.get(BlobUpload, upload_id) is None


def feed(
    data: bytes,
    *,
    offset: int = 0,
    expected: int | None = None,
    limit: int = 0,
    at_end: Callable[[], None] | None = None,
) -> upload_claims.Feed:
    return upload_claims.Feed(
        io.BytesIO(data),
        offset=offset,
        expected=expected,
        limit=limit,
        hasher=None,
        claim=None,
        at_end=at_end,
    )


def test_the_feed_passes_the_body_through() -> None:
    assert b"".join(feed(b"abc" * 1000)) == b"abc" * 1000
    assert list(feed(b"")) == []


@pytest.mark.parametrize(
    ("data", "offset", "expected", "limit", "error"),
    [
        (b"abcdef", 0, None, 5, SizeInvalid),
        (b"abc", 3, None, 5, SizeInvalid),
        (b"abcdef", 0, 4, 0, SizeInvalid),
        (b"ab", 0, 4, 0, BlobUploadInvalid),
    ],
)
def test_the_feed_checks_sizes(
    data: bytes, offset: int, expected: int | None, limit: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        b"".join(feed(data, offset=offset, expected=expected, limit=limit))


def test_the_feed_runs_its_final_check_after_the_last_piece() -> None:
    seen: list[str] = []
    pieces = feed(b"abc", at_end=lambda: seen.append("end"))
    assert b"".join(pieces) == b"abc"
    assert seen == ["end"]
