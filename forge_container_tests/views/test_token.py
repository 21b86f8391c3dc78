from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.auth.tokens import ACCESS_SALT
from forge_container.state import get_state
from forge_container_tests.helpers import basic, bearer, error_codes, signed_in_the_past

PULL_PUSH = "repository:alice/app:pull,push"


def claims(app: Flask, token: str) -> Any:
    return get_state(app).tokens.verify(token)


def test_get_with_basic_credentials_grants_what_the_user_may_do(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    response = client.get(
        "/v2/token",
        query_string={"service": "forge-container", "scope": PULL_PUSH, "account": "alice"},
        headers=basic("alice", "pw-alice"),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    datetime.fromisoformat(body["issued_at"])
    assert "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    granted = claims(app, body["token"])
    assert granted.subject is not None and granted.name == "alice"
    assert granted.actions_for("repository", "alice/app") == {"pull", "push"}


def test_repeated_scopes_are_each_granted(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    forge.user("bob")
    response = client.get(
        "/v2/token?scope=repository:alice/app:pull,push&scope=repository:bob/lib:pull,push",
        headers=basic("alice", "pw-alice"),
    )
    granted = claims(app, response.get_json()["token"])
    assert granted.actions_for("repository", "alice/app") == {"pull", "push"}
    assert granted.actions_for("repository", "bob/lib") == {"pull"}


def test_anonymous_gets_a_token_for_public_pulls_only(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    response = client.get("/v2/token", query_string={"scope": PULL_PUSH})
    assert response.status_code == 200
    granted = claims(app, response.get_json()["token"])
    assert granted.subject is None
    assert granted.actions_for("repository", "alice/app") == {"pull"}


def test_a_partial_or_empty_grant_is_not_an_error(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("alice", public=False)
    response = client.get("/v2/token", query_string={"scope": PULL_PUSH})
    assert response.status_code == 200
    assert claims(app, response.get_json()["token"]).access == ()


def test_offline_token_returns_a_refresh_token(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    response = client.get(
        "/v2/token?offline_token=true&client_id=docker", headers=basic("alice", "pw-alice")
    )
    assert response.get_json()["refresh_token"]


def test_bad_credentials_are_refused(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    response = client.get("/v2/token", headers=basic("alice", "wrong"))
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]


def test_an_unknown_user_is_refused_like_a_wrong_password(client: FlaskClient) -> None:
    response = client.get("/v2/token", headers=basic("nobody", "wrong"))
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]


def test_a_bearer_token_is_not_a_credential_for_the_token_endpoint(client: FlaskClient) -> None:
    response = client.get("/v2/token", headers=bearer("abc"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"service": "someone-else"}, "unknown service"),
        ({"scope": "repository:Bad/Name:pull"}, "invalid repository name"),
        ({"scope": "nonsense"}, "malformed scope"),
    ],
)
def test_malformed_requests_get_a_400(
    client: FlaskClient, query: dict[str, str], words: str
) -> None:
    response = client.get("/v2/token", query_string=query)
    assert response.status_code == 400
    assert error_codes(response) == ["UNSUPPORTED"]
    assert words in response.get_json()["errors"][0]["message"]


def test_an_account_that_does_not_match_the_credentials_is_refused(
    client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    response = client.get("/v2/token?account=bob", headers=basic("alice", "pw-alice"))
    assert response.status_code == 400


def test_a_pat_narrows_the_grant_to_its_scopes(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    pat = forge.token("alice", scopes=("read:package",))
    response = client.get(
        "/v2/token", query_string={"scope": PULL_PUSH}, headers=basic("alice", pat)
    )
    assert claims(app, response.get_json()["token"]).actions_for("repository", "alice/app") == {
        "pull"
    }


def test_a_revoked_pat_is_refused(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    pat = forge.token("alice", scopes=("write:package",), name="ci")
    assert client.get("/v2/token", headers=basic("alice", pat)).status_code == 200
    forge.revoke("alice", "ci")
    assert client.get("/v2/token", headers=basic("alice", pat)).status_code == 401


def test_an_expired_token_is_refused_on_use(app: Flask, client: FlaskClient) -> None:
    token = signed_in_the_past(app.config["SECRET_KEY"], ACCESS_SALT, seconds=301)
    response = client.get("/v2/", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.get_json()["errors"][0]["message"]
    fresh = signed_in_the_past(app.config["SECRET_KEY"], ACCESS_SALT, seconds=290)
    assert client.get("/v2/", headers=bearer(fresh)).status_code == 200


class TestPost:
    def test_password_grant(self, app: Flask, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        response = client.post(
            "/v2/token",
            data={
                "grant_type": "password",
                "username": "alice",
                "password": "pw-alice",
                "client_id": "containerd",
                "service": "forge-container",
                "scope": "repository:alice/app:pull repository:alice/app:push",
            },
        )
        assert response.status_code == 200
        body = response.get_json()
        assert body["scope"] == "repository:alice/app:pull,push"
        assert body["expires_in"] == 300 and body["issued_at"]
        assert "refresh_token" not in body
        assert claims(app, body["access_token"]).name == "alice"

    def test_offline_access_then_refresh(self, app: Flask, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        first = client.post(
            "/v2/token",
            data={
                "grant_type": "password",
                "username": "alice",
                "password": "pw-alice",
                "client_id": "docker",
                "access_type": "offline",
            },
        ).get_json()
        refreshed = client.post(
            "/v2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "client_id": "docker",
                "scope": PULL_PUSH,
            },
        )
        assert refreshed.status_code == 200
        body = refreshed.get_json()
        assert body["refresh_token"] == first["refresh_token"]
        assert claims(app, body["access_token"]).actions_for("repository", "alice/app") == {
            "pull",
            "push",
        }

    def test_a_refresh_token_dies_with_its_pat(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        pat = forge.token("alice", scopes=("read:package",), name="laptop")
        refresh = client.get(
            "/v2/token?offline_token=true", headers=basic("alice", pat)
        ).get_json()["refresh_token"]
        data = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "x"}
        assert client.post("/v2/token", data=data).status_code == 200
        forge.revoke("alice", "laptop")
        response = client.post("/v2/token", data=data)
        assert response.status_code == 401
        assert error_codes(response) == ["UNAUTHORIZED"]

    def test_a_tampered_refresh_token_is_refused(self, client: FlaskClient) -> None:
        data = {"grant_type": "refresh_token", "refresh_token": "abc.def.ghi", "client_id": "x"}
        response = client.post("/v2/token", data=data)
        assert response.status_code == 401

    def test_an_access_token_is_not_a_refresh_token(self, client: FlaskClient) -> None:
        token = client.get("/v2/token").get_json()["token"]
        data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "x"}
        assert client.post("/v2/token", data=data).status_code == 401

    @pytest.mark.parametrize(
        ("data", "oauth_error"),
        [
            ({"grant_type": "client_credentials", "client_id": "x"}, "unsupported_grant_type"),
            ({"grant_type": "password", "username": "a", "password": "b"}, "invalid_request"),
            ({"grant_type": "password", "client_id": "x"}, "invalid_request"),
            ({"grant_type": "refresh_token", "client_id": "x"}, "invalid_request"),
            ({}, "invalid_request"),
            (
                {
                    "grant_type": "password",
                    "client_id": "x",
                    "username": "a",
                    "password": "b",
                    "scope": "repository:a",
                },
                "invalid_scope",
            ),
        ],
    )
    def test_malformed_requests_get_a_400_in_both_dialects(
        self, client: FlaskClient, data: dict[str, str], oauth_error: str
    ) -> None:
        response = client.post("/v2/token", data=data)
        assert response.status_code == 400
        assert error_codes(response) == ["UNSUPPORTED"]
        assert response.get_json()["error"] == oauth_error

    def test_bad_password_is_a_401(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        data = {"grant_type": "password", "client_id": "x", "username": "alice", "password": "no"}
        assert client.post("/v2/token", data=data).status_code == 401


class TestAnonymousDisabled:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"CONTAINER_REGISTRY_ALLOW_ANONYMOUS": False}

    def test_anonymous_token_requests_are_refused(self, client: FlaskClient) -> None:
        response = client.get("/v2/token")
        assert response.status_code == 401
        assert 'Basic realm="forge-container"' in response.headers.getlist("WWW-Authenticate")

    def test_users_still_get_tokens(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        assert client.get("/v2/token", headers=basic("alice", "pw-alice")).status_code == 200


def test_nul_bytes_in_a_password_grant_are_a_clean_400(client: FlaskClient) -> None:
    data = {"grant_type": "password", "client_id": "x", "username": "a\x00b", "password": "p"}
    response = client.post("/v2/token", data=data)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
