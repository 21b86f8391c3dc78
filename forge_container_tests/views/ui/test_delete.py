"""Deleting a tag or a version from the pages: confirmation, CSRF, permission, result."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from forge_container import events
from forge_container.models import PackageTag, PackageVersion
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.views.ui.conftest import Images, csrf_of, sign_in, text

IMAGE = "/alice/-/packages/container/app"
DELETE = IMAGE + "/-/delete"


def stored_tags(app: Flask) -> list[str]:
    with app.app_context():
        return sorted(get_state(app).db.session.scalars(select(PackageTag.name)))


def stored_versions(app: Flask) -> int:
    with app.app_context():
        return len(get_state(app).db.session.scalars(select(PackageVersion.id)).all())


@pytest.fixture
def pushed(forge: Forge, images: Images) -> str:
    """alice/app with ``v1`` and ``stable`` on one version, ``v2`` on another; v1's digest."""
    forge.user("alice")
    forge.user("bob")
    forge.org("acme", owner="alice")
    forge.member("acme", "bob", "write")
    digest = images.push("alice", "app", "v1", layer=b"one")
    images.push("alice", "app", "stable", layer=b"one")
    images.push("alice", "app", "v2", layer=b"two")
    return digest


def test_a_tag_is_deleted_after_confirming(
    pushed: str, app: Flask, client: FlaskClient, forge: Forge
) -> None:
    sent: list[dict[str, Any]] = []

    def receive(sender: str, **details: Any) -> None:
        sent.append(details)

    events.tag_deleted.connect(receive)
    sign_in(client, "alice")
    confirm = client.get(DELETE + "?tag=v1")
    page = text(confirm)
    assert confirm.status_code == 200
    assert 'Delete tag <span class="fc-tag">v1</span> of alice/app?' in page
    assert "still tagged stable" in page
    assert stored_tags(app) == ["stable", "v1", "v2"]  # the GET deletes nothing
    response = client.post(DELETE, data={"csrf_token": csrf_of(page), "tag": "v1"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{IMAGE}?deleted=tag+v1"
    assert stored_tags(app) == ["stable", "v2"]
    events.tag_deleted.disconnect(receive)
    assert [(e["tag"], e["owner_name"], e["principal_id"]) for e in sent] == [
        ("v1", "alice", forge.owner("alice").id)
    ]
    assert "Deleted tag v1." in text(client.get(response.headers["Location"]))
    assert client.get(DELETE + "?tag=v1").status_code == 404


def test_a_version_goes_with_its_tags(pushed: str, app: Flask, client: FlaskClient) -> None:
    sign_in(client, "alice")
    page = text(client.get(DELETE + "?digest=" + pushed))
    assert "with its tags stable, v1" in page
    response = client.post(DELETE, data={"csrf_token": csrf_of(page), "digest": pushed})
    assert response.status_code == 303
    assert stored_tags(app) == ["v2"]
    assert stored_versions(app) == 1


def test_deleting_the_last_version_leads_back_to_the_owner(
    forge: Forge, images: Images, app: Flask, client: FlaskClient
) -> None:
    forge.user("alice")
    digest = images.push("alice", "app", "only")
    sign_in(client, "alice")
    page = text(client.get(DELETE + "?digest=" + digest))
    response = client.post(DELETE, data={"csrf_token": csrf_of(page), "digest": digest})
    assert response.headers["Location"].startswith("/alice/-/packages/container?deleted=")
    assert client.get(IMAGE).status_code == 404


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_post_without_the_sessions_csrf_token_is_refused(
    pushed: str, app: Flask, client: FlaskClient, token: str | None
) -> None:
    sign_in(client, "alice")
    client.get(DELETE + "?tag=v1")
    data = {"tag": "v1"} | ({} if token is None else {"csrf_token": token})
    response = client.post(DELETE, data=data)
    assert response.status_code == 400
    assert "CSRF" in text(response)
    assert stored_tags(app) == ["stable", "v1", "v2"]


def test_readers_and_anonymous_cannot_delete(pushed: str, app: Flask, client: FlaskClient) -> None:
    confirm = client.get(DELETE + "?tag=v1")
    assert confirm.status_code == 403
    token = re.findall(r'name="csrf_token" value="([^"]+)"', text(client.get("/login")))[0]
    assert client.post(DELETE, data={"csrf_token": token, "tag": "v1"}).status_code == 400
    sign_in(client, "bob")
    assert client.get(DELETE + "?tag=v1").status_code == 403
    with client.session_transaction() as session:
        session["forge_container_csrf"] = ours = "a-valid-token"
    response = client.post(DELETE, data={"csrf_token": ours, "tag": "v1"})
    assert response.status_code == 403
    assert stored_tags(app) == ["stable", "v1", "v2"]


def test_a_private_images_delete_page_is_not_found(
    forge: Forge, images: Images, client: FlaskClient
) -> None:
    forge.user("alice")
    forge.user("bob")
    forge.repo("alice", "vault", private=True)
    images.push("alice", "vault", "v1")
    sign_in(client, "bob")
    assert client.get("/alice/-/packages/container/vault/-/delete?tag=v1").status_code == 404


def test_org_writers_may_not_delete_but_admins_may(
    forge: Forge, images: Images, app: Flask, client: FlaskClient
) -> None:
    forge.user("alice")
    forge.user("bob")
    forge.org("acme", owner="alice")
    forge.member("acme", "bob", "write")
    images.push("acme", "tool", "v1")
    path = "/acme/-/packages/container/tool/-/delete?tag=v1"
    sign_in(client, "bob")
    assert client.get(path).status_code == 403
    admin = app.test_client()
    sign_in(admin, "alice")
    assert admin.get(path).status_code == 200


def test_naming_both_or_neither_is_a_bad_request(pushed: str, client: FlaskClient) -> None:
    sign_in(client, "alice")
    assert client.get(DELETE).status_code == 400
    assert client.get(DELETE + f"?tag=v1&digest={pushed}").status_code == 400
    assert client.get(DELETE + "?digest=nonsense").status_code == 404
