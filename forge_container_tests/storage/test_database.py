"""The ``database`` driver beyond the contract: chunk rows, transactions, streams, and a
registry that pushes and pulls with it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import func, insert, select, text

from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_MANIFEST
from forge_container.models import Base, StorageChunk, StorageFile, utcnow
from forge_container.registry import gc
from forge_container.state import get_state
from forge_container.storage import CHUNK_SIZE, StorageError
from forge_container.storage.database import DatabaseDriver
from forge_container.storage.paths import blob_path, upload_path
from forge_container_tests.database_storage import STORAGE_TABLES
from forge_container_tests.helpers import basic
from forge_container_tests.manifest_fixtures import LAYER_GZIP, config_bytes, descriptor

BLOB = blob_path(digest_of(b"the blob"))
UPLOAD = upload_path("u-1")


@pytest.fixture
def driver(database_driver: DatabaseDriver) -> DatabaseDriver:
    """Only the ``database`` driver here (the contract suite's ``driver`` runs them all)."""
    return database_driver


def chunk_sizes(db: SQLAlchemy) -> list[int]:
    """The length of every chunk row, whichever file it belongs to."""
    with db.engine.connect() as connection:
        query = select(func.length(StorageChunk.data)).order_by(
            StorageChunk.file_id, StorageChunk.start
        )
        return [int(size) for size in connection.scalars(query)]


def seen_from_outside(db: SQLAlchemy, path: str) -> bool:
    """Whether another connection sees a committed file at ``path``."""
    with db.engine.connect() as connection:
        found = connection.scalar(select(StorageFile.id).where(StorageFile.path == path))
        return found is not None


def in_app_thread(app: Flask, work: Callable[[], object]) -> threading.Thread:
    """Run ``work`` in another thread, in an app context (and session) of its own."""

    def run() -> None:
        with app.app_context():
            work()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- chunk rows ---------------------------------------------------------------------------


def test_bytes_are_kept_in_rows_of_at_most_one_mib(
    driver: DatabaseDriver, storage_db: SQLAlchemy
) -> None:
    pieces = [b"a" * 700_000, b"b" * 700_000, b"c" * CHUNK_SIZE, b"d" * 10]
    data = b"".join(pieces)
    assert driver.append(UPLOAD, iter(pieces)) == len(data)
    # Small pieces are gathered into full rows; only the last one is short.
    assert chunk_sizes(storage_db) == [CHUNK_SIZE, CHUNK_SIZE, len(data) - 2 * CHUNK_SIZE]
    driver.write_bytes(BLOB, b"x" * (2 * CHUNK_SIZE + 1))
    assert max(chunk_sizes(storage_db)) == CHUNK_SIZE
    assert driver.read_bytes(UPLOAD) == data


def test_reading_keeps_memory_flat(driver: DatabaseDriver) -> None:
    count = 24
    driver.append(UPLOAD, (bytes([i]) * CHUNK_SIZE for i in range(count)))
    hasher = hashlib.sha256()
    tracemalloc.start()
    try:
        with driver.open_read(UPLOAD, 5) as stream:
            while piece := stream.read(CHUNK_SIZE):
                hasher.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256()
    expected.update(b"\0" * (CHUNK_SIZE - 5))
    for i in range(1, count):
        expected.update(bytes([i]) * CHUNK_SIZE)
    assert hasher.hexdigest() == expected.hexdigest()
    assert peak < 8 * CHUNK_SIZE, f"reading held {peak} bytes"


def test_leftovers_of_a_dead_append_are_ignored_then_removed(
    driver: DatabaseDriver, storage_db: SQLAlchemy
) -> None:
    driver.append(UPLOAD, [b"kept"])
    # A worker died after committing a chunk but before recording the new size.
    with storage_db.engine.begin() as connection:
        file_id = connection.scalar(select(StorageFile.id).where(StorageFile.path == UPLOAD))
        connection.execute(insert(StorageChunk).values(file_id=file_id, start=4, data=b"lost"))
    assert driver.stat(UPLOAD) == 4
    assert driver.read_bytes(UPLOAD) == b"kept"
    with driver.open_read(UPLOAD) as stream:
        assert stream.read() == b"kept"
    assert driver.append(UPLOAD, [b" going"]) == 10
    assert driver.read_bytes(UPLOAD) == b"kept going"
    assert chunk_sizes(storage_db) == [4, 6]


def test_a_failed_append_leaves_no_rows(driver: DatabaseDriver, storage_db: SQLAlchemy) -> None:
    driver.append(UPLOAD, [b"first"])

    def body() -> Iterator[bytes]:
        yield b"x" * (2 * CHUNK_SIZE)  # two rows committed before the body fails
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        driver.append(UPLOAD, body())
    assert chunk_sizes(storage_db) == [5]
    assert driver.read_bytes(UPLOAD) == b"first"


def test_a_file_deleted_during_an_append_stays_deleted(
    driver: DatabaseDriver, storage_db: SQLAlchemy
) -> None:
    def body() -> Iterator[bytes]:
        yield b"x" * CHUNK_SIZE
        yield b"y"
        assert driver.delete(UPLOAD)  # the upload is cancelled while its chunk streams
        yield b"z" * CHUNK_SIZE

    # Like a write into an unlinked file: the body is read to its end, and nothing kept.
    assert driver.append(UPLOAD, body()) == 2 * CHUNK_SIZE + 1
    assert not driver.exists(UPLOAD)
    assert chunk_sizes(storage_db) == []


# -- transactions -------------------------------------------------------------------------


def test_writes_commit_and_roll_back_with_the_sessions_transaction(
    driver: DatabaseDriver, storage_db: SQLAlchemy
) -> None:
    session = storage_db.session()
    session.execute(text("SELECT 1"))  # the request's transaction is open
    driver.write_bytes(BLOB, b"the blob")
    assert driver.exists(BLOB)
    assert not seen_from_outside(storage_db, BLOB)
    session.rollback()
    assert not driver.exists(BLOB)

    session.execute(text("SELECT 1"))
    driver.write_bytes(BLOB, b"the blob")
    session.commit()
    assert seen_from_outside(storage_db, BLOB)
    session.execute(text("SELECT 1"))
    assert driver.delete(BLOB)
    session.rollback()
    assert driver.read_bytes(BLOB) == b"the blob"


def test_a_commit_inside_a_transaction_that_holds_the_write_lock(
    driver: DatabaseDriver, storage_db: SQLAlchemy
) -> None:
    # The trap of SQLite: the service's transaction holds the database's write lock when
    # it moves the upload into place; a driver writing on a connection of its own waits
    # for that lock forever. Joining the transaction, it neither waits nor commits early.
    driver.append(UPLOAD, [b"the blob"])
    session = storage_db.session()
    # A row of the service's own, written in its session: SQLite's write lock is taken.
    session.execute(insert(StorageFile).values(path="rows/of/the/service", size=0))
    driver.commit(UPLOAD, BLOB)
    session.rollback()
    assert (driver.exists(UPLOAD), driver.exists(BLOB)) == (True, False)

    session.execute(insert(StorageFile).values(path="rows/of/the/service", size=0))
    driver.commit(UPLOAD, BLOB)
    session.commit()
    assert (driver.exists(UPLOAD), driver.read_bytes(BLOB)) == (False, b"the blob")


def test_concurrent_commits_of_one_blob_keep_one_copy(
    driver: DatabaseDriver, storage_app: Flask, storage_db: SQLAlchemy
) -> None:
    driver.append(upload_path("first"), [b"the blob"])
    driver.append(upload_path("second"), [b"the blob"])
    renamed = threading.Event()
    errors: list[BaseException] = []

    def commit(upload: str, *, wait_for: threading.Event | None) -> Callable[[], None]:
        def work() -> None:
            try:
                if wait_for is not None:
                    assert wait_for.wait(timeout=30)
                session = storage_db.session()
                session.execute(text("SELECT 1"))
                driver.commit(upload_path(upload), BLOB)
                renamed.set()
                # The other commit now finds the path free (this one is not committed) and
                # waits on it (PostgreSQL) or on the write lock (SQLite).
                time.sleep(0.3)
                session.commit()
            except BaseException as exc:
                errors.append(exc)
                raise

        return work

    first = in_app_thread(storage_app, commit("first", wait_for=None))
    second = in_app_thread(storage_app, commit("second", wait_for=renamed))
    for thread in (first, second):
        thread.join(timeout=60)
    assert errors == []
    assert driver.read_bytes(BLOB) == b"the blob"
    assert list(driver.list("uploads")) == []
    assert chunk_sizes(storage_db) == [len(b"the blob")]


def test_a_stream_outlives_its_app_context_and_holds_no_connection(
    driver: DatabaseDriver, storage_app: Flask, storage_db: SQLAlchemy
) -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256)
    driver.write_bytes(BLOB, data)
    with storage_app.app_context():
        stream = driver.open_read(BLOB, 7)
        storage_db.session.remove()
    pool: Any = storage_db.engine.pool
    with stream:
        first = stream.read(CHUNK_SIZE)
        assert pool.checkedout() == 0
        rest = stream.read()
    assert first + rest == data[7:]


