"""Garbage collection: what goes, what stays, dry runs, batches, and the push side's locks."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.orm import Session

from forge_container import events
from forge_container.digest import digest_of, parse_digest
from forge_container.mediatypes import OCI_MANIFEST
from forge_container.models import (
    BlobLink,
    BlobUpload,
    Package,
    PackageBlob,
    PackageTag,
    PackageVersion,
    utcnow,
)
from forge_container.registry import blobs, gc, gc_manifests, manifests, mounts, uploads
from forge_container.registry import versions as versions_module
from forge_container.registry.gc import GcReport
from forge_container.registry.manifest_format import parse_manifest
from forge_container.state import get_state
from forge_container.storage.paths import blob_path
from forge_container_tests.helpers import upload_bytes
from forge_container_tests.manifest_fixtures import (
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
HOUR = timedelta(hours=1)
WHO = uploads.Uploader(owner_id=OWNER, owner_name="alice", image=IMAGE, principal_id="u:1")


# -- helpers ------------------------------------------------------------------------------------


def push(app: Flask, body: bytes, reference: str | None = None, *, image: str = IMAGE) -> str:
    """Push a manifest by tag, or by digest (untagged) when ``reference`` is None."""
    state = get_state(app)
    with app.app_context():
        return manifests.put_manifest(
            state.db.session(),
            state.storage,
            state.settings,
            owner_id=OWNER,
            owner_name="alice",
            image=image,
            reference=reference or str(digest_of(body)),
            body=io.BytesIO(body),
            content_type=json.loads(body).get("mediaType", OCI_MANIFEST),
            by="u:1",
        ).digest


def image(
    app: Flask,
    name: str,
    tag: str | None,
    *,
    layers: tuple[bytes, ...] = (),
    repo: str = IMAGE,
    **fields: Any,
) -> str:
    """An image manifest with its own config (``name`` makes it unique) and ``layers``."""
    config = image_config(app, OWNER, repo, author=name)
    layer_descriptors = [
        {**seed_blob(app, OWNER, repo, data), "mediaType": LAYER_GZIP} for data in layers
    ]
    return push(app, image_manifest(config, layer_descriptors, **fields), tag, image=repo)


def referrer(app: Flask, subject: str, tag: str | None = None, *, name: str = "sig") -> str:
    """An artifact (a signature, say) whose subject is ``subject``."""
    body = image_manifest(
        empty_config(app, OWNER, IMAGE),
        [{**seed_blob(app, OWNER, IMAGE, name.encode()), "mediaType": "text/plain"}],
        artifactType="application/vnd.example.signature",
        subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    )
    return push(app, body, tag)


def collect(
    app: Flask, *, later: timedelta = 2 * HOUR, dry_run: bool = False, **settings: Any
) -> GcReport:
    """Collect as if ``later`` had passed, with ``settings`` overriding the app's."""
    state = get_state(app)
    with app.app_context():
        return gc.collect_garbage(
            state.db.session(),
            state.storage,
            dataclasses.replace(state.settings, **settings),
            dry_run=dry_run,
            now=utcnow() + later,
        )


def versions(app: Flask, repo: str = IMAGE) -> set[str]:
    with app.app_context():
        session = get_state(app).db.session()
        return set(
            session.scalars(
                select(PackageVersion.digest)
                .join(Package, Package.id == PackageVersion.package_id)
                .where(Package.name == repo)
            )
        )


def stored(app: Flask, digest: str) -> bool:
    """Whether the blob has its row and its bytes."""
    state = get_state(app)
    with app.app_context():
        row = state.db.session().scalars(select(PackageBlob).where(PackageBlob.digest == digest))
        has_row = row.one_or_none() is not None
    return has_row and state.storage.exists(blob_path(parse_digest(digest)))


def linked(app: Flask, digest: str, repo: str = IMAGE) -> bool:
    with app.app_context():
        return blobs.find_linked(get_state(app).db.session(), OWNER, repo, digest) is not None


