"""Request rate limits: per principal, else per client address, in fixed windows; counted in
Redis when it is configured, so every node shares the count; off by default."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from forge_container.state import get_state
from forge_container_tests.e2e.conftest import free_port
from forge_container_tests.helpers import basic, error_codes
from forge_container_tests.sibling_app import sibling_app

ALICE = basic("alice", "pw-alice")
BOB = basic("bob", "pw-bob")
LIMIT = 3
WINDOW = 60
LIMITED = {
    "CONTAINER_REGISTRY_RATE_LIMIT_REQUESTS": LIMIT,
    "CONTAINER_REGISTRY_RATE_LIMIT_WINDOW": WINDOW,
}


@pytest.fixture
def app_config(request: pytest.FixtureRequest, redis_url: str) -> dict[str, Any]:
    """Limited to 3 requests a minute; ``indirect`` ``"redis"`` counts in the test Redis."""
    if getattr(request, "param", "") == "redis":
        return {**LIMITED, "CONTAINER_REGISTRY_REDIS_URL": redis_url}
    return dict(LIMITED)


def statuses(client: FlaskClient, count: int, path: str = "/v2/", **kwargs: Any) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(count)]


def assert_too_many(response: TestResponse) -> None:
    assert response.status_code == 429
    assert error_codes(response) == ["TOOMANYREQUESTS"]
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


@pytest.mark.parametrize("app_config", ["memory", "redis"], indirect=True)
def test_a_principal_gets_the_limit_then_429_with_retry_after(
    client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    forge.user("bob")
    assert statuses(client, LIMIT, headers=ALICE) == [200] * LIMIT
    assert_too_many(client.get("/v2/", headers=ALICE))
    assert_too_many(client.get("/v2/alice/app/tags/list", headers=ALICE))
    assert statuses(client, LIMIT, headers=BOB) == [200] * LIMIT


def test_anonymous_requests_count_per_client_address(client: FlaskClient) -> None:
    first = {"REMOTE_ADDR": "192.0.2.1"}
    second = {"REMOTE_ADDR": "192.0.2.2"}
    assert statuses(client, LIMIT, environ_base=first) == [401] * LIMIT
    assert_too_many(client.get("/v2/", environ_base=first))
    assert statuses(client, 1, environ_base=second) == [401]


def test_bad_credentials_count_against_the_address(client: FlaskClient) -> None:
    broken = {"Authorization": "Basic !!!"}
    assert statuses(client, LIMIT, headers=broken) == [401] * LIMIT
    assert_too_many(client.get("/v2/", headers=broken))


def test_the_token_endpoint_counts_too(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    token = "/v2/token?service=forge-container"
    assert statuses(client, LIMIT, token, headers=ALICE) == [200] * LIMIT
    assert_too_many(client.get(token, headers=ALICE))
    assert_too_many(client.post("/v2/token", data={"grant_type": "password"}))


def test_health_requests_do_not_count(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    assert statuses(client, 5, "/-/registry/health") == [200] * 5
    assert statuses(client, LIMIT, headers=ALICE) == [200] * LIMIT


@pytest.mark.parametrize("app_config", ["redis"], indirect=True)
def test_nodes_sharing_redis_share_the_count(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    with sibling_app(app) as node:
        other = node.test_client()
        assert statuses(client, 2, headers=ALICE) == [200, 200]
        assert statuses(other, 1, headers=ALICE) == [200]
        assert_too_many(other.get("/v2/", headers=ALICE))
        assert_too_many(client.get("/v2/", headers=ALICE))


def test_in_process_counts_are_per_app(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    with sibling_app(app) as node:
        assert statuses(client, LIMIT, headers=ALICE) == [200] * LIMIT
        assert statuses(node.test_client(), LIMIT, headers=ALICE) == [200] * LIMIT


def test_a_redis_that_is_down_does_not_refuse_anybody(
    app: Flask, forge: Any, caplog: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    closed = f"redis://127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.WARNING, logger="forge_container.auth.ratelimit")
    with sibling_app(app, CONTAINER_REGISTRY_REDIS_URL=closed) as node:
        assert statuses(node.test_client(), LIMIT + 2, headers=ALICE) == [200] * (LIMIT + 2)
    assert "request rate limit unavailable, not enforced" in caplog.text


@pytest.mark.parametrize("app_config", [{}])
def test_no_limit_by_default(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    assert get_state(app).request_limiter is None
    assert statuses(client, 20, headers=ALICE) == [200] * 20
