"""The health check: 200 when the database, the storage and Redis answer, 503 naming what
failed, and never a path, a URL or a driver's message."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.models import BlobUpload
from forge_container.state import get_state
from forge_container_tests.e2e.conftest import free_port
from forge_container_tests.sibling_app import sibling_app

HEALTH = "/-/registry/health"


def test_healthy_without_redis(client: FlaskClient) -> None:
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"
    assert client.head(HEALTH).status_code == 200


@pytest.fixture
def app_config(request: pytest.FixtureRequest, redis_url: str) -> dict[str, Any]:
    """``indirect`` ``"redis"``: the test Redis is configured."""
    return {"CONTAINER_REGISTRY_REDIS_URL": redis_url} if getattr(request, "param", "") else {}


@pytest.mark.parametrize("app_config", ["redis"], indirect=True)
def test_redis_is_checked_when_configured(client: FlaskClient) -> None:
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "storage": "ok", "redis": "ok"}


def test_a_redis_that_does_not_answer_is_named(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="forge_container.registry.health")
    port = str(free_port())
    with sibling_app(app, CONTAINER_REGISTRY_REDIS_URL=f"redis://127.0.0.1:{port}/0") as node:
        response = node.test_client().get(HEALTH)
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "fail"
    assert body["failing"] == ["redis"]
    assert body["checks"] == {"database": "ok", "storage": "ok", "redis": "failed"}
    assert port not in response.get_data(as_text=True)
    assert "health check redis failed" in caplog.text


def test_storage_that_cannot_be_written_is_named(app: Flask, client: FlaskClient) -> None:
    root = Path(app.config["CONTAINER_REGISTRY_STORAGE_PATH"])
    shutil.rmtree(root / "uploads")
    response = client.get(HEALTH)
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["storage"]
    assert str(root) not in response.get_data(as_text=True)


def test_a_database_without_the_registry_tables_is_named(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        engine = get_state(app).db.engine
        BlobUpload.__table__.drop(engine)  # type: ignore[attr-defined]
    response = client.get(HEALTH)
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["database"]
    assert "container_blob_upload" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "app_config",
    [{"CONTAINER_REGISTRY_HEALTH_PATH": "/healthz", "CONTAINER_REGISTRY_RATE_LIMIT_REQUESTS": 1}],
)
def test_another_path_needs_no_credentials_and_is_never_rate_limited(
    client: FlaskClient, forge: Any
) -> None:
    assert client.get(HEALTH).status_code == 404
    assert [client.get("/healthz").status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_HEALTH_ENABLED": False}])
def test_the_health_check_can_be_turned_off(client: FlaskClient) -> None:
    assert client.get(HEALTH).status_code == 404
