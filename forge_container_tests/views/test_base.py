from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container_tests.helpers import basic, bearer, challenge_params, error_codes

API_VERSION = "registry/2.0"


def test_anonymous_version_check_gets_the_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/v2/")
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params == {"realm": "http://localhost/v2/token", "service": "forge-container"}


def test_basic_credentials_pass_the_version_check(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    response = client.get("/v2/", headers=basic("alice", "pw-alice"))
    assert response.status_code == 200
    assert response.get_json() == {}
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


def test_a_token_passes_the_version_check(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    token = client.get("/v2/token", headers=basic("alice", "pw-alice")).get_json()["token"]
    assert client.get("/v2/", headers=bearer(token)).status_code == 200


def test_an_anonymous_token_passes_the_version_check(client: FlaskClient) -> None:
    token = client.get("/v2/token").get_json()["token"]
    assert client.get("/v2/", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Authorization": "Bearer not-a-token"}, "invalid_token"),
        ({"Authorization": "Basic %%%"}, "invalid_request"),
        ({"Authorization": "Digest username=x"}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
    ],
)
def test_bad_credentials_get_a_401_with_a_reason(
    client: FlaskClient, headers: dict[str, str], error: str
) -> None:
    response = client.get("/v2/", headers=headers)
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]
    assert challenge_params(response.headers["WWW-Authenticate"])["error"] == error


def test_a_wrong_password_also_offers_basic(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    response = client.get("/v2/", headers=basic("alice", "nope"))
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate")[1] == 'Basic realm="forge-container"'


def test_v2_without_slash_redirects(client: FlaskClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/v2/")


def test_unknown_registry_routes_are_oci_json(client: FlaskClient) -> None:
    response = client.get("/v2/nothing/here")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


def test_wrong_methods_are_oci_json_with_allow(client: FlaskClient) -> None:
    response = client.delete("/v2/")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]
    assert "GET" in response.headers["Allow"]
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


def test_the_host_keeps_its_own_404s(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Docker-Distribution-API-Version" not in response.headers
    assert not response.is_json


class TestRealm:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"CONTAINER_REGISTRY_PROXY_COUNT": 1, "CONTAINER_REGISTRY_SERVICE": "reg.test"}

    def test_forwarded_headers_are_honoured_from_a_trusted_proxy(self, client: FlaskClient) -> None:
        response = client.get(
            "/v2/",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "forge.example.org"},
        )
        params = challenge_params(response.headers["WWW-Authenticate"])
        assert params["realm"] == "https://forge.example.org/v2/token"
        assert params["service"] == "reg.test"


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(client: FlaskClient) -> None:
    response = client.get(
        "/v2/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    )
    realm = challenge_params(response.headers["WWW-Authenticate"])["realm"]
    assert realm == "http://localhost/v2/token"


class TestConfiguredRealm:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"CONTAINER_REGISTRY_TOKEN_REALM": "https://auth.example.org/v2/token"}

    def test_the_configured_realm_wins(self, client: FlaskClient) -> None:
        response = client.get("/v2/", headers={"X-Forwarded-Host": "other"})
        realm = challenge_params(response.headers["WWW-Authenticate"])["realm"]
        assert realm == "https://auth.example.org/v2/token"


def test_nul_bytes_in_urls_are_a_clean_400(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    for url in ("/v2/alice/app/tags/list?last=a%00", "/v2/alice/app%00/tags/list"):
        response = client.get(url, headers=basic("alice", "pw-alice"))
        assert response.status_code == 400, url
        assert error_codes(response) == ["UNSUPPORTED"]


class CountingInput:
    """A ``wsgi.input`` that counts what the app reads of the body."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.read_bytes = 0

    def read(self, *args: Any) -> bytes:
        data: bytes = self.stream.read(*args)
        self.read_bytes += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self.stream.readline(*args)
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize(("size", "drained"), [(64 * 1024, True), (5 * 1024 * 1024, False)])
def test_small_bodies_are_drained_before_a_401(
    app: Flask, forge: Any, size: int, drained: bool
) -> None:
    """Clients that send bodies without credentials first keep their connection."""
    forge.user("alice")
    inputs: list[CountingInput] = []
    wsgi_app = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        counter = CountingInput(environ["wsgi.input"])
        inputs.append(counter)
        environ["wsgi.input"] = counter
        return wsgi_app(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    response = app.test_client().post(
        "/v2/alice/app/blobs/uploads/?digest=sha256:" + "0" * 64, data=b"x" * size
    )
    assert response.status_code == 401
    assert (inputs[0].read_bytes == size) is drained
