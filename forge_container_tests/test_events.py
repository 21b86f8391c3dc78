"""Event signals: sent once per change, after its commit, with ids and names; never on failure."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from forge_container import events
from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_MANIFEST
from forge_container.models import BlobLink, PackageBlob, PackageTag, PackageVersion
from forge_container.registry import quota
from forge_container.state import get_state
from forge_container_tests.helpers import basic
from forge_container_tests.manifest_fixtures import (
    LAYER_GZIP,
    config_bytes,
    descriptor,
    image_manifest,
)

ALICE = basic("alice", "pw-alice")
CONFIG = config_bytes()
LAYER = b"a layer " * 64
MANIFEST = image_manifest(descriptor(CONFIG, OCI_CONFIG), [descriptor(LAYER, LAYER_GZIP)])
MANIFEST_DIGEST = str(digest_of(MANIFEST))
SIGNALS = {
    "image_pushed": events.image_pushed,
    "tag_deleted": events.tag_deleted,
    "manifest_deleted": events.manifest_deleted,
    "blob_uploaded": events.blob_uploaded,
}


class Received:
    """Every signal sent while connected, as ``(name, details)``; and whether the change
    was visible to another database connection when it arrived (it had been committed)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.committed: list[bool] = []

    def receiver(self, name: str) -> Any:
        def receive(sender: str, **details: Any) -> None:
            assert sender == "forge_container"
            self.sent.append((name, details))
            self.committed.append(self._visible(name, details))

        return receive

    def _visible(self, name: str, details: dict[str, Any]) -> bool:
        """Look for the change through a fresh connection of its own."""
        query: Any
        if name == "blob_uploaded":
            query = (
                select(BlobLink.id).join(PackageBlob).where(PackageBlob.digest == details["digest"])
            )
        elif name == "image_pushed":
            query = select(PackageVersion.id).where(PackageVersion.digest == details["digest"])
        elif name == "tag_deleted":
            return not self._exists(select(PackageTag.id).where(PackageTag.name == details["tag"]))
        else:
            query = select(PackageVersion.id).where(PackageVersion.digest == details["digest"])
            return not self._exists(query)
        return self._exists(query)

    def _exists(self, query: Any) -> bool:
        with self.app.app_context():
            engine = get_state(self.app).db.engine
            with engine.connect() as connection:
                return connection.execute(query).first() is not None

    def clear(self) -> None:
        self.sent.clear()
        self.committed.clear()


@pytest.fixture
def received(app: Flask) -> Iterator[Received]:
    log = Received(app)
    with ExitStack() as stack:
        for name, signal in SIGNALS.items():
            stack.enter_context(signal.connected_to(log.receiver(name)))
        yield log


@pytest.fixture
def ids(forge: Any) -> dict[str, str]:
    """alice's principal and owner ids."""
    principal = forge.user("alice")
    return {"principal": principal.id, "owner": forge.owner("alice").id}


def upload(client: FlaskClient, data: bytes, image: str = "alice/app") -> TestResponse:
    return client.post(
        f"/v2/{image}/blobs/uploads/?digest={digest_of(data)}", data=data, headers=ALICE
    )


def put_manifest(client: FlaskClient, reference: str, query: str = "") -> TestResponse:
    return client.put(
        f"/v2/alice/app/manifests/{reference}{query}",
        data=MANIFEST,
        headers={**ALICE, "Content-Type": OCI_MANIFEST},
    )


def pushed(client: FlaskClient, received: Received, *tags: str) -> None:
    """The image in ``alice/app`` with ``tags``; the log starts empty afterwards."""
    assert upload(client, CONFIG).status_code == 201
    assert upload(client, LAYER).status_code == 201
    for tag in tags:
        assert put_manifest(client, tag).status_code == 201
    received.clear()


def blob_event(ids: dict[str, str], data: bytes, *, mounted: bool = False) -> dict[str, Any]:
    return {
        "owner_id": ids["owner"],
        "owner_name": "alice",
        "image": "app",
        "digest": str(digest_of(data)),
        "size": len(data),
        "mounted": mounted,
        "principal_id": ids["principal"],
    }


