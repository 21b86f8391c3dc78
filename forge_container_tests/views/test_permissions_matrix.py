"""Who may pull, push and delete what: the forge's rules through the token endpoint and /v2."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.models import Package, PackageTag, PackageVersion
from forge_container.state import get_state
from forge_container_tests.helpers import basic, bearer, error_codes

IMAGES = (
    "acme/tool",  # public org, no repository
    "acme/site/web",  # public repository of a public org
    "acme/vault/db",  # private repository of a public org
    "secret/tool",  # private org
    "alice/app",  # public user
    "alice/priv/x",  # private repository of a public user
    "carol/app",  # private user
)
ALL = "pull,push,delete"


@pytest.fixture
def world(app: Flask, forge: Any) -> None:
    forge.user("root", admin=True)
    forge.user("founder")
    for name in ("alice", "bob", "m_read", "m_write", "m_admin", "c_read", "c_write", "c_admin"):
        forge.user(name)
    forge.user("carol", public=False)
    forge.user("sleepy", active=False)
    forge.org("acme", owner="founder")
    forge.org("secret", owner="founder", public=False)
    for org in ("acme", "secret"):
        for role in ("read", "write", "admin"):
            forge.member(org, f"m_{role}", role)
    forge.repo("acme", "site")
    forge.repo("acme", "vault", private=True)
    forge.repo("alice", "priv", private=True)
    for role in ("read", "write", "admin"):
        forge.collaborator("acme", "vault", f"c_{role}", role)
    forge.collaborator("alice", "priv", "c_read", "read")
    state = get_state(app)
    with app.app_context():
        session = state.db.session
        for full in IMAGES:
            owner_name, _, image = full.partition("/")
            owner = state.host.get_owner(owner_name)
            assert owner is not None
            package = Package(owner_id=owner.id, owner_name=owner.name, name=image)
            version = PackageVersion(package=package, digest="sha256:" + "a" * 64, media_type="x")
            session.add_all([package, version])
            session.flush()
            session.add(PackageTag(package_id=package.id, name="v1", version_id=version.id))
        session.commit()


# (caller, credential, image, granted actions); credential "pw" is the password,
# otherwise a PAT with those scopes; caller None is anonymous.
CASES: list[tuple[str | None, str, str, str]] = [
    # site admin: everything, everywhere
    *[("root", "pw", image, ALL) for image in IMAGES],
    # anonymous: public owners' images unless a private repository says otherwise
    (None, "", "acme/tool", "pull"),
    (None, "", "acme/site/web", "pull"),
    (None, "", "acme/vault/db", ""),
    (None, "", "secret/tool", ""),
    (None, "", "alice/app", "pull"),
    (None, "", "alice/priv/x", ""),
    (None, "", "carol/app", ""),
    # a user owns its namespace, repositories included
    ("alice", "pw", "alice/app", ALL),
    ("alice", "pw", "alice/priv/x", ALL),
    ("alice", "pw", "acme/tool", "pull"),
    ("alice", "pw", "acme/vault/db", ""),
    ("alice", "pw", "secret/tool", ""),
    ("alice", "pw", "carol/app", ""),
    ("carol", "pw", "carol/app", ALL),
    # organisation members by team role, private repositories and private orgs included
    ("m_read", "pw", "acme/tool", "pull"),
    ("m_read", "pw", "acme/vault/db", "pull"),
    ("m_read", "pw", "secret/tool", "pull"),
    ("m_write", "pw", "acme/tool", "pull,push"),
    ("m_write", "pw", "acme/vault/db", "pull,push"),
    ("m_write", "pw", "secret/tool", "pull,push"),
    ("m_admin", "pw", "acme/site/web", ALL),
    ("m_admin", "pw", "secret/tool", ALL),
    ("founder", "pw", "secret/tool", ALL),
    ("m_write", "pw", "alice/app", "pull"),
    # repository collaborators by role, on that repository's images only
    ("c_read", "pw", "acme/vault/db", "pull"),
    ("c_write", "pw", "acme/vault/db", "pull,push"),
    ("c_admin", "pw", "acme/vault/db", ALL),
    ("c_admin", "pw", "acme/tool", "pull"),
    ("c_admin", "pw", "acme/site/web", "pull"),
    ("c_admin", "pw", "secret/tool", ""),
    ("c_read", "pw", "alice/priv/x", "pull"),
    ("c_write", "pw", "alice/priv/x", ""),
    # an outsider reads what is public
    ("bob", "pw", "acme/tool", "pull"),
    ("bob", "pw", "acme/site/web", "pull"),
    ("bob", "pw", "acme/vault/db", ""),
    ("bob", "pw", "secret/tool", ""),
    ("bob", "pw", "carol/app", ""),
    # personal access tokens narrow the role: read:package pulls, write:package does it all
    ("alice", "read:package", "alice/app", "pull"),
    ("alice", "write:package", "alice/app", ALL),
    ("alice", "read:package,write:package", "alice/priv/x", ALL),
    ("m_write", "read:package", "acme/tool", "pull"),
    ("m_write", "write:package", "acme/tool", "pull,push"),
    ("m_read", "write:package", "acme/vault/db", "pull"),
    ("root", "read:package", "secret/tool", "pull"),
    ("bob", "write:package", "acme/vault/db", ""),
]


def actions(text: str) -> set[str]:
    return set(filter(None, text.split(",")))


def credentials(forge: Any, caller: str | None, credential: str) -> dict[str, str]:
    if caller is None:
        return {}
    if credential == "pw":
        return basic(caller, f"pw-{caller}")
    return basic(caller, forge.token(caller, scopes=tuple(credential.split(","))))


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(("caller", "credential", "image", "expected"), CASES)
def test_token_grant_and_pull(
    app: Flask,
    client: FlaskClient,
    forge: Any,
    caller: str | None,
    credential: str,
    image: str,
    expected: str,
) -> None:
    headers = credentials(forge, caller, credential)
    missing = f"{image.split('/')[0]}/missing"
    response = client.get(
        f"/v2/token?scope=repository:{image}:{ALL}&scope=repository:{missing}:pull",
        headers=headers,
    )
    assert response.status_code == 200
    token = response.get_json()["token"]
    granted = get_state(app).tokens.verify(token).actions_for("repository", image)
    assert granted == actions(expected)

    # The same decision on a registry route, with Basic credentials and with the token.
    for auth in (headers, bearer(token)):
        listing = client.get(f"/v2/{image}/tags/list", headers=auth)
        if "pull" in granted:
            assert listing.status_code == 200
            assert listing.get_json() == {"name": image, "tags": ["v1"]}
        elif caller is None:
            assert listing.status_code == 401
            assert error_codes(listing) == ["UNAUTHORIZED"]
            assert f'scope="repository:{image}:pull"' in listing.headers["WWW-Authenticate"]
        else:
            # Unreadable private images answer exactly like missing ones.
            absent = client.get(f"/v2/{missing}/tags/list", headers=auth)
            assert listing.status_code == absent.status_code == 404
            assert error_codes(listing) == error_codes(absent) == ["NAME_UNKNOWN"]


@pytest.mark.usefixtures("world")
def test_an_inactive_user_cannot_authenticate(client: FlaskClient) -> None:
    response = client.get(
        "/v2/token?scope=repository:acme/tool:pull", headers=basic("sleepy", "pw-sleepy")
    )
    assert response.status_code == 401
    assert (
        client.get("/v2/acme/tool/tags/list", headers=basic("sleepy", "pw-sleepy")).status_code
        == 401
    )


@pytest.mark.usefixtures("world")
def test_an_unknown_owner_is_an_unknown_name(client: FlaskClient) -> None:
    response = client.get("/v2/nobody/app/tags/list", headers=basic("root", "pw-root"))
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.usefixtures("world")
def test_an_invalid_name_is_name_invalid(client: FlaskClient) -> None:
    response = client.get("/v2/acme/Tool/tags/list", headers=basic("root", "pw-root"))
    assert response.status_code == 400
    assert error_codes(response) == ["NAME_INVALID"]


@pytest.mark.usefixtures("world")
def test_catalog_scope_is_granted_to_signed_in_users(app: Flask, client: FlaskClient) -> None:
    response = client.get("/v2/token?scope=registry:catalog:*", headers=basic("bob", "pw-bob"))
    claims = get_state(app).tokens.verify(response.get_json()["token"])
    assert claims.actions_for("registry", "catalog") == {"*"}