def test_outside_an_app_context_it_needs_to_have_been_used_in_one(
    storage_db: SQLAlchemy,
) -> None:
    driver = DatabaseDriver(storage_db)
    outcome: list[object] = []

    def elsewhere() -> None:
        try:
            outcome.append(driver.exists(BLOB))
        except StorageError as exc:
            outcome.append(exc)

    for _ in range(2):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(timeout=30)
        driver.write_bytes(BLOB, b"the blob")
    assert isinstance(outcome[0], StorageError)
    assert "app context" in str(outcome[0])
    assert outcome[1] is True


def test_check_names_the_missing_tables(driver: DatabaseDriver, storage_db: SQLAlchemy) -> None:
    driver.check()
    Base.metadata.drop_all(storage_db.engine, tables=STORAGE_TABLES)
    with pytest.raises(StorageError, match="flask container migrate"):
        driver.check()


# -- a registry on the database driver ----------------------------------------------------

ALICE = basic("alice", "pw-alice")
NAME = "alice/app"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"CONTAINER_REGISTRY_STORAGE_BACKEND": "database"}


def upload(client: FlaskClient, pieces: list[bytes]) -> str:
    """A chunked upload of ``pieces``; the blob's digest."""
    data = b"".join(pieces)
    opened = client.post(f"/v2/{NAME}/blobs/uploads/", headers=ALICE)
    assert opened.status_code == 202, opened.data
    location, start = opened.headers["Location"], 0
    for piece in pieces:
        span = {"Content-Range": f"{start}-{start + len(piece) - 1}"}
        patched = client.patch(location, data=piece, headers={**ALICE, **span})
        assert patched.status_code == 202, patched.data
        location, start = patched.headers["Location"], start + len(piece)
    digest = str(digest_of(data))
    done = client.put(f"{location}?digest={digest}", headers=ALICE)
    assert done.status_code == 201, done.data
    return digest


