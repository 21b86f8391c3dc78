"""``GET /v2/_catalog``: the images the caller can read, in byte order, page by page."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.mediatypes import OCI_MANIFEST
from forge_container.models import Package, PackageVersion
from forge_container.state import get_state
from forge_container_tests.helpers import basic, bearer, challenge_params, error_codes

PUBLIC = ["acme/site/web", "acme/tool", "alice/app"]
IMAGES = sorted([*PUBLIC, "acme/vault/db", "alice/priv/x", "carol/app", "secret/tool"])


def add_images(app: Flask, *names: str) -> None:
    """Images with one manifest each, owned by the forge's owners of those names."""
    state = get_state(app)
    with app.app_context():
        session = state.db.session()
        for full in names:
            owner_name, _, image = full.partition("/")
            owner = state.host.get_owner(owner_name)
            assert owner is not None
            package = Package(owner_id=owner.id, owner_name=owner.name, name=image)
            session.add(package)
            session.add(
                PackageVersion(
                    package=package, digest="sha256:" + "a" * 64, media_type=OCI_MANIFEST
                )
            )
        session.commit()


@pytest.fixture
def world(app: Flask, forge: Any) -> None:
    forge.user("root", admin=True)
    forge.user("Alice", password="pw-alice")
    forge.user("bob")
    forge.user("m_read")
    forge.user("carol", public=False)
    forge.org("ACME", owner="root")
    forge.org("secret", owner="root", public=False)
    forge.member("secret", "m_read", "read")
    forge.repo("ACME", "site")
    forge.repo("ACME", "vault", private=True)
    forge.repo("Alice", "priv", private=True)
    add_images(app, *IMAGES)


def catalog(client: FlaskClient, query: str = "", **headers: Any) -> Any:
    response = client.get(f"/v2/_catalog{query}", headers=headers.get("auth", {}))
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return response


def listed(client: FlaskClient, auth: dict[str, str] | None = None) -> list[str]:
    names: list[str] = catalog(client, auth=auth or {}).get_json()["repositories"]
    return names


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        (None, PUBLIC),
        ("bob", PUBLIC),
        ("alice", ["acme/site/web", "acme/tool", "alice/app", "alice/priv/x"]),
        ("m_read", [*PUBLIC, "secret/tool"]),
        ("carol", ["acme/site/web", "acme/tool", "alice/app", "carol/app"]),
        ("root", IMAGES),
    ],
)
def test_only_images_the_caller_can_read(
    client: FlaskClient, caller: str | None, expected: list[str]
) -> None:
    auth = basic(caller, f"pw-{caller}") if caller else {}
    assert listed(client, auth) == sorted(expected)


@pytest.mark.usefixtures("world")
def test_bearer_tokens_list_what_their_principal_reads(client: FlaskClient) -> None:
    expected = [*PUBLIC, "secret/tool"]
    for scope in ("registry:catalog:*", "repository:acme/tool:pull"):
        token = client.get(f"/v2/token?scope={scope}", headers=basic("m_read", "pw-m_read"))
        assert listed(client, bearer(token.get_json()["token"])) == expected


@pytest.mark.usefixtures("world")
def test_a_read_only_pat_lists_the_same(client: FlaskClient, forge: Any) -> None:
    pat = forge.token("m_read", scopes=("read:package",))
    assert listed(client, basic("m_read", pat)) == [*PUBLIC, "secret/tool"]


@pytest.mark.usefixtures("world")
def test_wrong_credentials_are_refused(client: FlaskClient) -> None:
    response = client.get("/v2/_catalog", headers=basic("bob", "wrong"))
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_ALLOW_ANONYMOUS": False}])
def test_without_anonymous_access_the_catalog_asks_for_credentials(client: FlaskClient) -> None:
    response = client.get("/v2/_catalog")
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]
    challenge = challenge_params(response.headers["WWW-Authenticate"])
    assert challenge["scope"] == "registry:catalog:*"
    assert listed(client, basic("bob", "pw-bob")) == PUBLIC


