"""Expiring abandoned uploads: idle sessions, claimed sessions of dead writers, orphan files."""

from __future__ import annotations

import dataclasses
import io
import os
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from forge_container.errors import BlobUploadUnknown
from forge_container.models import BlobUpload, utcnow
from forge_container.registry import expiry, uploads
from forge_container.registry.expiry import ExpiryReport
from forge_container.state import get_state
from forge_container.storage.paths import upload_path

WHO = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")
DAY = timedelta(days=1)


def expire(app: Flask, *, later: timedelta = 2 * DAY, dry_run: bool = False) -> ExpiryReport:
    state = get_state(app)
    with app.app_context():
        return expiry.expire_uploads(
            state.db.session(), state.storage, state.settings, dry_run=dry_run,
            now=utcnow() + later,
        )  # fmt: skip


def session_with(app: Flask, session: Session, data: bytes) -> str:
    """An upload session holding ``data``."""
    state = get_state(app)
    status = uploads.start_upload(session, WHO)
    uploads.append_chunk(
        session, state.storage, state.settings, WHO, status.id, io.BytesIO(data),
        content_length=len(data), content_range=None,
    )  # fmt: skip
    return status.id


def sessions(session: Session) -> set[str]:
    session.rollback()
    return set(session.scalars(select(BlobUpload.id)))


def orphan(app: Flask, data: bytes, *, age: float) -> str:
    """A file under ``uploads/`` with no session, last written ``age`` seconds ago."""
    storage = get_state(app).storage
    path = upload_path(str(uuid.uuid4()))
    storage.append(path, [data])
    local = storage.local_path(path)
    assert local is not None
    moment = time.time() - age
    os.utime(local, (moment, moment))
    return path


def test_an_idle_session_expires_with_its_bytes(app: Flask, session: Session) -> None:
    upload_id = session_with(app, session, b"abandoned")

    assert expire(app, later=DAY / 2) == ExpiryReport(False, 0, 0, 0)
    assert sessions(session) == {upload_id}

    assert expire(app, later=2 * DAY) == ExpiryReport(False, 1, 0, len(b"abandoned"))
    assert sessions(session) == set()
    assert not get_state(app).storage.exists(upload_path(upload_id))


def test_an_expired_session_is_gone_for_its_client(app: Flask, session: Session) -> None:
    upload_id = session_with(app, session, b"late")
    expire(app)

    with pytest.raises(BlobUploadUnknown):
        uploads.upload_status(session, get_state(app).storage, WHO, upload_id)


def test_a_claimed_session_whose_writer_died_expires_by_its_last_update(
    app: Flask, session: Session
) -> None:
    upload_id = session_with(app, session, b"half")
    session.execute(
        update(BlobUpload)
        .where(BlobUpload.id == upload_id)
        .values(bytes_received=-1 - 4, updated_at=utcnow() - 3 * DAY)
    )
    session.commit()

    assert expire(app, later=timedelta(0)).sessions == 1
    assert sessions(session) == set()


def test_a_session_written_to_recently_stays(app: Flask, session: Session) -> None:
    old = session_with(app, session, b"old")
    session.execute(
        update(BlobUpload).where(BlobUpload.id == old).values(updated_at=utcnow() - 3 * DAY)
    )
    session.commit()
    fresh = session_with(app, session, b"fresh")

    assert expire(app, later=timedelta(0)).sessions == 1
    assert sessions(session) == {fresh}


def test_orphan_files_go_once_nothing_wrote_to_them_for_the_expiry(app: Flask) -> None:
    expiry_seconds = get_state(app).settings.upload_expiry
    stale = orphan(app, b"stale", age=expiry_seconds + 60)
    streaming = orphan(app, b"a monolithic upload still streaming", age=1)

    report = expire(app, later=timedelta(0))

    assert report == ExpiryReport(False, 0, 1, len(b"stale"))
    storage = get_state(app).storage
    assert not storage.exists(stale) and storage.exists(streaming)


def test_a_session_file_is_never_an_orphan(app: Flask, session: Session) -> None:
    upload_id = session_with(app, session, b"mine")
    local = get_state(app).storage.local_path(upload_path(upload_id))
    assert local is not None
    os.utime(local, (0, 0))

    assert expire(app, later=timedelta(0)) == ExpiryReport(False, 0, 0, 0)
    assert get_state(app).storage.exists(upload_path(upload_id))


def test_files_that_are_not_uploads_are_left_alone(app: Flask) -> None:
    storage = get_state(app).storage
    storage.write_bytes("uploads/not-an-upload", b"x")
    local = storage.local_path("uploads/not-an-upload")
    assert local is not None
    os.utime(local, (0, 0))

    expire(app)

    assert storage.exists("uploads/not-an-upload")


def test_a_dry_run_changes_nothing_and_reports_what_a_run_removes(
    app: Flask, session: Session
) -> None:
    upload_id = session_with(app, session, b"abandoned")
    stale = orphan(app, b"stale", age=10 * DAY.total_seconds())

    preview = expire(app, dry_run=True)

    assert sessions(session) == {upload_id} and get_state(app).storage.exists(stale)
    assert (
        dataclasses.replace(expire(app), dry_run=True)
        == preview
        == ExpiryReport(True, 1, 1, len(b"abandoned") + len(b"stale"))
    )


def test_a_second_run_removes_nothing(app: Flask, session: Session) -> None:
    for n in range(3):
        session_with(app, session, b"x" * n)
    orphan(app, b"stale", age=10 * DAY.total_seconds())
    settings: dict[str, Any] = {"job_batch_size": 1}
    state = get_state(app)
    with app.app_context():
        first = expiry.expire_uploads(
            state.db.session(), state.storage, dataclasses.replace(state.settings, **settings),
            now=utcnow() + 2 * DAY,
        )  # fmt: skip

    assert (first.sessions, first.orphans) == (3, 1)
    assert expire(app) == ExpiryReport(False, 0, 0, 0)
