"""Failed logins are limited per user and per address: 429 TOOMANYREQUESTS with Retry-After."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from forge_container_tests.helpers import basic, error_codes


@pytest.fixture(params=["memory", "redis"])
def app_config(request: pytest.FixtureRequest, redis_url: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "CONTAINER_REGISTRY_LOGIN_MAX_FAILURES": 3,
        "CONTAINER_REGISTRY_LOGIN_FAILURE_WINDOW": 120,
    }
    if request.param == "redis":
        config["CONTAINER_REGISTRY_REDIS_URL"] = redis_url
    return config


def test_the_token_endpoint_refuses_after_too_many_failures(
    client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    for _ in range(3):
        assert client.get("/v2/token", headers=basic("alice", "wrong")).status_code == 401
    response = client.get("/v2/token", headers=basic("alice", "pw-alice"))
    assert response.status_code == 429
    assert error_codes(response) == ["TOOMANYREQUESTS"]
    assert 1 <= int(response.headers["Retry-After"]) <= 120


def test_other_users_from_other_addresses_are_not_affected(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    forge.user("bob")
    for _ in range(3):
        client.get(
            "/v2/", headers=basic("alice", "wrong"), environ_base={"REMOTE_ADDR": "10.1.1.1"}
        )
    assert client.get("/v2/", headers=basic("bob", "pw-bob")).status_code == 200
    blocked = client.get(
        "/v2/", headers=basic("bob", "pw-bob"), environ_base={"REMOTE_ADDR": "10.1.1.1"}
    )
    assert blocked.status_code == 429


def test_basic_auth_on_registry_routes_counts_too(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    for _ in range(3):
        assert client.get("/v2/", headers=basic("alice", "wrong")).status_code == 401
    response = client.get("/v2/", headers=basic("alice", "pw-alice"))
    assert response.status_code == 429
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_password_grants_count_too(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    data = {"grant_type": "password", "client_id": "x", "username": "alice", "password": "no"}
    for _ in range(3):
        assert client.post("/v2/token", data=data).status_code == 401
    assert client.post("/v2/token", data={**data, "password": "pw-alice"}).status_code == 429


def test_successful_logins_are_not_counted(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    for _ in range(10):
        assert client.get("/v2/", headers=basic("alice", "pw-alice")).status_code == 200
