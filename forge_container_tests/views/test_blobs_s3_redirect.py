"""Blob downloads on S3 with ``CONTAINER_REGISTRY_S3_REDIRECT``: a 307 to a presigned URL.

Against the session's real S3 server (SeaweedFS); the presigned URL is fetched for real.
"""

from __future__ import annotations

import hashlib
import urllib.request
from typing import Any

import pytest
from flask.testing import FlaskClient

from forge_container_tests.helpers import basic, error_codes

ALICE = basic("alice", "pw-alice")
DATA = b"layer bytes on s3 " * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
URL = f"/v2/alice/app/blobs/{DIGEST}"


@pytest.fixture
def blob(client: FlaskClient, forge: Any) -> None:
    """alice (a public user) has ``DATA`` in alice/app."""
    forge.user("alice")
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={DIGEST}", data=DATA, headers=ALICE
    )
    assert response.status_code == 201


def get(client: FlaskClient, url: str = URL, **headers: str) -> Any:
    return client.get(url, headers={**ALICE, **headers}, buffered=True)


class TestRedirects:
    @pytest.fixture
    def app_config(self, s3_config: dict[str, Any]) -> dict[str, Any]:
        return {
            **s3_config,
            "CONTAINER_REGISTRY_S3_REDIRECT": True,
            "CONTAINER_REGISTRY_S3_REDIRECT_EXPIRY": 120,
        }

    @pytest.mark.usefixtures("blob")
    def test_a_whole_blob_get_redirects_to_a_presigned_url(self, client: FlaskClient) -> None:
        response = get(client)
        assert response.status_code == 307
        assert response.data == b""
        assert response.headers["Docker-Content-Digest"] == DIGEST
        location = response.headers["Location"]
        assert "X-Amz-Signature=" in location
        assert "X-Amz-Expires=120" in location
        with urllib.request.urlopen(location, timeout=30) as fetched:
            assert fetched.read() == DATA

    @pytest.mark.usefixtures("blob")
    def test_head_ranges_and_304_stay_in_the_app(self, client: FlaskClient) -> None:
        head = client.head(URL, headers=ALICE)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(DATA))
        ranged = get(client, Range="bytes=3-9")
        assert (ranged.status_code, ranged.data) == (206, DATA[3:10])
        not_modified = get(client, **{"If-None-Match": f'"{DIGEST}"'})
        assert not_modified.status_code == 304
        assert "Location" not in not_modified.headers

    def test_no_redirect_without_access(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        forge.user("carol", public=False)
        carol = basic("carol", "pw-carol")
        pushed = client.post(
            f"/v2/carol/secret/blobs/uploads/?digest={DIGEST}", data=DATA, headers=carol
        )
        assert pushed.status_code == 201
        url = f"/v2/carol/secret/blobs/{DIGEST}"
        for response, status in ((client.get(url), 401), (get(client, url), 404)):
            assert response.status_code == status
            assert "Location" not in response.headers
        assert client.get(url, headers=carol).status_code == 307

    def test_an_image_that_does_not_link_the_blob(self, client: FlaskClient, forge: Any) -> None:
        forge.user("alice")
        response = get(client)
        assert response.status_code == 404
        assert error_codes(response) == ["BLOB_UNKNOWN"]
        assert "Location" not in response.headers


class TestWithoutRedirects:
    @pytest.fixture
    def app_config(self, s3_config: dict[str, Any]) -> dict[str, Any]:
        return s3_config

    @pytest.mark.usefixtures("blob")
    def test_the_bytes_stream_through_the_app(self, client: FlaskClient) -> None:
        response = get(client)
        assert response.status_code == 200
        assert response.data == DATA
        assert response.headers["Docker-Content-Digest"] == DIGEST
