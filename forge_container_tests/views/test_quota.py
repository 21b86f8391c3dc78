"""Quotas over HTTP: users and organisations, site admins, uploads, mounts and manifests.

Each case stores what it needs first, then sets the owner's limit one short of what the
operation adds: the push is refused with 403 DENIED, a message naming the quota, the limit
and the usage, and not one row or file changes. At exactly the limit it succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_MANIFEST
from forge_container.models import (
    BlobLink,
    BlobUpload,
    Package,
    PackageBlob,
    PackageFile,
    PackageTag,
    PackageVersion,
)
from forge_container.registry import quota
from forge_container.registry.quota import Quota
from forge_container.sizes import human_size
from forge_container.state import get_state
from forge_container_tests.helpers import basic, error_codes
from forge_container_tests.manifest_fixtures import (
    LAYER_GZIP,
    config_bytes,
    descriptor,
    image_manifest,
    seed_blob,
)

ALICE = basic("alice", "pw-alice")
ROOT = basic("root", "pw-root")
CONFIG = config_bytes()
LAYER = b"layer " * 20
NEW_BLOB = b"n" * 100
SHARED = b"s" * 50
FIRST = image_manifest(descriptor(CONFIG, OCI_CONFIG), [descriptor(LAYER, LAYER_GZIP)])
SECOND = image_manifest(
    descriptor(CONFIG, OCI_CONFIG),
    [descriptor(LAYER, LAYER_GZIP)],
    annotations={"org.opencontainers.image.version": "2"},
)
TABLES = (Package, PackageBlob, BlobLink, PackageVersion, PackageFile, PackageTag, BlobUpload)


@dataclass(frozen=True)
class Case:
    """One operation under one quota: what it adds and how it is sent."""

    operation: str
    quota: Quota

    @property
    def id(self) -> str:
        return f"{self.operation}-{self.quota.value}"


CASES = [
    Case(operation, kind)
    for operation in ("monolithic", "chunked", "mount", "manifest")
    for kind in (Quota.TOTAL_SIZE, Quota.BLOB_SIZE)
] + [Case("manifest", Quota.VERSIONS)]


@pytest.fixture
def world(app: Flask, forge: Any, client: FlaskClient) -> None:
    """alice, root (site admin), bob (whose public image holds SHARED), org acme of alice's."""
    forge.user("alice")
    forge.user("root", admin=True)
    forge.user("bob")
    forge.org("acme", "alice")
    seed_blob(app, forge.owner("bob").id, "src", SHARED)


def prepare(app: Flask, forge: Any, client: FlaskClient, owner: str) -> None:
    """``owner/app`` holds a config, a layer and the manifest FIRST (tag v1)."""
    owner_id = forge.owner(owner).id
    seed_blob(app, owner_id, "app", CONFIG)
    seed_blob(app, owner_id, "app", LAYER)
    response = put_manifest(client, owner, FIRST, "v1", ALICE)
    assert response.status_code == 201, response.data


def put_manifest(
    client: FlaskClient, owner: str, body: bytes, reference: str, headers: dict[str, str]
) -> TestResponse:
    return client.put(
        f"/v2/{owner}/app/manifests/{reference}",
        data=body,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )


def run(client: FlaskClient, operation: str, owner: str, headers: dict[str, str]) -> TestResponse:
    """Send ``operation`` to ``owner/app``."""
    base = f"/v2/{owner}/app/blobs/uploads/"
    if operation == "monolithic":
        return client.post(f"{base}?digest={digest_of(NEW_BLOB)}", data=NEW_BLOB, headers=headers)
    if operation == "chunked":
        opened = client.post(base, headers=headers)
        assert opened.status_code == 202
        location = opened.headers["Location"]
        half = len(NEW_BLOB) // 2
        patched = client.patch(
            location,
            data=NEW_BLOB[:half],
            headers={**headers, "Content-Range": f"0-{half - 1}"},
        )
        assert patched.status_code == 202
        return client.put(
            f"{location}?digest={digest_of(NEW_BLOB)}",
            data=NEW_BLOB[half:],
            headers={**headers, "Content-Range": f"{half}-{len(NEW_BLOB) - 1}"},
        )
    if operation == "mount":
        return client.post(f"{base}?mount={digest_of(SHARED)}&from=bob/src", headers=headers)
    return put_manifest(client, owner, SECOND, "v2", headers)