def pullable(app: Flask, reference: str, repo: str = IMAGE) -> bool:
    """The manifest and everything it references can be read, with the right digests."""
    state = get_state(app)
    with app.app_context():
        session = state.db.session()
        try:
            found = manifests.get_manifest(
                session, state.storage, owner_id=OWNER, image=repo, reference=reference
            )
        except Exception:
            return False
        assert found.data is not None
        body = json.loads(found.data)
        wanted = [d["digest"] for d in [body.get("config", {}), *body.get("layers", [])] if d]
        children = [d["digest"] for d in body.get("manifests", [])]
    for digest in wanted:
        if not linked(app, digest, repo) or not stored(app, digest):
            return False
        data = state.storage.read_bytes(blob_path(parse_digest(digest)))
        if str(digest_of(data)) != digest:
            return False
    return all(pullable(app, child, repo) for child in children)


def layer(n: int) -> bytes:
    return f"layer {n} ".encode() * 100


# -- untagged manifests -------------------------------------------------------------------------


def test_a_replaced_manifest_goes_after_the_untagged_age_with_the_blobs_only_it_used(
    app: Flask,
) -> None:
    old = image(app, "old", "latest", layers=(layer(1), layer(2)))
    new = image(app, "new", "latest", layers=(layer(2), layer(3)))
    old_config = json.loads(get_state(app).storage.read_bytes(blob_path(parse_digest(old))))

    report = collect(app, gc_untagged_age=3600)

    assert versions(app) == {new}
    assert [m.digest for m in report.manifests] == [old]
    assert (report.manifests[0].owner_id, report.manifests[0].image) == (OWNER, IMAGE)
    gone = [str(digest_of(layer(1))), old_config["config"]["digest"], old]
    assert not any(stored(app, digest) for digest in gone)
    assert (report.links, report.blobs) == (3, 3)
    assert stored(app, str(digest_of(layer(2)))) and pullable(app, "latest")


def test_each_manifest_removed_is_announced_and_a_dry_run_announces_none(app: Flask) -> None:
    old = image(app, "old", "latest", layers=(layer(1),))
    image(app, "new", "latest", layers=(layer(2),))
    announced: list[dict[str, Any]] = []

    def on_deleted(sender: str, **change: Any) -> None:
        announced.append(change)

    with events.manifest_deleted.connected_to(on_deleted):
        collect(app, gc_untagged_age=3600, dry_run=True)
        assert announced == []
        report = collect(app, gc_untagged_age=3600)

    assert announced == [
        {
            "owner_id": OWNER,
            "owner_name": report.manifests[0].owner_name,
            "image": IMAGE,
            "digest": old,
            "tags": (),
            "principal_id": None,
        }
    ]


def test_freed_bytes_are_the_sizes_of_the_blobs_removed(app: Flask) -> None:
    image(app, "old", "latest", layers=(layer(1),))
    sizes = _blob_sizes(app)
    image(app, "new", "latest", layers=(layer(2),))

    report = collect(app, gc_untagged_age=3600)

    remaining = _blob_sizes(app)
    assert report.bytes == sum(s for d, s in sizes.items() if d not in remaining) > 0


def test_untagged_manifests_stay_when_the_untagged_age_is_zero(app: Flask) -> None:
    old = image(app, "old", "latest", layers=(layer(1),))
    image(app, "new", "latest", layers=(layer(2),))

    report = collect(app, later=1000 * HOUR, gc_untagged_age=0)

    assert old in versions(app) and report.manifests == ()
    assert stored(app, str(digest_of(layer(1))))


def test_an_untagged_manifest_younger_than_the_age_stays(app: Flask) -> None:
    old = image(app, "old", "latest")
    image(app, "new", "latest")

    assert collect(app, later=HOUR / 2, gc_untagged_age=3600).manifests == ()
    assert old in versions(app)