@pytest.mark.usefixtures("world")
def test_pages_with_n_last_and_link(client: FlaskClient) -> None:
    auth = basic("root", "pw-root")
    first = catalog(client, "?n=3", auth=auth)
    assert first.get_json() == {"repositories": IMAGES[:3]}
    assert first.headers["Link"] == '</v2/_catalog?n=3&last=acme%2Fvault%2Fdb>; rel="next"'
    second = catalog(client, "?n=3&last=acme%2Fvault%2Fdb", auth=auth)
    assert second.get_json()["repositories"] == IMAGES[3:6]
    assert second.headers["Link"] == '</v2/_catalog?n=3&last=carol%2Fapp>; rel="next"'
    last = catalog(client, "?n=3&last=carol%2Fapp", auth=auth)
    assert last.get_json()["repositories"] == IMAGES[6:]
    assert "Link" not in last.headers


@pytest.mark.usefixtures("world")
def test_n_zero_lists_nothing(client: FlaskClient) -> None:
    response = catalog(client, "?n=0")
    assert response.get_json() == {"repositories": []}
    assert "Link" not in response.headers


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_CATALOG_MAX_ENTRIES": 2}])
def test_n_is_capped_by_the_configured_maximum(client: FlaskClient) -> None:
    default = catalog(client)
    assert default.get_json()["repositories"] == PUBLIC[:2]
    assert default.headers["Link"] == '</v2/_catalog?n=2&last=acme%2Ftool>; rel="next"'
    assert catalog(client, "?n=2").get_json()["repositories"] == PUBLIC[:2]
    too_many = client.get("/v2/_catalog?n=3")
    assert too_many.status_code == 400
    assert error_codes(too_many) == ["PAGINATION_NUMBER_INVALID"]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("query", ["?n=ten", "?n=-1", "?n=1.5", "?n=2&after=x"])
def test_bad_numbers_are_refused(client: FlaskClient, query: str) -> None:
    response = client.get(f"/v2/_catalog{query}")
    assert response.status_code == 400
    assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


@pytest.mark.usefixtures("world")
def test_a_last_with_a_nul_byte_is_refused(client: FlaskClient) -> None:
    response = client.get("/v2/_catalog?last=a%00")
    assert response.status_code == 400
    assert error_codes(response) == ["UNSUPPORTED"]


def test_short_pages_continue_without_naming_hidden_images(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("root", admin=True)
    forge.org("hidden", owner="root", public=False)
    forge.org("zpublic", owner="root")
    add_images(app, *(f"hidden/app{i:03d}" for i in range(150)), "zpublic/app")
    seen: list[str] = []
    query = "?n=5"
    for _ in range(10):
        response = catalog(client, query)
        seen += response.get_json()["repositories"]
        link = response.headers.get("Link")
        if link is None:
            break
        assert "hidden" not in link
        url = urlsplit(link[1 : link.index(">")])
        assert url.path == "/v2/_catalog" and "after" in parse_qs(url.query)
        query = f"?{url.query}"
    assert seen == ["zpublic/app"]


def test_an_image_whose_owner_name_moved_on_is_not_listed(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("root", admin=True)
    forge.user("alice")
    add_images(app, "alice/app")
    with app.app_context():
        session = get_state(app).db.session()
        package = Package(owner_id="u:999", owner_name="alice", name="old")
        session.add(package)
        session.add(PackageVersion(package=package, digest="sha256:" + "b" * 64, media_type="x"))
        session.commit()
    assert listed(client, basic("root", "pw-root")) == ["alice/app"]


@pytest.mark.usefixtures("world")
def test_the_route_is_not_an_image_route(client: FlaskClient) -> None:
    response = client.get("/v2/_catalog/tags/list")
    assert response.status_code == 400
    assert error_codes(response) == ["NAME_INVALID"]
