"""Prometheus metrics: only for the scraper's bearer token; requests, bytes and latency by
route, open upload sessions, garbage collection and quota refusals."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from forge_container.config import ConfigError
from forge_container.digest import digest_of
from forge_container.models import utcnow
from forge_container.registry import gc, quota
from forge_container.state import get_state
from forge_container_tests.helpers import basic, bearer, error_codes, push_blob
from forge_container_tests.sibling_app import sibling_app

ALICE = basic("alice", "pw-alice")
TOKEN = "scraper-token-0123456789"
METRICS = "/-/registry/metrics"
ENABLED = {"CONTAINER_REGISTRY_METRICS_ENABLED": True, "CONTAINER_REGISTRY_METRICS_TOKEN": TOKEN}
BLOB = b"metrics blob " * 100

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(ENABLED)


def scrape(client: FlaskClient) -> Samples:
    response = client.get(METRICS, headers=bearer(TOKEN))
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_only_the_scrapers_token_sees_the_metrics(client: FlaskClient) -> None:
    for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": f"Basic {TOKEN}"}):
        response = client.get(METRICS, headers=headers)
        assert response.status_code == 404
        assert b"forge_container" not in response.data
    response = client.get(METRICS, headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"


def test_requests_bytes_and_latency_by_route(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    client.get("/v2/", buffered=True)
    client.get("/v2/", buffered=True)
    digest = push_blob(client, BLOB, headers=ALICE)
    response = client.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE, buffered=True)
    assert response.data == BLOB

    samples = scrape(client)
    requests = "forge_container_requests_total"
    assert value(samples, requests, route="version_check", method="GET", status="401") == 2
    assert value(samples, requests, route="start_upload", method="POST", status="201") == 1
    assert value(samples, requests, route="get_blob", method="GET", status="200") == 1
    assert value(samples, "forge_container_request_bytes_total", route="start_upload") == len(BLOB)
    assert value(samples, "forge_container_response_bytes_total", route="get_blob") == len(BLOB)
    duration = "forge_container_request_duration_seconds_count"
    assert value(samples, duration, route="get_blob", method="GET") == 1
    assert not any(dict(labels).get("route") == "metrics" for _, labels in samples)


def test_open_upload_sessions_are_counted(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    assert value(scrape(client), "forge_container_upload_sessions") == 0
    locations = [
        client.post("/v2/alice/app/blobs/uploads/", headers=ALICE).headers["Location"]
        for _ in range(2)
    ]
    assert value(scrape(client), "forge_container_upload_sessions") == 2
    assert client.delete(locations[0], headers=ALICE).status_code == 204
    assert value(scrape(client), "forge_container_upload_sessions") == 1


def test_garbage_collection_runs_and_bytes_freed(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    push_blob(client, BLOB, headers=ALICE)  # a layer no manifest uses
    later = utcnow() + timedelta(hours=2)
    with app.app_context():
        state = get_state()
        gc.collect_garbage(
            state.db.session(), state.storage, state.settings, now=later, dry_run=True
        )
        assert value(scrape(client), "forge_container_gc_runs_total") == 0
        report = gc.collect_garbage(state.db.session(), state.storage, state.settings, now=later)
    assert (report.blobs, report.bytes) == (1, len(BLOB))
    samples = scrape(client)
    assert value(samples, "forge_container_gc_runs_total") == 1
    assert value(samples, "forge_container_gc_blobs_removed_total") == 1
    assert value(samples, "forge_container_gc_freed_bytes_total") == len(BLOB)


def test_quota_refusals_by_quota(app: Flask, client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    owner_id = forge.owner("alice").id
    with app.app_context():
        quota.set_override(get_state().db.session(), owner_id, {quota.Quota.BLOB_SIZE: 10})
    digest = digest_of(BLOB)
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=BLOB, headers=ALICE
    )
    assert response.status_code == 403
    assert error_codes(response) == ["DENIED"]
    samples = scrape(client)
    assert value(samples, "forge_container_quota_refusals_total", quota="blob_size") == 1
    assert value(samples, "forge_container_quota_refusals_total", quota="total_size") == 0


def test_each_app_counts_its_own(app: Flask, client: FlaskClient) -> None:
    client.get("/v2/", buffered=True)
    with sibling_app(app) as node:
        other = node.test_client()
        samples = scrape(other)
    assert (
        value(
            samples,
            "forge_container_requests_total",
            route="version_check",
            method="GET",
            status="401",
        )
        == 0
    )


@pytest.mark.parametrize("app_config", [{}])
def test_off_by_default(app: Flask, client: FlaskClient) -> None:
    assert get_state(app).metrics is None
    assert client.get(METRICS, headers=bearer(TOKEN)).status_code == 404


def test_prometheus_client_is_imported_only_when_metrics_are_enabled(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from forge_container.demo import create_app\n"
        "create_app({'SECRET_KEY': 'k' * 32, 'SQLALCHEMY_DATABASE_URI': 'sqlite://'})\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "FORGE_DEMO_INSTANCE_PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("app_config", [{}])
def test_without_prometheus_client_enabling_metrics_is_a_config_error(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "forge_container.metrics", raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with (
        pytest.raises(ConfigError, match=r"install forge-container\[metrics\]"),
        sibling_app(app, **ENABLED),
    ):
        pass