def test_the_children_of_a_tagged_index_stay_and_go_with_it(app: Flask) -> None:
    amd = image(app, "amd", None, layers=(layer(1),))
    arm = image(app, "arm", None, layers=(layer(2),))
    children = [
        descriptor(_manifest_bytes(app, amd), OCI_MANIFEST, platform=platform("linux", "amd64")),
        descriptor(_manifest_bytes(app, arm), OCI_MANIFEST, platform=platform("linux", "arm64")),
    ]
    index = push(app, index_manifest(children), "v1")

    assert collect(app, gc_untagged_age=3600).manifests == ()
    assert versions(app) == {amd, arm, index} and pullable(app, "v1")

    with app.app_context():
        manifests.delete_manifest(
            get_state(app).db.session(), owner_id=OWNER, image=IMAGE, reference="v1"
        )
    report = collect(app, gc_untagged_age=3600)

    assert {m.digest for m in report.manifests} == {amd, arm, index}
    assert versions(app) == set()
    assert not stored(app, str(digest_of(layer(1)))) and not stored(app, str(digest_of(layer(2))))


def test_a_child_of_a_kept_index_stays_even_when_batches_split_them(app: Flask) -> None:
    children = []
    for n in range(4):
        digest = image(app, f"c{n}", None, layers=(layer(n),))
        children.append(descriptor(_manifest_bytes(app, digest), OCI_MANIFEST))
    index = push(app, index_manifest(children), None)  # untagged: all of it is garbage
    keep = image(app, "keep", "latest")

    report = collect(app, gc_untagged_age=3600, job_batch_size=1)

    assert len(report.manifests) == 5 and index in {m.digest for m in report.manifests}
    assert versions(app) == {keep}
    assert collect(app, gc_untagged_age=3600, job_batch_size=1).manifests == ()


def test_referrers_follow_their_subject(app: Flask) -> None:
    kept = image(app, "kept", "latest")
    kept_signature = referrer(app, kept, name="kept")
    dropped = image(app, "dropped", "v0")
    dropped_signature = referrer(app, dropped, name="dropped")
    with app.app_context():
        manifests.delete_manifest(
            get_state(app).db.session(), owner_id=OWNER, image=IMAGE, reference=dropped
        )

    report = collect(app)  # untagged manifests are kept (age 0); dangling referrers are not

    assert {m.digest for m in report.manifests} == {dropped_signature}
    assert versions(app) == {kept, kept_signature}


def test_the_referrers_of_a_collected_manifest_go_with_it(app: Flask) -> None:
    image(app, "new", "latest")
    old = image(app, "old", None)
    signature = referrer(app, old)

    report = collect(app, gc_untagged_age=3600)

    assert {m.digest for m in report.manifests} == {old, signature}


def test_a_referrer_pushed_before_its_subject_waits_for_the_grace(app: Flask) -> None:
    future_subject = "sha256:" + "5" * 64
    signature = referrer(app, future_subject)

    assert collect(app, later=HOUR / 2, gc_grace=3600).manifests == ()
    assert signature in versions(app)
    assert [m.digest for m in collect(app, later=2 * HOUR, gc_grace=3600).manifests] == [signature]


def test_a_tagged_referrer_stays_without_its_subject(app: Flask) -> None:
    signature = referrer(app, "sha256:" + "6" * 64, "sha256-6666.sig")

    assert collect(app, gc_untagged_age=3600).manifests == ()
    assert signature in versions(app)


# -- links, blobs, images -----------------------------------------------------------------------


def test_an_unused_upload_survives_the_grace_then_goes(app: Flask, session: Session) -> None:
    data = b"a layer whose manifest never came"
    state = get_state(app)
    upload_bytes(state, WHO, data)

    assert collect(app, later=HOUR / 2, gc_grace=3600) == GcReport(False, (), 0, 0, 0, 0)
    assert linked(app, str(digest_of(data))) and stored(app, str(digest_of(data)))

    report = collect(app, later=2 * HOUR, gc_grace=3600)

    assert (report.links, report.blobs, report.bytes, report.images) == (1, 1, len(data), 1)
    assert not stored(app, str(digest_of(data)))
    assert not state.storage.exists(blob_path(digest_of(data)))
    with app.app_context():
        assert state.db.session().scalar(select(Package.id)) is None


def test_a_blob_another_image_uses_keeps_its_bytes(app: Flask) -> None:
    shared = layer(7)
    seed_blob(app, OWNER, "unused", shared)
    image(app, "user", "latest", layers=(shared,))

    report = collect(app)

    assert (report.links, report.blobs, report.images) == (1, 0, 1)
    assert not linked(app, str(digest_of(shared)), "unused")
    assert stored(app, str(digest_of(shared))) and pullable(app, "latest")


