"""The demo forge's sign-in page, sign-out and home page."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from forge_container.demo.views import is_safe_next
from forge_container_tests.conftest import Forge


def csrf(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, page
    return match.group(1)


def sign_in(client: FlaskClient, name: str, password: str, next_url: str = "") -> str:
    response = client.post(
        "/login",
        data={"csrf_token": csrf(client), "username": name, "password": password, "next": next_url},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def test_login_form(client: FlaskClient) -> None:
    response = client.get("/login?next=/v2/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<form method="post" action="/login">' in page
    assert 'name="next" value="/v2/"' in page
    assert 'type="password"' in page
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


def test_wrong_password_shows_the_form_again(forge: Forge, client: FlaskClient) -> None:
    forge.user("alice")
    forge.user("ina", active=False)
    for name, password in (("alice", "nope"), ("nobody", "pw"), ("ina", "pw-ina")):
        response = client.post(
            "/login", data={"csrf_token": csrf(client), "username": name, "password": password}
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "Wrong user name or password." in page
        assert f'value="{name}"' in page
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


def test_login_needs_the_csrf_token(forge: Forge, client: FlaskClient) -> None:
    forge.user("alice")
    data = {"username": "alice", "password": "pw-alice"}
    assert client.post("/login", data=data).status_code == 400
    client.get("/login")
    assert client.post("/login", data={**data, "csrf_token": "forged"}).status_code == 400
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


def test_login_and_logout(forge: Forge, client: FlaskClient) -> None:
    forge.user("Alice", admin=True)
    assert sign_in(client, "alice", "pw-Alice") == "/"
    page = client.get("/").get_data(as_text=True)
    assert "You are signed in as <strong>Alice</strong> (site admin)." in page
    token = csrf(client, "/")
    assert client.post("/logout").status_code == 400
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "You are not signed in" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/v2/alice/app/tags/list?n=1", "/v2/alice/app/tags/list?n=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_login_redirects_to_safe_next_only(
    forge: Forge, client: FlaskClient, next_url: str, expected: str
) -> None:
    forge.user("alice")
    assert sign_in(client, "alice", "pw-alice", next_url) == expected


def test_is_safe_next() -> None:
    assert is_safe_next("/a/b?c=d")
    assert not is_safe_next("/\x00x")
    assert not is_safe_next(None)


def test_home_links_the_signed_in_users_packages(client: FlaskClient, forge: Forge) -> None:
    forge.user("alice")
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "alice", "password": "pw-alice", "csrf_token": token})
    body = client.get("/").get_data(as_text=True)
    assert 'href="/alice/-/packages/container"' in body
