"""Blobs over HTTP: HEAD and GET with their headers, ranges, If-None-Match, and DELETE."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.wsgi import FileWrapper

from forge_container.digest import parse_digest
from forge_container.state import get_state
from forge_container.storage.paths import blob_path
from forge_container_tests.helpers import basic, error_codes

ALICE = basic("alice", "pw-alice")
DATA = bytes(range(32))
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
URL = f"/v2/alice/app/blobs/{DIGEST}"


def push(client: FlaskClient, image: str, data: bytes, headers: dict[str, str] = ALICE) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = client.post(
        f"/v2/{image}/blobs/uploads/?digest={digest}", data=data, headers=headers
    )
    assert response.status_code == 201
    return digest


@pytest.fixture
def blob(client: FlaskClient, forge: Any) -> None:
    """alice (a public user) has ``DATA`` in alice/app."""
    forge.user("alice")
    push(client, "alice/app", DATA)


def get(client: FlaskClient, url: str = URL, **headers: str) -> Any:
    return client.get(url, headers={**ALICE, **headers}, buffered=True)


@pytest.mark.usefixtures("blob")
def test_head_describes_the_blob(client: FlaskClient) -> None:
    response = client.head(URL, headers=ALICE)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "32"
    assert response.headers["Docker-Content-Digest"] == DIGEST
    assert response.headers["ETag"] == f'"{DIGEST}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Cache-Control"] == "max-age=31536000"


@pytest.mark.usefixtures("blob")
def test_get_sends_the_blob(client: FlaskClient) -> None:
    response = get(client)
    assert response.status_code == 200
    assert response.data == DATA
    assert response.headers["Content-Length"] == "32"
    assert response.headers["Docker-Content-Digest"] == DIGEST
    assert response.headers["ETag"] == f'"{DIGEST}"'
    assert response.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.usefixtures("blob")
def test_get_hands_the_file_to_the_servers_file_wrapper(client: FlaskClient) -> None:
    wrapped: list[FileWrapper] = []

    class Recording(FileWrapper):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            wrapped.append(self)

    response = client.get(
        URL, headers=ALICE, environ_overrides={"wsgi.file_wrapper": Recording}, buffered=True
    )
    assert response.data == DATA
    assert len(wrapped) == 1


def test_anonymous_callers_read_public_blobs(client: FlaskClient, blob: None) -> None:
    assert client.head(URL).status_code == 200


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize("digest", ["sha256:" + "0" * 64, "sha512:" + "0" * 128])
def test_an_unknown_blob(client: FlaskClient, digest: str) -> None:
    url = f"/v2/alice/app/blobs/{digest}"
    assert client.head(url, headers=ALICE).status_code == 404
    response = get(client, url)
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize(
    "digest", ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "nonsense", "sha256"]
)
def test_an_invalid_digest(client: FlaskClient, digest: str) -> None:
    url = f"/v2/alice/app/blobs/{digest}"
    for response in (get(client, url), client.delete(url, headers=ALICE)):
        assert response.status_code == 400
        assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.head(url, headers=ALICE).status_code == 400


def test_only_images_that_link_a_blob_serve_it(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    forge.user("bob")
    push(client, "bob/app", DATA, basic("bob", "pw-bob"))
    assert client.head(f"/v2/bob/app/blobs/{DIGEST}", headers=ALICE).status_code == 200
    assert client.head(URL, headers=ALICE).status_code == 404  # same bytes, not linked here


@pytest.mark.usefixtures("blob")
def test_a_blob_whose_bytes_are_gone_is_unknown(app: Flask, client: FlaskClient) -> None:
    get_state(app).storage.delete(blob_path(parse_digest(DIGEST)))
    assert client.head(URL, headers=ALICE).status_code == 404
    response = get(client)
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-3", 0, 3),
        ("bytes=30-", 30, 31),
        ("bytes=-5", 27, 31),
        ("bytes=-100", 0, 31),
        ("bytes=10-1000", 10, 31),
        ("bytes=31-31", 31, 31),
        ("BYTES = 4 - 7", 4, 7),
    ],
)
def test_a_range(client: FlaskClient, header: str, start: int, end: int) -> None:
    response = get(client, Range=header)
    assert response.status_code == 206
    assert response.data == DATA[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/32"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == DIGEST


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize("header", ["bytes=32-", "bytes=100-200", "bytes=-0"])
def test_an_unsatisfiable_range(client: FlaskClient, header: str) -> None:
    response = get(client, Range=header)
    assert response.status_code == 416
    assert error_codes(response) == ["RANGE_INVALID"]
    assert response.headers["Content-Range"] == "bytes */32"


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize(
    "header", ["bytes=0-1,4-5", "bytes=5-2", "bytes=", "items=0-3", "bytes=a-b", "0-3"]
)
def test_several_or_malformed_ranges_get_the_whole_blob(client: FlaskClient, header: str) -> None:
    response = get(client, Range=header)
    assert response.status_code == 200
    assert response.data == DATA


@pytest.mark.usefixtures("blob")
def test_if_range(client: FlaskClient) -> None:
    assert get(client, Range="bytes=0-3", **{"If-Range": f'"{DIGEST}"'}).status_code == 206
    other = get(client, Range="bytes=0-3", **{"If-Range": '"sha256:other"'})
    assert other.status_code == 200
    assert other.data == DATA


def test_an_empty_blob(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    push(client, "alice/app", b"")
    url = f"/v2/alice/app/blobs/{EMPTY_DIGEST}"
    head = client.head(url, headers=ALICE)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"
    response = get(client, url)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.data == b""
    ranged = get(client, url, Range="bytes=0-")
    assert ranged.status_code == 416
    assert ranged.headers["Content-Range"] == "bytes */0"


@pytest.mark.usefixtures("blob")
@pytest.mark.parametrize("value", [f'"{DIGEST}"', f'W/"{DIGEST}"', "*", f'"x", "{DIGEST}"'])
def test_if_none_match_answers_304(client: FlaskClient, value: str) -> None:
    response = get(client, **{"If-None-Match": value})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == f'"{DIGEST}"'
    assert response.headers["Docker-Content-Digest"] == DIGEST
    head = client.head(URL, headers={**ALICE, "If-None-Match": value})
    assert head.status_code == 304


@pytest.mark.usefixtures("blob")
def test_if_none_match_of_something_else_gets_the_blob(client: FlaskClient) -> None:
    response = get(client, **{"If-None-Match": '"sha256:other"'})
    assert response.status_code == 200
    assert response.data == DATA


@pytest.mark.usefixtures("blob")
def test_if_none_match_does_not_hide_an_unknown_blob(client: FlaskClient) -> None:
    url = "/v2/alice/app/blobs/sha256:" + "0" * 64
    assert get(client, url, **{"If-None-Match": "*"}).status_code == 404


@pytest.mark.usefixtures("blob")
def test_delete_unlinks_the_blob_from_this_image_only(app: Flask, client: FlaskClient) -> None:
    push(client, "alice/other", DATA)
    response = client.delete(URL, headers=ALICE)
    assert response.status_code == 202
    assert client.head(URL, headers=ALICE).status_code == 404
    assert client.head(f"/v2/alice/other/blobs/{DIGEST}", headers=ALICE).status_code == 200
    assert get_state(app).storage.exists(blob_path(parse_digest(DIGEST)))  # bytes stay for GC
    again = client.delete(URL, headers=ALICE)
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]


@pytest.mark.usefixtures("blob")
def test_a_deleted_blob_can_be_pushed_again(client: FlaskClient) -> None:
    assert client.delete(URL, headers=ALICE).status_code == 202
    push(client, "alice/app", DATA)
    assert get(client).data == DATA


def test_deleting_needs_the_delete_permission(client: FlaskClient, forge: Any) -> None:
    forge.user("alice")
    forge.user("bob")
    forge.org("acme", owner="alice")
    forge.member("acme", "bob", "write")
    push(client, "acme/app", DATA)
    response = client.delete(f"/v2/acme/app/blobs/{DIGEST}", headers=basic("bob", "pw-bob"))
    assert response.status_code == 403
    assert error_codes(response) == ["DENIED"]
    assert client.head(f"/v2/acme/app/blobs/{DIGEST}", headers=ALICE).status_code == 200