def test_an_image_with_an_upload_in_progress_stays(app: Flask, session: Session) -> None:
    seed_blob(app, OWNER, IMAGE, b"unused")
    uploads.start_upload(session, WHO)

    report = collect(app)

    assert (report.links, report.images) == (1, 0)
    with app.app_context():
        assert get_state(app).db.session().scalar(select(Package.name)) == IMAGE


def test_a_blob_row_no_one_references_goes_after_the_grace(app: Flask, session: Session) -> None:
    seed_blob(app, OWNER, IMAGE, b"unlinked")
    with app.app_context():
        blobs.unlink_blob(get_state(app).db.session(), OWNER, IMAGE, str(digest_of(b"unlinked")))

    assert collect(app, later=HOUR / 2, gc_grace=3600).blobs == 0
    assert collect(app, later=2 * HOUR, gc_grace=3600).blobs == 1
    assert not stored(app, str(digest_of(b"unlinked")))


# -- dry runs and repeated runs -----------------------------------------------------------------


def _garbage_everywhere(app: Flask) -> None:
    image(app, "old", "latest", layers=(layer(1), layer(2)))
    image(app, "new", "latest", layers=(layer(2), layer(3)))
    amd = image(app, "amd", None, layers=(layer(4),))
    push(app, index_manifest([descriptor(_manifest_bytes(app, amd), OCI_MANIFEST)]), None)
    referrer(app, "sha256:" + "7" * 64)
    seed_blob(app, OWNER, "abandoned", layer(5))


def test_a_dry_run_changes_nothing_and_reports_what_a_run_removes(app: Flask) -> None:
    _garbage_everywhere(app)
    before = _snapshot(app)

    preview = collect(app, dry_run=True, gc_untagged_age=3600)

    assert _snapshot(app) == before
    report = collect(app, gc_untagged_age=3600)
    assert preview == dataclasses.replace(report, dry_run=True)
    assert (len(report.manifests), report.images) == (4, 1) and report.bytes > 0


def test_a_second_run_removes_nothing(app: Flask) -> None:
    _garbage_everywhere(app)
    assert collect(app, gc_untagged_age=3600).blobs > 0

    assert collect(app, gc_untagged_age=3600) == GcReport(False, (), 0, 0, 0, 0)
    assert pullable(app, "latest")


def test_small_batches_remove_what_one_big_batch_does(app: Flask) -> None:
    _garbage_everywhere(app)
    preview = collect(app, dry_run=True, gc_untagged_age=3600)

    report = collect(app, gc_untagged_age=3600, job_batch_size=1)

    assert set(report.manifests) == set(preview.manifests)
    assert dataclasses.replace(report, manifests=()) == dataclasses.replace(
        preview, dry_run=False, manifests=()
    )


# -- the push side: bytes collected under a push are put back -----------------------------------


def _drop_bytes(app: Flask, data: bytes) -> None:
    """What a collection leaves when it deletes bytes and dies before its commit."""
    assert get_state(app).storage.delete(blob_path(digest_of(data)))


def test_a_finished_upload_puts_back_bytes_collected_under_its_row(
    app: Flask, session: Session
) -> None:
    data = b"collected meanwhile"
    seed_blob(app, OWNER, "other", data)
    _drop_bytes(app, data)
    state = get_state(app)
    status = uploads.start_upload(session, WHO)

    uploads.finish_upload(
        session, state.storage, state.settings, WHO, status.id, str(digest_of(data)),
        io.BytesIO(data), content_length=len(data),
    )  # fmt: skip

    assert state.storage.read_bytes(blob_path(digest_of(data))) == data


def test_a_monolithic_upload_puts_back_collected_bytes(app: Flask, session: Session) -> None:
    data = b"collected too"
    seed_blob(app, OWNER, "other", data)
    _drop_bytes(app, data)
    state = get_state(app)

    upload_bytes(state, WHO, data)

    assert state.storage.read_bytes(blob_path(digest_of(data))) == data