def added(case: Case) -> int:
    """What the operation adds to the quota's usage (for blob size: the blob's size)."""
    if case.quota is Quota.VERSIONS:
        return 1
    return {"monolithic": len(NEW_BLOB), "chunked": len(NEW_BLOB), "mount": len(SHARED)}.get(
        case.operation, len(SECOND)
    )


def limit_one_short(app: Flask, owner_id: str, case: Case) -> tuple[int, int]:
    """``(limit, usage)``: the operation would take the owner one past the limit."""
    with app.app_context():
        usage = quota.usage_of(get_state(app).db.session(), owner_id)
    used = {Quota.TOTAL_SIZE: usage.total_size, Quota.VERSIONS: usage.versions}.get(case.quota, 0)
    return used + added(case) - 1, used


def set_limit(app: Flask, owner_id: str, kind: Quota, limit: int) -> None:
    with app.app_context():
        quota.set_override(get_state(app).db.session(), owner_id, {kind: limit})


def snapshot(app: Flask) -> tuple[dict[str, int], list[str]]:
    """Rows per table and every stored file."""
    state = get_state(app)
    with app.app_context():
        session = state.db.session()
        rows = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in TABLES
        }
    return rows, sorted(state.storage.list(""))


def expected_message(owner: str, case: Case, limit: int, used: int) -> str:
    requested = used + added(case)
    if case.quota is Quota.BLOB_SIZE:
        what = f"a blob of {added(case)} B exceeds the limit of {limit} B per blob"
    elif case.quota is Quota.VERSIONS:
        what = f"{requested} versions would exceed the limit of {limit} versions ({used} in use)"
    else:
        what = (
            f"total size {human_size(requested)} would exceed the limit of"
            f" {human_size(limit)} ({human_size(used)} in use)"
        )
    return f"quota exceeded for owner {owner}: {what}"


def assert_refused(response: TestResponse, message: str) -> None:
    assert response.status_code == 403, response.data
    assert error_codes(response) == ["DENIED"]
    assert response.get_json()["errors"][0]["message"] == message


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("owner", ["alice", "acme"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_push_over_a_quota_is_refused_and_stores_nothing(
    app: Flask, forge: Any, client: FlaskClient, owner: str, case: Case
) -> None:
    prepare(app, forge, client, owner)
    owner_id = forge.owner(owner).id
    limit, used = limit_one_short(app, owner_id, case)
    set_limit(app, owner_id, case.quota, limit)
    before = snapshot(app)
    response = run(client, case.operation, owner, ALICE)
    assert_refused(response, expected_message(owner, case, limit, used))
    detail = response.get_json()["errors"][0]["detail"]
    assert detail == {
        "owner": owner,
        "quota": case.quota.value,
        "limit": limit,
        "usage": added(case) if case.quota is Quota.BLOB_SIZE else used,
        "requested": added(case) if case.quota is Quota.BLOB_SIZE else used + added(case),
    }
    assert snapshot(app) == before
    set_limit(app, owner_id, case.quota, limit + 1)  # exactly what the push needs
    assert run(client, case.operation, owner, ALICE).status_code == 201


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    "app_config",
    [
        {"CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS": True},
        {"CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS": False},
    ],
    ids=["exempt", "not-exempt"],
)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_site_admins_are_exempt_when_configured(
    app: Flask, forge: Any, client: FlaskClient, app_config: dict[str, Any], case: Case
) -> None:
    prepare(app, forge, client, "alice")
    owner_id = forge.owner("alice").id
    limit, used = limit_one_short(app, owner_id, case)
    set_limit(app, owner_id, case.quota, limit)
    response = run(client, case.operation, "alice", ROOT)
    if app_config["CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS"]:
        assert response.status_code == 201, response.data
    else:
        assert_refused(response, expected_message("alice", case, limit, used))


@pytest.mark.usefixtures("world")
def test_the_quota_of_one_owner_leaves_others_alone(
    app: Flask, forge: Any, client: FlaskClient
) -> None:
    set_limit(app, forge.owner("acme").id, Quota.TOTAL_SIZE, 1)
    assert run(client, "monolithic", "alice", ALICE).status_code == 201
    assert run(client, "monolithic", "acme", ALICE).status_code == 403
