"""Access logs: one structured line per ``/v2`` request, written when its body is closed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.access_log import JsonFormatter, RequestRecord, log_request
from forge_container.mediatypes import OCI_CONFIG, OCI_MANIFEST
from forge_container_tests.helpers import basic, push_blob
from forge_container_tests.manifest_fixtures import config_bytes, descriptor, image_manifest

ALICE = basic("alice", "pw-alice")
BLOB = b"access log blob " * 64
LOGGER = "forge_container.access"


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The ``access`` fields of every access log record so far."""
    return [r.access for r in caplog.records if r.name == LOGGER]  # type: ignore[attr-defined]


def test_an_upload_and_a_download_log_who_moved_what(
    client: FlaskClient, forge: Any, access: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    digest = push_blob(client, BLOB, headers=ALICE)
    response = client.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE, buffered=True)
    assert response.data == BLOB

    upload, download = lines(access)
    assert upload["method"] == "POST"
    assert upload["route"] == "start_upload"
    assert upload["status"] == 201
    assert upload["bytes_in"] == len(BLOB)
    assert upload["principal"] == "alice"
    assert upload["image"] == "alice/app"
    assert upload["reference"] == digest
    assert upload["address"] == "127.0.0.1"
    assert upload["duration_ms"] >= 0
    assert download["route"] == "get_blob"
    assert (download["status"], download["bytes_in"]) == (200, 0)
    assert download["bytes_out"] == len(BLOB)
    assert download["reference"] == digest


def test_the_message_is_key_value_pairs(
    client: FlaskClient, forge: Any, access: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    client.get("/v2/alice/app/tags/list", headers=ALICE, buffered=True)
    [record] = [r for r in access.records if r.name == LOGGER]
    message = record.getMessage()
    assert message.startswith("method=GET route=list_tags status=404 duration_ms=")
    assert "principal=alice image=alice/app reference=- address=127.0.0.1" in message
    assert message.endswith("path=/v2/alice/app/tags/list")


def test_a_manifest_by_tag_logs_the_tag(
    app: Flask, client: FlaskClient, forge: Any, access: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    config = config_bytes()
    layer = b"layer"
    for data in (config, layer):
        push_blob(client, data, headers=ALICE)
    manifest = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(layer, OCI_CONFIG)])
    response = client.put(
        "/v2/alice/app/manifests/v1",
        data=manifest,
        headers={**ALICE, "Content-Type": OCI_MANIFEST},
        buffered=True,
    )
    assert response.status_code == 201, response.data
    line = lines(access)[-1]
    assert (line["route"], line["reference"], line["bytes_in"]) == (
        "put_manifest",
        "v1",
        len(manifest),
    )


def test_anonymous_refusals_and_unknown_routes_are_logged_too(
    client: FlaskClient, access: pytest.LogCaptureFixture
) -> None:
    client.get("/v2/", buffered=True)
    client.get("/v2/nowhere", buffered=True)
    refused, unknown = lines(access)
    assert (refused["route"], refused["status"], refused["principal"]) == (
        "version_check",
        401,
        None,
    )
    assert (unknown["route"], unknown["status"], unknown["image"]) == ("unmatched", 404, None)


def test_the_token_endpoint_is_a_registry_request(
    client: FlaskClient, access: pytest.LogCaptureFixture
) -> None:
    response = client.get("/v2/token?service=forge-container", buffered=True)
    assert response.status_code == 200
    [line] = lines(access)
    assert (line["route"], line["status"]) == ("token", 200)
    assert line["bytes_out"] == len(response.data)


def test_one_line_per_request_and_none_outside_v2(
    client: FlaskClient, forge: Any, access: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    for _ in range(3):
        client.get("/v2/", headers=ALICE, buffered=True)
    client.get("/-/registry/health", buffered=True)
    client.get("/login", buffered=True)
    assert [line["route"] for line in lines(access)] == ["version_check"] * 3


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_PROXY_COUNT": 1}])
def test_the_address_is_the_clients_behind_a_trusted_proxy(
    client: FlaskClient, access: pytest.LogCaptureFixture
) -> None:
    client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2"}, buffered=True)
    assert lines(access)[0]["address"] == "10.0.0.2"
    client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.7"}, buffered=True)
    assert lines(access)[1]["address"] == "203.0.113.7"


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_ACCESS_LOG": False}])
def test_access_logs_can_be_turned_off(
    client: FlaskClient, access: pytest.LogCaptureFixture
) -> None:
    client.get("/v2/", buffered=True)
    assert lines(access) == []


def test_values_with_spaces_or_quotes_are_quoted(access: pytest.LogCaptureFixture) -> None:
    record = RequestRecord(method="GET", path='/v2/a b/"x"', started=0.0, status=404)
    log_request(record)
    [entry] = [r for r in access.records if r.name == LOGGER]
    assert 'path="/v2/a b/\\"x\\""' in entry.getMessage()
    assert "principal=-" in entry.getMessage()


def test_the_json_formatter_writes_one_object_per_line(
    client: FlaskClient, forge: Any, access: pytest.LogCaptureFixture
) -> None:
    forge.user("alice")
    client.get("/v2/", headers=ALICE, buffered=True)
    [record] = [r for r in access.records if r.name == LOGGER]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["logger"] == LOGGER
    assert (entry["route"], entry["status"], entry["principal"]) == ("version_check", 200, "alice")
    other = logging.LogRecord("x", logging.WARNING, __file__, 1, "plain %s", ("text",), None)
    assert json.loads(JsonFormatter().format(other))["message"] == "plain text"