def test_a_mount_of_collected_bytes_links_nothing(app: Flask, session: Session) -> None:
    data = b"gone"
    seed_blob(app, OWNER, "other", data)
    _drop_bytes(app, data)
    state = get_state(app)

    mounted = mounts.mount_blob(
        session, state.storage, state.settings, WHO, str(digest_of(data)),
        source=(OWNER, "other"), may_read=lambda candidate: True,
    )  # fmt: skip

    assert mounted is None and not linked(app, str(digest_of(data)))


@contextmanager
def collecting(app: Flask, database_url: str, data: bytes) -> Iterator[None]:
    """A collection in another connection that holds the unreferenced blob ``data``'s row
    while the body runs, then deletes its bytes and its row and commits: the race with a
    push, made deterministic (the push blocks on the row, or on SQLite's write lock)."""
    seed_blob(app, OWNER, "other", data)
    with app.app_context():
        blobs.unlink_blob(get_state(app).db.session(), OWNER, "other", str(digest_of(data)))
    engine = create_engine(database_url)
    try:
        with engine.connect() as collection:
            if collection.dialect.name == "sqlite":
                collection.exec_driver_sql("BEGIN IMMEDIATE")
            row = select(PackageBlob.id).where(PackageBlob.digest == str(digest_of(data)))
            blob_id = collection.execute(row.with_for_update()).scalar_one()
            yield
            time.sleep(0.5)  # the push has stored or found the bytes, and waits for the row
            assert get_state(app).storage.delete(blob_path(digest_of(data)))
            collection.execute(delete(PackageBlob).where(PackageBlob.id == blob_id))
            collection.commit()
    finally:
        engine.dispose()


def in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_an_upload_puts_back_bytes_collected_under_it(app: Flask, database_url: str) -> None:
    # A monolithic upload: it takes no lock before its last transaction, on SQLite either
    # (a session's PUT takes SQLite's write lock for its claim first). Both store alike.
    data = b"collected while the upload finishes"
    state = get_state(app)

    def upload() -> None:
        with app.app_context():
            upload_bytes(state, WHO, data)

    with collecting(app, database_url, data):
        pushing = in_thread(upload)
    pushing.join(timeout=30)

    assert state.storage.read_bytes(blob_path(digest_of(data))) == data
    assert stored(app, str(digest_of(data))) and linked(app, str(digest_of(data)))


def test_a_manifest_push_puts_back_bytes_collected_under_it(app: Flask, database_url: str) -> None:
    config = image_config(app, OWNER, IMAGE, author="raced")
    data = image_manifest(config, [])
    state = get_state(app)

    with collecting(app, database_url, data):
        pushing = in_thread(lambda: push(app, data, "latest"))
    pushing.join(timeout=30)

    assert state.storage.read_bytes(blob_path(digest_of(data))) == data
    assert pullable(app, "latest")


@pytest.mark.skipif(
    os.environ.get("FORGE_TEST_DATABASE", "sqlite") != "postgresql",
    reason="row locks are PostgreSQL's; SQLite serializes writers instead",
)
def test_collection_skips_rows_a_push_holds(app: Flask, database_url: str) -> None:
    data = b"held by a push"
    seed_blob(app, OWNER, IMAGE, data)
    with app.app_context():
        blobs.unlink_blob(get_state(app).db.session(), OWNER, IMAGE, str(digest_of(data)))
    engine = create_engine(database_url)
    try:
        with engine.connect() as push_side:
            push_side.execute(
                select(PackageBlob.id)
                .where(PackageBlob.digest == str(digest_of(data)))
                .with_for_update(key_share=True)
            )
            report = collect(app)
            assert (report.blobs, report.images) == (0, 1)
            assert stored(app, str(digest_of(data)))
            push_side.rollback()
    finally:
        engine.dispose()
    assert collect(app).blobs == 1


# -- small helpers ------------------------------------------------------------------------------


def _manifest_bytes(app: Flask, digest: str) -> bytes:
    return get_state(app).storage.read_bytes(blob_path(parse_digest(digest)))


def _blob_sizes(app: Flask) -> dict[str, int]:
    with app.app_context():
        session = get_state(app).db.session()
        return {d: s for d, s in session.execute(select(PackageBlob.digest, PackageBlob.size))}


