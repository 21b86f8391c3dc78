"""Upload sessions over HTTP on the ``s3`` backend: the chunk minimum, chunked pushes, cancels.

Against the session's real S3 server, with 5 MiB parts.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from forge_container.config_storage import S3_MIN_PART_SIZE
from forge_container.state import get_state
from forge_container_tests.helpers import error_codes
from forge_container_tests.s3_server import Bucket
from forge_container_tests.views.test_uploads import ALICE, Body, digest_of, fetch, open_session

PART = S3_MIN_PART_SIZE
pytestmark = pytest.mark.usefixtures("alice")


@pytest.fixture
def app_config(s3_config: dict[str, Any]) -> dict[str, Any]:
    return s3_config


@pytest.fixture
def alice(forge: Any) -> None:
    forge.user("alice")


def test_sessions_advertise_the_part_size_as_the_chunk_minimum(client: FlaskClient) -> None:
    response = client.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
    assert response.status_code == 202
    assert response.headers["OCI-Chunk-Min-Length"] == str(PART)
    patched = client.patch(response.headers["Location"], data=b"abc", headers=ALICE)
    assert patched.status_code == 202
    assert patched.headers["OCI-Chunk-Min-Length"] == str(PART)
    status = client.get(response.headers["Location"], headers=ALICE)
    assert "OCI-Chunk-Min-Length" not in status.headers  # only on the 202 answers


def test_a_chunked_push_in_chunks_below_the_minimum(client: FlaskClient, s3_bucket: Bucket) -> None:
    data = random.Random(1).randbytes(PART + 12345)
    location = open_session(client)
    step = 1024 * 1024
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        end = start + len(chunk) - 1
        response = client.patch(
            location, data=chunk, headers={**ALICE, "Content-Range": f"{start}-{end}"}
        )
        assert response.status_code == 202, response.data
        assert response.headers["Range"] == f"0-{end}"
    digest = digest_of(data)
    done = client.put(f"{location}?digest={digest}", headers=ALICE)
    assert done.status_code == 201, done.data
    assert fetch(client, "alice/app", digest) == data
    assert s3_bucket.multipart_uploads() == []
    assert [key for key in s3_bucket.objects() if not key.startswith("blobs/")] == []


def test_a_monolithic_push(client: FlaskClient) -> None:
    data = random.Random(2).randbytes(PART + 1)
    digest = digest_of(data)
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=data, headers=ALICE
    )
    assert response.status_code == 201
    assert fetch(client, "alice/app", digest) == data
    ranged = client.get(
        f"/v2/alice/app/blobs/{digest}", headers={**ALICE, "Range": f"bytes={PART}-"}
    )
    assert ranged.status_code == 206
    assert ranged.data == data[PART:]


def test_a_cancelled_session_leaves_nothing_in_the_bucket(
    client: FlaskClient, s3_bucket: Bucket
) -> None:
    location = open_session(client)
    client.patch(location, data=bytes(PART + 1), headers=ALICE)
    assert len(s3_bucket.multipart_uploads()) == 1
    assert client.delete(location, headers=ALICE).status_code == 204
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.objects() == []


def test_cancelling_while_a_chunk_streams(
    app: Flask, client: FlaskClient, s3_bucket: Bucket
) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    cancel: list[TestResponse] = []

    def delete_meanwhile() -> None:
        cancel.append(app.test_client().delete(location, headers=ALICE))

    response = client.patch(
        location, input_stream=Body(zeros=PART + 1, meanwhile=delete_meanwhile), headers=ALICE
    )
    assert cancel[0].status_code == 204
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
    assert list(get_state(app).storage.list("uploads")) == []
    assert s3_bucket.multipart_uploads() == []