def test_a_monolithic_upload_sends_blob_uploaded(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    assert upload(client, LAYER).status_code == 201
    assert received.sent == [("blob_uploaded", blob_event(ids, LAYER))]
    assert received.committed == [True]


def test_a_chunked_upload_sends_blob_uploaded_once_when_it_finishes(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    location = client.post("/v2/alice/app/blobs/uploads/", headers=ALICE).headers["Location"]
    client.patch(location, data=LAYER[:100], headers={**ALICE, "Content-Range": "0-99"})
    assert received.sent == []
    response = client.put(f"{location}?digest={digest_of(LAYER)}", data=LAYER[100:], headers=ALICE)
    assert response.status_code == 201
    assert received.sent == [("blob_uploaded", blob_event(ids, LAYER))]
    assert received.committed == [True]


def test_a_mount_sends_blob_uploaded_as_mounted(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    upload(client, LAYER, "alice/source")
    received.clear()
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?mount={digest_of(LAYER)}&from=alice/source",
        headers=ALICE,
    )
    assert response.status_code == 201
    assert received.sent == [("blob_uploaded", blob_event(ids, LAYER, mounted=True))]


def test_a_manifest_push_sends_image_pushed_with_its_tags(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    pushed(client, received)
    assert put_manifest(client, "latest").status_code == 201
    assert put_manifest(client, MANIFEST_DIGEST, "?tag=b&tag=a").status_code == 201
    event = {
        "owner_id": ids["owner"],
        "owner_name": "alice",
        "image": "app",
        "digest": MANIFEST_DIGEST,
        "media_type": OCI_MANIFEST,
        "principal_id": ids["principal"],
    }
    assert received.sent == [
        ("image_pushed", {**event, "tags": ("latest",)}),
        ("image_pushed", {**event, "tags": ("a", "b")}),
    ]
    assert received.committed == [True, True]


def test_deleting_a_tag_sends_tag_deleted(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    pushed(client, received, "v1", "latest")
    assert client.delete("/v2/alice/app/manifests/v1", headers=ALICE).status_code == 202
    assert received.sent == [
        (
            "tag_deleted",
            {
                "owner_id": ids["owner"],
                "owner_name": "alice",
                "image": "app",
                "tag": "v1",
                "digest": MANIFEST_DIGEST,
                "principal_id": ids["principal"],
            },
        )
    ]
    assert received.committed == [True]


def test_deleting_a_manifest_sends_manifest_deleted_with_the_tags_it_had(
    client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    pushed(client, received, "v1", "latest")
    response = client.delete(f"/v2/alice/app/manifests/{MANIFEST_DIGEST}", headers=ALICE)
    assert response.status_code == 202
    assert received.sent == [
        (
            "manifest_deleted",
            {
                "owner_id": ids["owner"],
                "owner_name": "alice",
                "image": "app",
                "digest": MANIFEST_DIGEST,
                "tags": ("latest", "v1"),
                "principal_id": ids["principal"],
            },
        )
    ]
    assert received.committed == [True]


def test_nothing_is_sent_for_a_change_that_failed(
    app: Flask, forge: Any, client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    wrong = f"/v2/alice/app/blobs/uploads/?digest={digest_of(b'other')}"
    assert client.post(wrong, data=LAYER, headers=ALICE).status_code == 400
    location = client.post("/v2/alice/app/blobs/uploads/", headers=ALICE).headers["Location"]
    finish = client.put(f"{location}?digest={digest_of(b'other')}", data=LAYER, headers=ALICE)
    assert finish.status_code == 400
    assert put_manifest(client, "latest").status_code == 404  # its blobs were never pushed
    assert client.delete("/v2/alice/app/manifests/nope", headers=ALICE).status_code == 404
    unknown = f"/v2/alice/app/manifests/{digest_of(b'unknown')}"
    assert client.delete(unknown, headers=ALICE).status_code == 404
    with app.app_context():
        quota.set_override(get_state(app).db.session(), ids["owner"], {quota.Quota.BLOB_SIZE: 1})
    assert upload(client, LAYER).status_code == 403
    assert received.sent == []
    forge.user("bob")
    bob = basic("bob", "pw-bob")
    source = f"/v2/bob/src/blobs/uploads/?digest={digest_of(LAYER)}"
    assert client.post(source, data=LAYER, headers=bob).status_code == 201
    received.clear()
    mount = f"/v2/alice/app/blobs/uploads/?mount={digest_of(LAYER)}&from=bob/src"
    assert client.post(mount, headers=ALICE).status_code == 403
    assert received.sent == []


def test_a_refused_manifest_push_sends_nothing(
    app: Flask, client: FlaskClient, received: Received, ids: dict[str, str]
) -> None:
    pushed(client, received, "v1")
    with app.app_context():
        quota.set_override(get_state(app).db.session(), ids["owner"], {quota.Quota.VERSIONS: 1})
    other = image_manifest(descriptor(CONFIG, OCI_CONFIG), [])
    response = client.put(
        "/v2/alice/app/manifests/v2", data=other, headers={**ALICE, "Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 403
    assert received.sent == []


def test_a_failing_receiver_is_logged_and_the_push_still_succeeds(
    client: FlaskClient,
    received: Received,
    ids: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(sender: str, **details: Any) -> None:
        raise RuntimeError("webhook down")

    with events.blob_uploaded.connected_to(broken), caplog.at_level(logging.ERROR):
        assert upload(client, LAYER).status_code == 201
    assert received.sent == [("blob_uploaded", blob_event(ids, LAYER))]
    assert "a receiver of the 'blob-uploaded' signal failed" in caplog.text
    assert "webhook down" in caplog.text
