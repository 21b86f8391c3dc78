"""Upload sessions over HTTP: monolithic, POST-then-PUT, streamed and chunked PATCH, mounts."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from forge_container.models import BlobUpload
from forge_container.registry.hashing import state_format
from forge_container.state import get_state
from forge_container.storage.paths import upload_path
from forge_container_tests.helpers import basic, bearer, error_codes

ALICE = basic("alice", "pw-alice")
BOB = basic("bob", "pw-bob")
# Gitea's acceptance vectors (gitea-registry.md, appendix A).
BLOB = base64.b64decode("H4sIAAAJbogA/2IYBaNgFIxYAAgAAP//Lq+17wAEAAA=")
BLOB_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNKNOWN_DIGEST = "sha256:" + "0" * 64


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@pytest.fixture
def alice(forge: Any) -> None:
    forge.user("alice")


def open_session(client: FlaskClient, image: str = "alice/app", query: str = "") -> str:
    response = client.post(f"/v2/{image}/blobs/uploads/{query}", headers=ALICE)
    assert response.status_code == 202, response.data
    location: str = response.headers["Location"]
    return location


def status_range(client: FlaskClient, location: str, headers: dict[str, str] = ALICE) -> str | None:
    response = client.get(location, headers=headers)
    assert response.status_code == 204
    return response.headers.get("Range")


def blob_status(client: FlaskClient, image: str, digest: str) -> int:
    return client.head(f"/v2/{image}/blobs/{digest}", headers=ALICE).status_code


def fetch(client: FlaskClient, image: str, digest: str) -> bytes:
    response = client.get(f"/v2/{image}/blobs/{digest}", headers=ALICE, buffered=True)
    assert response.status_code == 200
    data: bytes = response.data
    return data


class Body(io.RawIOBase):
    """A request body for the test client, which takes its Content-Length from seek/tell.

    ``length`` is the size announced; ``data`` what arrives (shorter: the client went away),
    or ``zeros`` bytes made on demand (a big body the test never holds). ``meanwhile`` runs
    in another thread, as another request with its own DB connection, at the first read.
    """

    def __init__(
        self,
        data: bytes = b"",
        *,
        length: int | None = None,
        zeros: int = 0,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        self.data = io.BytesIO(data)
        self.zeros = zeros
        self.length = length if length is not None else len(data) + zeros
        self.meanwhile = meanwhile
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = offset if whence == io.SEEK_SET else self.length + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.meanwhile is not None:
            thread = threading.Thread(target=self.meanwhile)
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the other request hung: is a transaction open?"
            self.meanwhile = None
        if self.zeros:
            n = min(len(buffer), self.zeros)
            buffer[:n] = bytes(n)
            self.zeros -= n
            return n
        return self.data.readinto(buffer)


# --- opening sessions -------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("path", ["/v2/alice/app/blobs/uploads/", "/v2/alice/app/blobs/uploads"])
def test_post_opens_an_empty_session(client: FlaskClient, path: str) -> None:
    response = client.post(path, headers=ALICE)
    assert response.status_code == 202
    upload_id = response.headers["Docker-Upload-UUID"]
    assert response.headers["Location"] == f"/v2/alice/app/blobs/uploads/{upload_id}"
    assert "Range" not in response.headers  # not "0-0": nothing was received
    assert response.headers["Content-Length"] == "0"
    assert status_range(client, response.headers["Location"]) is None


@pytest.mark.usefixtures("alice")
def test_the_filesystem_takes_chunks_of_any_size(client: FlaskClient) -> None:
    """No ``OCI-Chunk-Min-Length``: see ``test_uploads_s3.py`` for a store that has one."""
    response = client.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
    assert "OCI-Chunk-Min-Length" not in response.headers
    patched = client.patch(response.headers["Location"], data=b"a", headers=ALICE)
    assert patched.status_code == 202
    assert "OCI-Chunk-Min-Length" not in patched.headers


def test_anonymous_callers_cannot_open_sessions(client: FlaskClient, alice: None) -> None:
    response = client.post("/v2/alice/app/blobs/uploads/")
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]


@pytest.mark.usefixtures("alice")
def test_an_unknown_digest_algorithm_is_refused(client: FlaskClient) -> None:
    response = client.post("/v2/alice/app/blobs/uploads/?digest-algorithm=md5", headers=ALICE)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


# --- monolithic uploads -------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("image", ["alice/test", "alice/sub/name"])
def test_monolithic_upload(client: FlaskClient, image: str) -> None:
    response = client.post(
        f"/v2/{image}/blobs/uploads/?digest={BLOB_DIGEST}", data=BLOB, headers=ALICE
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{image}/blobs/{BLOB_DIGEST}"
    assert response.headers["Docker-Content-Digest"] == BLOB_DIGEST
    assert fetch(client, image, BLOB_DIGEST) == BLOB


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize(
    "digest", [UNKNOWN_DIGEST, "sha256:abc", "md5:" + "0" * 32, "nonsense", digest_of(b"x")]
)
def test_a_monolithic_upload_with_a_wrong_digest_stores_nothing(
    app: Flask, client: FlaskClient, digest: str
) -> None:
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=BLOB, headers=ALICE
    )
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert blob_status(client, "alice/app", BLOB_DIGEST) == 404
    assert list(get_state(app).storage.list("")) == []  # no stray upload file either


@pytest.mark.usefixtures("alice")
def test_monolithic_sha512_and_empty_blobs(client: FlaskClient) -> None:
    sha512 = digest_of(BLOB, "sha512")
    assert client.post(f"/v2/alice/app/blobs/uploads/?digest={sha512}", data=BLOB, headers=ALICE)
    assert fetch(client, "alice/app", sha512) == BLOB
    response = client.post(f"/v2/alice/app/blobs/uploads/?digest={EMPTY_DIGEST}", headers=ALICE)
    assert response.status_code == 201
    head = client.head(f"/v2/alice/app/blobs/{EMPTY_DIGEST}", headers=ALICE)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"
    assert fetch(client, "alice/app", EMPTY_DIGEST) == b""


@pytest.mark.usefixtures("alice")
def test_parallel_monolithic_uploads_into_a_new_image(app: Flask) -> None:
    results: dict[int, TestResponse] = {}

    def push(i: int) -> None:
        data = bytes([i])
        results[i] = app.test_client().post(
            f"/v2/alice/parallel/blobs/uploads/?digest={digest_of(data)}", data=data, headers=ALICE
        )

    threads = [threading.Thread(target=push, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, response in results.items():
        assert response.status_code == 201, response.data
        assert response.headers["Docker-Content-Digest"] == digest_of(bytes([i]))
    assert len(results) == 10


# --- sessions: POST then PUT, streamed and chunked PATCH --------------------------------


@pytest.mark.usefixtures("alice")
def test_post_then_put_with_the_whole_blob(client: FlaskClient) -> None:
    location = open_session(client)
    response = client.put(f"{location}?digest={BLOB_DIGEST}", data=BLOB, headers=ALICE)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/alice/app/blobs/{BLOB_DIGEST}"
    assert response.headers["Docker-Content-Digest"] == BLOB_DIGEST
    assert fetch(client, "alice/app", BLOB_DIGEST) == BLOB
    assert client.get(location, headers=ALICE).status_code == 404  # the session is gone


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("image", ["alice/test", "alice/sub/name"])
def test_gitea_chunked_sequence(client: FlaskClient, image: str) -> None:
    location = open_session(client, image)
    upload_id = location.rsplit("/", 1)[1]

    unknown = client.patch(location + "000", data=BLOB, headers=ALICE)
    assert unknown.status_code == 404
    assert error_codes(unknown) == ["BLOB_UPLOAD_UNKNOWN"]

    ahead = client.patch(location, data=BLOB, headers={**ALICE, "Content-Range": "1-10"})
    assert ahead.status_code == 416
    assert error_codes(ahead) == ["BLOB_UPLOAD_INVALID"]
    assert "Range" not in ahead.headers

    first = client.patch(location, data=BLOB[:1], headers=ALICE)
    assert first.status_code == 202
    assert first.headers["Range"] == "0-0"

    rest = client.patch(location, data=BLOB[1:], headers={**ALICE, "Content-Range": "1-31"})
    assert rest.status_code == 202
    assert rest.headers["Docker-Upload-UUID"] == upload_id
    assert rest.headers["Range"] == "0-31"

    status = client.get(rest.headers["Location"], headers=ALICE)
    assert status.status_code == 204
    assert status.headers["Docker-Upload-UUID"] == upload_id
    assert status.headers["Location"] == location
    assert status.headers["Range"] == "0-31"

    done = client.put(f"{location}?digest={BLOB_DIGEST}", headers=ALICE)
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/{image}/blobs/{BLOB_DIGEST}"
    assert done.headers["Docker-Content-Digest"] == BLOB_DIGEST


@pytest.mark.usefixtures("alice")
def test_a_cancelled_session_is_gone_with_its_bytes(app: Flask, client: FlaskClient) -> None:
    location = open_session(client)
    assert status_range(client, location) is None
    client.patch(location, data=b"abc", headers=ALICE)
    response = client.delete(location, headers=ALICE)
    assert response.status_code == 204
    assert client.get(location, headers=ALICE).status_code == 404
    assert client.delete(location, headers=ALICE).status_code == 404
    assert list(get_state(app).storage.list("uploads")) == []


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize(
    "content_range", ["4-7", "bytes=4-7", "bytes 4-7/8", "bytes 4-7/*", " 4-7 "]
)
def test_content_range_spellings(client: FlaskClient, content_range: str) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers={**ALICE, "Content-Range": "0-3"})
    response = client.patch(
        location, data=b"efgh", headers={**ALICE, "Content-Range": content_range}
    )
    assert response.status_code == 202
    assert response.headers["Range"] == "0-7"


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("content_range", ["abc", "4-", "-4", "5-4", "4-7-9", "items 4-7"])
def test_a_malformed_content_range_is_refused(client: FlaskClient, content_range: str) -> None:
    location = open_session(client)
    response = client.patch(
        location, data=b"abcd", headers={**ALICE, "Content-Range": content_range}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    assert status_range(client, location) is None


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("content_range", ["0-3", "8-11", "2-5"])
def test_repeated_or_out_of_order_chunks_get_416_with_the_resume_point(
    client: FlaskClient, content_range: str
) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers={**ALICE, "Content-Range": "0-3"})
    response = client.patch(
        location, data=b"wxyz", headers={**ALICE, "Content-Range": content_range}
    )
    assert response.status_code == 416
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    assert response.headers["Range"] == "0-3"
    assert response.headers["Location"] == location
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    done = client.put(f"{location}?digest={digest_of(b'abcd')}", headers=ALICE)
    assert done.status_code == 201


@pytest.mark.usefixtures("alice")
def test_content_length_must_match_the_range(client: FlaskClient) -> None:
    location = open_session(client)
    response = client.patch(location, data=b"abc", headers={**ALICE, "Content-Range": "0-3"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
    assert status_range(client, location) is None


@pytest.mark.usefixtures("alice")
def test_streamed_patches_append_wherever_the_session_ends(client: FlaskClient) -> None:
    location = open_session(client)
    for piece in (b"ab", b"cd", b"ef"):
        assert client.patch(location, data=piece, headers=ALICE).status_code == 202
    assert status_range(client, location) == "0-5"
    done = client.put(f"{location}?digest={digest_of(b'abcdef')}", headers=ALICE)
    assert done.status_code == 201


@pytest.mark.usefixtures("alice")
def test_a_chunked_transfer_without_content_length(client: FlaskClient) -> None:
    location = open_session(client)
    response = client.patch(
        location,
        input_stream=io.BytesIO(BLOB),
        headers={**ALICE, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 202
    assert response.headers["Range"] == "0-31"
    short = client.patch(
        location,
        input_stream=io.BytesIO(b"xy"),
        headers={**ALICE, "Transfer-Encoding": "chunked", "Content-Range": "32-34"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert short.status_code == 400  # the body is shorter than its Content-Range
    assert status_range(client, location) == "0-31"


@pytest.mark.usefixtures("alice")
def test_a_truncated_body_leaves_the_session_as_it_was(client: FlaskClient) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    response = client.patch(
        location,
        input_stream=Body(b"x" * 50, length=100),
        headers=ALICE,
    )
    assert response.status_code == 400
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    assert status_range(client, location) == "0-3"
    assert client.patch(location, data=b"ef", headers=ALICE).headers["Range"] == "0-5"
    done = client.put(f"{location}?digest={digest_of(b'abcdef')}", headers=ALICE)
    assert done.status_code == 201


# --- finishing ----------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
def test_put_needs_a_valid_digest(client: FlaskClient) -> None:
    location = open_session(client)
    for query in ("", "?digest=", "?digest=sha256:xyz", "?digest=sha1:" + "0" * 40):
        response = client.put(location + query, data=b"abc", headers=ALICE)
        assert response.status_code == 400
        assert error_codes(response) == ["DIGEST_INVALID"]
    assert status_range(client, location) is None


@pytest.mark.usefixtures("alice")
def test_a_digest_mismatch_keeps_the_session_for_a_retry(client: FlaskClient) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    wrong = client.put(f"{location}?digest={digest_of(b'abcdxx')}", data=b"ef", headers=ALICE)
    assert wrong.status_code == 400
    assert error_codes(wrong) == ["DIGEST_INVALID"]
    assert status_range(client, location) == "0-3"  # the last chunk was rolled back
    assert blob_status(client, "alice/app", digest_of(b"abcdef")) == 404
    wrong = client.put(f"{location}?digest={UNKNOWN_DIGEST}", headers=ALICE)
    assert wrong.status_code == 400
    retry = client.put(f"{location}?digest={digest_of(b'abcdef')}", data=b"ef", headers=ALICE)
    assert retry.status_code == 201
    assert fetch(client, "alice/app", digest_of(b"abcdef")) == b"abcdef"


@pytest.mark.usefixtures("alice")
def test_put_accepts_a_last_chunk_with_its_content_range(client: FlaskClient) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    headers = {**ALICE, "Content-Range": "3-4"}
    early = client.put(f"{location}?digest={digest_of(b'abcde')}", data=b"de", headers=headers)
    assert early.status_code == 416
    assert early.headers["Range"] == "0-3"
    headers["Content-Range"] = "4-4"
    done = client.put(f"{location}?digest={digest_of(b'abcde')}", data=b"e", headers=headers)
    assert done.status_code == 201


@pytest.mark.usefixtures("alice")
def test_an_empty_blob_through_a_session(client: FlaskClient) -> None:
    location = open_session(client)
    response = client.put(f"{location}?digest={EMPTY_DIGEST}", headers=ALICE)
    assert response.status_code == 201
    assert fetch(client, "alice/app", EMPTY_DIGEST) == b""


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("query", ["?digest-algorithm=sha512", ""])
def test_sha512_uploads(client: FlaskClient, query: str) -> None:
    location = open_session(client, query=query)
    client.patch(location, data=BLOB[:10], headers=ALICE)
    client.patch(location, data=BLOB[10:], headers={**ALICE, "Content-Range": "10-31"})
    sha512 = digest_of(BLOB, "sha512")
    response = client.put(f"{location}?digest={sha512}", headers=ALICE)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha512
    assert fetch(client, "alice/app", sha512) == BLOB


# --- limits -------------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_MAX_BLOB_SIZE": 10}])
def test_the_blob_size_limit_answers_413_and_keeps_earlier_bytes(client: FlaskClient) -> None:
    big = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest_of(b'x' * 11)}", data=b"x" * 11, headers=ALICE
    )
    assert big.status_code == 413
    assert error_codes(big) == ["SIZE_INVALID"]
    location = open_session(client)
    assert client.patch(location, data=b"x" * 8, headers=ALICE).status_code == 202
    response = client.patch(location, data=b"x" * 3, headers=ALICE)
    assert response.status_code == 413
    assert error_codes(response) == ["SIZE_INVALID"]
    streamed = client.patch(
        location,
        input_stream=io.BytesIO(b"x" * 3),
        headers={**ALICE, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert streamed.status_code == 413
    assert status_range(client, location) == "0-7"
    done = client.put(f"{location}?digest={digest_of(b'x' * 10)}", data=b"xx", headers=ALICE)
    assert done.status_code == 201


@pytest.mark.usefixtures("alice")
def test_a_large_patch_streams_in_flat_memory(client: FlaskClient) -> None:
    size = 64 * 1024 * 1024
    expected = hashlib.sha256()
    for _ in range(size // (1 << 20)):
        expected.update(bytes(1 << 20))
    location = open_session(client)
    tracemalloc.start()
    try:
        response = client.patch(location, input_stream=Body(zeros=size), headers=ALICE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{size - 1}"
    assert peak < 16 * 1024 * 1024
    done = client.put(f"{location}?digest=sha256:{expected.hexdigest()}", headers=ALICE)
    assert done.status_code == 201


# --- who may use a session ----------------------------------------------------------------


def test_a_session_belongs_to_its_image_and_principal(
    app: Flask, client: FlaskClient, forge: Any
) -> None:
    forge.user("alice")
    forge.user("bob")
    forge.user("root", admin=True)
    forge.org("acme", owner="alice")
    forge.member("acme", "bob", "admin")
    response = client.post("/v2/acme/app/blobs/uploads/", headers=ALICE)
    location = response.headers["Location"]
    upload_id = response.headers["Docker-Upload-UUID"]
    elsewhere = f"/v2/acme/other/blobs/uploads/{upload_id}"
    for headers, url in (
        (BOB, location),
        (basic("root", "pw-root"), location),
        (ALICE, elsewhere),
    ):
        for method in ("get", "patch", "put", "delete"):
            answer = getattr(client, method)(
                f"{url}?digest={digest_of(b'a')}", data=b"a", headers=headers
            )
            assert answer.status_code == 404, (headers, url, method)
            assert error_codes(answer) == ["BLOB_UPLOAD_UNKNOWN"]
    assert status_range(client, location) is None
    # The same principal with a bearer token is the same uploader.
    scope = "repository:acme/app:pull,push"
    token = client.get(f"/v2/token?scope={scope}", headers=ALICE).get_json()["token"]
    assert client.patch(location, data=b"a", headers=bearer(token)).status_code == 202


# --- concurrent requests on one session ---------------------------------------------------


@pytest.mark.usefixtures("alice")
def test_a_second_writer_gets_416_while_the_first_streams(app: Flask, client: FlaskClient) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    rival: list[TestResponse] = []

    def patch_meanwhile() -> None:
        rival.append(app.test_client().patch(location, data=b"zz", headers=ALICE))

    body = Body(b"efgh", meanwhile=patch_meanwhile)
    response = client.patch(location, input_stream=body, headers=ALICE)
    assert response.status_code == 202
    assert response.headers["Range"] == "0-7"
    assert rival[0].status_code == 416
    assert rival[0].headers["Range"] == "0-3"
    done = client.put(f"{location}?digest={digest_of(b'abcdefgh')}", headers=ALICE)
    assert done.status_code == 201


@pytest.mark.usefixtures("alice")
def test_cancelling_while_a_chunk_streams(app: Flask, client: FlaskClient) -> None:
    location = open_session(client)
    client.patch(location, data=b"abcd", headers=ALICE)
    cancel: list[TestResponse] = []

    def delete_meanwhile() -> None:
        cancel.append(app.test_client().delete(location, headers=ALICE))

    body = Body(b"efgh", meanwhile=delete_meanwhile)
    response = client.patch(location, input_stream=body, headers=ALICE)
    assert cancel[0].status_code == 204
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
    assert list(get_state(app).storage.list("uploads")) == []


@pytest.mark.usefixtures("alice")
def test_the_hash_state_is_saved_after_each_chunk(app: Flask, client: FlaskClient) -> None:
    location = open_session(client)
    upload_id = location.rsplit("/", 1)[1]
    client.patch(location, data=b"abcd", headers=ALICE)
    with app.app_context():
        row = get_state(app).db.session.get(BlobUpload, upload_id)
        assert row is not None
        assert row.bytes_received == 4
        assert row.hash_state
        assert row.hash_state_format is not None
        assert row.hash_state_format == state_format("sha256")
        assert get_state(app).storage.stat(upload_path(upload_id)) == 4


# --- cross-repository mounts --------------------------------------------------------------


@pytest.fixture
def mountable(client: FlaskClient, forge: Any) -> None:
    """alice (public) has the blob in alice/app; carol (private) has ``gitea`` in carol/app."""
    forge.user("alice")
    forge.user("bob")
    forge.user("carol", public=False)
    for image, data, headers in (
        ("alice/app", BLOB, ALICE),
        ("alice/other", b"other", ALICE),
        ("carol/app", b"gitea", basic("carol", "pw-carol")),
    ):
        url = f"/v2/{image}/blobs/uploads/?digest={digest_of(data)}"
        assert client.post(url, data=data, headers=headers).status_code == 201


def mount(
    client: FlaskClient, query: str, headers: dict[str, str] = BOB, **kw: Any
) -> TestResponse:
    return client.post(f"/v2/bob/app/blobs/uploads/?{query}", headers=headers, **kw)


@pytest.mark.usefixtures("mountable")
@pytest.mark.parametrize("query", [f"mount={BLOB_DIGEST}&from=alice/app", f"mount={BLOB_DIGEST}"])
def test_mounting_a_readable_blob(client: FlaskClient, query: str) -> None:
    response = mount(client, query)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/bob/app/blobs/{BLOB_DIGEST}"
    assert response.headers["Docker-Content-Digest"] == BLOB_DIGEST
    got = client.get(f"/v2/bob/app/blobs/{BLOB_DIGEST}", headers=BOB, buffered=True)
    assert got.data == BLOB


@pytest.mark.usefixtures("mountable")
@pytest.mark.parametrize(
    "query",
    [
        f"mount={digest_of(b'gitea')}&from=carol/app",  # cannot read the source
        f"mount={digest_of(b'gitea')}",  # found only where the caller cannot read
        f"mount={BLOB_DIGEST}&from=alice/other",  # the source does not link it
        f"mount={BLOB_DIGEST}&from=nobody/app",  # unknown owner
        f"mount={BLOB_DIGEST}&from=Alice/App",  # invalid name
        f"mount={UNKNOWN_DIGEST}",
        f"mount={UNKNOWN_DIGEST}&from=unknown/image",
        "mount=nonsense&from=alice/app",
    ],
)
def test_an_impossible_mount_opens_a_session(client: FlaskClient, query: str) -> None:
    response = mount(client, query)
    assert response.status_code == 202
    assert response.headers["Location"].startswith("/v2/bob/app/blobs/uploads/")
    for digest in (BLOB_DIGEST, digest_of(b"gitea")):
        assert client.head(f"/v2/bob/app/blobs/{digest}", headers=BOB).status_code == 404


@pytest.mark.usefixtures("mountable")
def test_an_impossible_mount_with_a_digest_uploads_the_body(client: FlaskClient) -> None:
    gitea = digest_of(b"gitea")
    response = mount(client, f"mount={gitea}&from=carol/app&digest={gitea}", data=b"gitea")
    assert response.status_code == 201
    assert client.head(f"/v2/bob/app/blobs/{gitea}", headers=BOB).status_code == 200


@pytest.mark.usefixtures("mountable")
def test_a_token_mounts_only_from_images_it_grants(client: FlaskClient) -> None:
    def token(*scopes: str) -> dict[str, str]:
        query = "&".join(f"scope={scope}" for scope in scopes)
        return bearer(client.get(f"/v2/token?{query}", headers=BOB).get_json()["token"])

    own = "repository:bob/app:pull,push"
    query = f"mount={BLOB_DIGEST}&from=alice/app"
    assert mount(client, query, token(own)).status_code == 202
    assert mount(client, query, token(own, "repository:alice/app:pull")).status_code == 201


def test_a_writer_without_delete_rights_manages_its_own_sessions(
    client: FlaskClient, forge: Any
) -> None:
    forge.user("founder")
    forge.user("bob")
    forge.org("acme", owner="founder")
    forge.member("acme", "bob", "write")
    opened = client.post("/v2/acme/app/blobs/uploads/", headers=BOB)
    assert opened.status_code == 202
    location = opened.headers["Location"]
    assert client.get(location, headers=BOB).status_code == 204
    assert client.delete(location, headers=BOB).status_code == 204
    # Deleting content still needs the admin role.
    assert client.delete(f"/v2/acme/app/blobs/{BLOB_DIGEST}", headers=BOB).status_code == 403


def test_a_reader_cannot_query_upload_sessions(client: FlaskClient, forge: Any) -> None:
    forge.user("founder")
    forge.user("bob")
    forge.org("acme", owner="founder")
    forge.member("acme", "bob", "read")
    response = client.get(f"/v2/acme/app/blobs/uploads/{'0' * 8}", headers=BOB)
    assert response.status_code == 403
    assert error_codes(response) == ["DENIED"]
