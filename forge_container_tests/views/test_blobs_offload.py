"""Blob downloads handed to the front server: ``X-Accel-Redirect`` (nginx) and ``X-Sendfile``.

The app still decides who may read what; only whole-blob GETs leave without its bytes.
nginx itself is exercised in ``e2e/test_nginx_offload.py``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.digest import parse_digest
from forge_container.state import get_state
from forge_container.storage.paths import blob_path
from forge_container_tests.helpers import basic, error_codes

ALICE = basic("alice", "pw-alice")
DATA = bytes(range(32)) * 3
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
HEX = DIGEST.removeprefix("sha256:")
URL = f"/v2/alice/app/blobs/{DIGEST}"


def push(client: FlaskClient, image: str, headers: dict[str, str] = ALICE) -> None:
    response = client.post(
        f"/v2/{image}/blobs/uploads/?digest={DIGEST}", data=DATA, headers=headers
    )
    assert response.status_code == 201


@pytest.fixture
def blob(client: FlaskClient, forge: Any) -> None:
    """alice (a public user) has ``DATA`` in alice/app."""
    forge.user("alice")
    push(client, "alice/app")


def get(client: FlaskClient, url: str = URL, **headers: str) -> Any:
    return client.get(url, headers={**ALICE, **headers}, buffered=True)


def assert_blob_headers(response: Any) -> None:
    assert response.headers["Docker-Content-Digest"] == DIGEST
    assert response.headers["ETag"] == f'"{DIGEST}"'
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Cache-Control"] == "max-age=31536000"


def assert_served_by_the_app(response: Any, status: int = 200) -> None:
    assert response.status_code == status
    assert "X-Accel-Redirect" not in response.headers
    assert "X-Sendfile" not in response.headers


# -- X-Accel-Redirect ---------------------------------------------------------------------------


class TestAccelRedirect:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-accel-redirect"}

    @pytest.mark.usefixtures("blob")
    def test_a_whole_blob_get_names_the_internal_location(self, client: FlaskClient) -> None:
        response = get(client)
        assert response.status_code == 200
        assert response.data == b""
        assert response.headers["Content-Length"] == "0"
        assert response.headers["X-Accel-Redirect"] == f"/_container_blobs/sha256/{HEX[:2]}/{HEX}"
        assert "X-Accel-Limit-Rate" not in response.headers
        assert_blob_headers(response)

    @pytest.mark.usefixtures("blob")
    def test_the_internal_location_maps_to_the_blobs_directory(self, app: Flask) -> None:
        target = f"{get_state(app).settings.storage_path}/blobs/sha256/{HEX[:2]}/{HEX}"
        with open(target, "rb") as stored:
            assert stored.read() == DATA

    @pytest.mark.usefixtures("blob")
    @pytest.mark.parametrize(
        "headers",
        [
            {"Range": "bytes=0-9"},
            {"Range": "bytes=5-"},
            {"Range": "bytes=abc"},  # malformed: ignored, the whole blob, still from the app
            {"Range": "bytes=0-9", "If-Range": '"sha256:other"'},
        ],
    )
    def test_range_requests_stay_in_the_app(
        self, client: FlaskClient, headers: dict[str, str]
    ) -> None:
        response = get(client, **headers)
        assert response.status_code in (200, 206)
        assert_served_by_the_app(response, response.status_code)
        assert response.data in (DATA, DATA[:10], DATA[5:])
        assert len(response.data) == int(response.headers["Content-Length"])

    @pytest.mark.usefixtures("blob")
    def test_an_unsatisfiable_range_stays_in_the_app(self, client: FlaskClient) -> None:
        response = get(client, Range="bytes=1000-")
        assert_served_by_the_app(response, 416)
        assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
        assert error_codes(response) == ["RANGE_INVALID"]

    @pytest.mark.usefixtures("blob")
    def test_head_and_304_stay_in_the_app(self, client: FlaskClient) -> None:
        head = client.head(URL, headers=ALICE)
        assert_served_by_the_app(head)
        assert head.headers["Content-Length"] == str(len(DATA))
        not_modified = get(client, **{"If-None-Match": f'"{DIGEST}"'})
        assert_served_by_the_app(not_modified, 304)
        assert not_modified.data == b""

    def test_only_callers_who_may_pull_are_redirected(
        self, client: FlaskClient, forge: Any
    ) -> None:
        forge.user("alice")
        forge.user("carol", public=False)
        push(client, "carol/secret", basic("carol", "pw-carol"))
        url = f"/v2/carol/secret/blobs/{DIGEST}"
        anonymous = client.get(url)
        assert anonymous.status_code == 401
        assert "X-Accel-Redirect" not in anonymous.headers
        stranger = get(client, url)
        assert stranger.status_code == 404
        assert "X-Accel-Redirect" not in stranger.headers
        owner = client.get(url, headers=basic("carol", "pw-carol"))
        assert owner.headers["X-Accel-Redirect"].endswith(f"/{HEX}")

    def test_an_image_that_does_not_link_the_blob(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        push(client, "alice/app")
        response = get(client, f"/v2/alice/other/blobs/{DIGEST}")
        assert_served_by_the_app(response, 404)
        assert error_codes(response) == ["BLOB_UNKNOWN"]

    @pytest.mark.usefixtures("blob")
    def test_missing_bytes_are_an_unknown_blob_not_a_redirect(
        self, app: Flask, client: FlaskClient
    ) -> None:
        get_state(app).storage.delete(blob_path(parse_digest(DIGEST)))
        response = get(client)
        assert_served_by_the_app(response, 404)
        assert error_codes(response) == ["BLOB_UNKNOWN"]


class TestAccelRedirectWithAPrefix:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {
            "CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-accel-redirect",
            "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX": "/internal/registry-blobs/",
        }

    @pytest.mark.usefixtures("blob")
    def test_the_internal_location_is_the_prefix(self, client: FlaskClient) -> None:
        response = get(client)
        expected = f"/internal/registry-blobs/sha256/{HEX[:2]}/{HEX}"
        assert response.headers["X-Accel-Redirect"] == expected


class TestAccelRedirectWithASpeedCap:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {
            "CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-accel-redirect",
            "CONTAINER_REGISTRY_BANDWIDTH_DOWNLOAD": 1_000_000,
        }

    @pytest.mark.usefixtures("blob")
    def test_nginx_is_told_the_cap(self, client: FlaskClient) -> None:
        response = get(client)
        assert response.data == b""
        assert response.headers["X-Accel-Redirect"].endswith(f"/{HEX}")
        assert response.headers["X-Accel-Limit-Rate"] == "1000000"


# -- X-Sendfile ---------------------------------------------------------------------------------


class TestSendfile:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-sendfile"}

    @pytest.mark.usefixtures("blob")
    def test_a_whole_blob_get_names_the_file(self, app: Flask, client: FlaskClient) -> None:
        response = get(client)
        assert response.status_code == 200
        assert response.data == b""
        assert "X-Accel-Redirect" not in response.headers
        assert_blob_headers(response)
        path = response.headers["X-Sendfile"]
        root = os.path.realpath(get_state(app).settings.storage_path)
        assert os.path.isabs(path)
        assert path == os.path.join(root, "blobs", "sha256", HEX[:2], HEX)
        with open(path, "rb") as stored:
            assert stored.read() == DATA

    @pytest.mark.usefixtures("blob")
    def test_ranges_head_and_304_stay_in_the_app(self, client: FlaskClient) -> None:
        ranged = get(client, Range="bytes=2-5")
        assert_served_by_the_app(ranged, 206)
        assert ranged.data == DATA[2:6]
        assert ranged.headers["Content-Range"] == f"bytes 2-5/{len(DATA)}"
        assert_served_by_the_app(client.head(URL, headers=ALICE))
        assert_served_by_the_app(get(client, **{"If-None-Match": f'"{DIGEST}"'}), 304)

    @pytest.mark.usefixtures("blob")
    def test_missing_bytes_are_an_unknown_blob(self, app: Flask, client: FlaskClient) -> None:
        get_state(app).storage.delete(blob_path(parse_digest(DIGEST)))
        response = get(client)
        assert_served_by_the_app(response, 404)
        assert error_codes(response) == ["BLOB_UNKNOWN"]


class TestSendfileWithASpeedCap:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {
            "CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-sendfile",
            "CONTAINER_REGISTRY_BANDWIDTH_DOWNLOAD": 1_000_000,
        }

    @pytest.mark.usefixtures("blob")
    def test_the_app_streams_so_the_cap_holds(self, client: FlaskClient) -> None:
        response = get(client)
        assert_served_by_the_app(response)
        assert response.data == DATA


# -- no offload ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("blob")
def test_by_default_the_app_sends_the_bytes(client: FlaskClient) -> None:
    response = get(client)
    assert_served_by_the_app(response)
    assert response.data == DATA
    assert_blob_headers(response)