def _snapshot(app: Flask) -> dict[str, Any]:
    with app.app_context():
        session = get_state(app).db.session()
        tables = {}
        for model in (Package, PackageVersion, PackageTag, PackageBlob, BlobLink, BlobUpload):
            tables[model.__tablename__] = sorted(
                tuple(row) for row in session.execute(text(f"SELECT * FROM {model.__tablename__}"))
            )
    files = sorted(get_state(app).storage.list(""))
    return {"tables": tables, "files": files}


# -- each batch checks again, under its locks, what it scanned before ---------------------------


def _scan_then(app: Flask, work: Any) -> Any:
    """Run one batch step of a collection (as after its scan), in the app context."""
    with app.app_context():
        return work(get_state(app).db.session())


def test_a_link_used_since_the_scan_stays(app: Flask) -> None:
    data = layer(1)
    seed_blob(app, OWNER, IMAGE, data)
    with app.app_context():
        link_id = get_state(app).db.session().scalars(select(BlobLink.id)).one()
    image(app, "user", "latest", layers=(data,))  # the manifest came after the scan

    assert _scan_then(app, lambda s: gc._delete_links(s, [link_id], utcnow() + HOUR)) == 0
    assert linked(app, str(digest_of(data)))


def test_a_blob_linked_since_the_scan_stays(app: Flask) -> None:
    data = b"relinked"
    seed_blob(app, OWNER, IMAGE, data)
    with app.app_context():
        blobs.unlink_blob(get_state(app).db.session(), OWNER, IMAGE, str(digest_of(data)))
        blob_id = get_state(app).db.session().scalars(select(PackageBlob.id)).one()
    seed_blob(app, OWNER, "other", data)  # mounted or uploaded again after the scan

    state = get_state(app)
    assert _scan_then(app, lambda s: gc._delete_blobs(s, state.storage, [blob_id])) == []
    assert stored(app, str(digest_of(data)))


def test_a_manifest_tagged_since_the_scan_stays(app: Flask) -> None:
    image(app, "new", "latest")
    old = image(app, "old", None)
    with app.app_context():
        session = get_state(app).db.session()
        row = session.execute(
            select(PackageVersion.id, PackageVersion.package_id).where(PackageVersion.digest == old)
        ).one()
    push(app, _manifest_bytes(app, old), "again")

    deleted = _scan_then(app, lambda s: gc_manifests._delete_batch(s, row.package_id, [row.id]))

    assert deleted == [] and old in versions(app)


def test_an_image_with_an_upload_started_since_the_scan_stays(app: Flask, session: Session) -> None:
    seed_blob(app, OWNER, IMAGE, b"x")
    with app.app_context():
        blobs.unlink_blob(get_state(app).db.session(), OWNER, IMAGE, str(digest_of(b"x")))
        package_id = get_state(app).db.session().scalars(select(Package.id)).one()
    uploads.start_upload(session, WHO)

    assert _scan_then(app, lambda s: gc._delete_images(s, [package_id])) == 0


@pytest.mark.skipif(
    os.environ.get("FORGE_TEST_DATABASE", "sqlite") != "postgresql",
    reason="row locks are PostgreSQL's; SQLite serializes writers instead",
)
def test_a_manifest_push_in_progress_holds_the_links_it_uses(app: Flask) -> None:
    config = image_config(app, OWNER, IMAGE, author="held")
    layers = [{**seed_blob(app, OWNER, IMAGE, layer(1)), "mediaType": LAYER_GZIP}]
    data = image_manifest(config, layers)
    pushed = versions_module.NewVersion(
        owner_id=OWNER, owner_name="alice", image=IMAGE, digest=digest_of(data), data=data,
        manifest=parse_manifest(data, OCI_MANIFEST), config={}, tags=["latest"], by=None,
    )  # fmt: skip
    get_state(app).storage.write_bytes(blob_path(digest_of(data)), data)
    with app.app_context():
        session = get_state(app).db.session()
        versions_module.write_version(session, pushed)  # its transaction stays open

        report = collect(app)  # the links are old and, as far as committed rows go, unused

        assert (report.links, report.blobs) == (0, 0)
        session.commit()
    assert pullable(app, "latest")