def test_push_and_pull_an_image(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    layer = bytes(range(256)) * (CHUNK_SIZE // 256 * 2) + b"tail"
    config = config_bytes()
    layer_digest = upload(client, [layer[: CHUNK_SIZE + 3], layer[CHUNK_SIZE + 3 :]])
    monolithic = client.post(
        f"/v2/{NAME}/blobs/uploads/?digest={digest_of(config)}", data=config, headers=ALICE
    )
    assert monolithic.status_code == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config, OCI_CONFIG),
            "layers": [descriptor(layer, LAYER_GZIP)],
        }
    ).encode()
    pushed = client.put(
        f"/v2/{NAME}/manifests/v1",
        data=manifest,
        headers={**ALICE, "Content-Type": OCI_MANIFEST},
    )
    assert pushed.status_code == 201, pushed.data

    pulled = client.get(f"/v2/{NAME}/manifests/v1", headers=ALICE)
    assert (pulled.status_code, pulled.data) == (200, manifest)
    # Not buffered: the body streams after the request, its session and its app context.
    blob = client.get(f"/v2/{NAME}/blobs/{layer_digest}", headers=ALICE)
    assert blob.status_code == 200
    assert blob.headers["Content-Length"] == str(len(layer))
    assert blob.data == layer
    tail = client.get(
        f"/v2/{NAME}/blobs/{layer_digest}",
        headers={**ALICE, "Range": f"bytes={CHUNK_SIZE - 2}-"},
    )
    assert (tail.status_code, tail.data) == (206, layer[CHUNK_SIZE - 2 :])
    storage = get_state(app).storage
    with app.app_context():
        assert sorted(storage.list("blobs")) == sorted(
            blob_path(digest_of(data)) for data in (layer, config, manifest)
        )
        assert list(storage.list("uploads")) == []


def test_collected_images_leave_no_rows(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    digest = upload(client, [b"never used " * 1000])
    cancelled = client.post(f"/v2/{NAME}/blobs/uploads/", headers=ALICE)
    client.patch(cancelled.headers["Location"], data=b"abandoned", headers=ALICE)
    assert client.delete(cancelled.headers["Location"], headers=ALICE).status_code == 204
    state = get_state(app)
    with app.app_context():
        settings = dataclasses.replace(state.settings, gc_grace=60)
        later = utcnow() + timedelta(hours=1)
        report = gc.collect_garbage(state.db.session(), state.storage, settings, now=later)
        assert (report.blobs, report.bytes) == (1, len(b"never used " * 1000))
        with state.db.engine.connect() as connection:
            files = connection.scalar(select(func.count()).select_from(StorageFile))
            chunks = connection.scalar(select(func.count()).select_from(StorageChunk))
    assert (files, chunks) == (0, 0)
    assert client.head(f"/v2/{NAME}/blobs/{digest}", headers=ALICE).status_code == 404
