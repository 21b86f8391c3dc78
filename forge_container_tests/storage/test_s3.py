"""What only the ``s3`` driver does: its keys, multipart uploads, presigned URLs and errors.

Against the session's real S3 server (SeaweedFS); every test has a key prefix of its own.
The contract every driver keeps is in ``test_driver_contract.py``.
"""

from __future__ import annotations

import multiprocessing
import random
import urllib.request
import warnings
from typing import Any

import pytest

from forge_container.config_storage import S3_MIN_PART_SIZE
from forge_container.digest import digest_of
from forge_container.storage import InvalidPath, StorageError
from forge_container.storage.paths import blob_path, upload_path
from forge_container.storage.s3 import S3Driver
from forge_container_tests.s3_server import Bucket, S3Server

MIB = 1 << 20
PART = S3_MIN_PART_SIZE


def noise(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def driver(s3_driver: S3Driver) -> S3Driver:
    return s3_driver


def tails(keys: list[str]) -> list[str]:
    return [key for key in keys if ".data.tail-" in key]


def test_blobs_and_uploads_are_keys_under_the_prefix(driver: S3Driver, s3_bucket: Bucket) -> None:
    blob = blob_path(digest_of(b"blob"))
    driver.write_bytes(blob, b"blob")
    driver.append(upload_path("u1"), [b"abc"])
    keys = s3_bucket.objects()
    assert blob in keys
    assert "uploads/u1/.data.state" in keys
    assert len(tails(keys)) == 1
    assert len(keys) == 3
    assert sorted(driver.list("")) == [blob, upload_path("u1")]


def test_a_chunk_smaller_than_a_part_waits_in_a_tail_object(
    driver: S3Driver, s3_bucket: Bucket
) -> None:
    path = upload_path("small")
    first, second = noise(MIB, 1), noise(MIB, 2)
    driver.append(path, [first])
    (tail,) = tails(s3_bucket.objects())
    assert s3_bucket.get(tail) == first
    assert s3_bucket.multipart_uploads() == []
    driver.append(path, [second])
    (tail,) = tails(s3_bucket.objects())  # the new tail replaced the old one
    assert s3_bucket.get(tail) == first + second
    assert s3_bucket.multipart_uploads() == []


def test_full_parts_go_to_one_multipart_upload(driver: S3Driver, s3_bucket: Bucket) -> None:
    path = upload_path("parts")
    driver.append(path, [noise(2 * PART + 10, 1)])
    assert s3_bucket.multipart_uploads() == ["uploads/parts/data"]
    assert s3_bucket.parts("uploads/parts/data") == [PART, PART]
    (tail,) = tails(s3_bucket.objects())
    assert len(s3_bucket.get(tail)) == 10
    driver.append(path, [noise(PART, 2)])
    assert s3_bucket.multipart_uploads() == ["uploads/parts/data"]
    assert s3_bucket.parts("uploads/parts/data") == [PART, PART, PART]
    assert driver.stat(path) == 3 * PART + 10


def test_a_commit_leaves_only_the_blob(driver: S3Driver, s3_bucket: Bucket) -> None:
    data = noise(PART + 123, 3)
    path = upload_path("done")
    driver.append(path, [data])
    target = blob_path(digest_of(data))
    driver.commit(path, target)
    assert s3_bucket.objects() == [target]
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.get(target) == data


def test_delete_aborts_every_multipart_upload_of_the_file(
    driver: S3Driver, s3_bucket: Bucket, s3_server: S3Server
) -> None:
    path = upload_path("cancelled")
    driver.append(path, [noise(PART + 1, 4)])
    # One a crashed request started and never recorded.
    s3_bucket.client.create_multipart_upload(
        Bucket=s3_server.bucket, Key=f"{s3_bucket.prefix}/uploads/cancelled/data"
    )
    assert len(s3_bucket.multipart_uploads()) == 2
    assert driver.delete(path) is True
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.objects() == []


def test_a_failed_append_leaves_the_saved_state_and_no_new_tail(
    driver: S3Driver, s3_bucket: Bucket
) -> None:
    path = upload_path("failing")
    driver.append(path, [b"kept"])
    before = s3_bucket.objects()

    def body() -> Any:
        yield noise(2 * PART + 5, 5)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        driver.append(path, body())
    assert s3_bucket.objects() == before
    assert driver.read_bytes(path) == b"kept"


def test_reading_an_upload_finishes_its_multipart_upload(
    driver: S3Driver, s3_bucket: Bucket
) -> None:
    path = upload_path("reread")
    data = noise(PART + 7, 6)
    driver.append(path, [data])
    assert driver.read_bytes(path) == data
    # The parts became one object, which the next append copies into a new upload.
    assert s3_bucket.objects() == ["uploads/reread/data"]
    assert s3_bucket.multipart_uploads() == []
    driver.append(path, [b"+more"])
    assert s3_bucket.parts("uploads/reread/data") == [PART + 7]
    assert driver.read_bytes(path) == data + b"+more"


def test_a_commit_interrupted_after_finishing_the_parts_can_be_redone(
    driver: S3Driver, s3_bucket: Bucket
) -> None:
    path = upload_path("crashed")
    data = noise(PART + 99, 7)
    driver.append(path, [data])
    state = s3_bucket.get("uploads/crashed/.data.state")
    driver.open_read(path).close()  # finishes the multipart upload, drops the state
    s3_bucket.put("uploads/crashed/.data.state", state)  # as if a crash kept it
    assert driver.stat(path) == len(data)
    target = blob_path(digest_of(data))
    driver.commit(path, target)
    assert s3_bucket.get(target) == data
    assert s3_bucket.objects() == [target]


def test_a_blob_above_the_copy_object_limit_is_committed_part_by_part(
    driver: S3Driver, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CopyObject stops at 5 GiB; above it, the commit uses boto3's managed copy. The
    limit is lowered here so that a blob of two parts takes that path (above boto3's 8 MiB
    threshold, so the copy itself goes part by part)."""
    monkeypatch.setattr("forge_container.storage.s3.S3_MAX_PART_SIZE", MIB)
    calls: list[str] = []
    client = driver._clients.get()

    def counted(name: str) -> Any:
        original = getattr(client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        return call

    for name in ("copy_object", "upload_part_copy"):
        monkeypatch.setattr(client, name, counted(name))
    data = noise(2 * PART + 321, 8)
    path = upload_path("huge")
    driver.append(path, [data])
    target = blob_path(digest_of(data))
    driver.commit(path, target)
    assert s3_bucket.get(target) == data
    assert s3_bucket.objects() == [target]
    assert "copy_object" not in calls and calls.count("upload_part_copy") >= 2


def _read_in_child(driver: S3Driver, inherited: Any, path: str, rounds: int, out: Any) -> None:
    try:
        ok = all(driver.read_bytes(path) == noise(PART, 9) for _ in range(rounds))
        driver.write_bytes(blob_path(digest_of(b"from the child")), b"from the child")
        out.send((ok, driver._clients.get() is not inherited))
    except BaseException as exc:  # the parent reports it
        out.send(repr(exc))


def test_a_forked_worker_makes_its_own_client(driver: S3Driver) -> None:
    """gunicorn forks workers after the app (and maybe its client) exists: a client shared
    across fork would share pooled sockets, and parent and child would read each other's
    answers. Both read at once here, and both get their own bytes."""
    path = blob_path(digest_of(noise(PART, 9)))
    driver.write_bytes(path, noise(PART, 9))
    assert driver.read_bytes(path) == noise(PART, 9)  # the parent's pool holds a connection
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        inherited = driver._clients.get()
        child = context.Process(target=_read_in_child, args=(driver, inherited, path, 20, send))
        child.start()
    parent_ok = all(driver.read_bytes(path) == noise(PART, 9) for _ in range(20))
    child.join(60)
    assert receive.recv() == (True, True)  # its bytes, read through a client of its own
    assert child.exitcode == 0
    assert parent_ok
    assert driver.read_bytes(blob_path(digest_of(b"from the child"))) == b"from the child"


def test_only_uploads_grow(driver: S3Driver) -> None:
    with pytest.raises(InvalidPath, match="uploads/"):
        driver.append(blob_path(digest_of(b"x")), [b"x"])


def test_scratch_and_foreign_keys_are_not_listed(driver: S3Driver, s3_bucket: Bucket) -> None:
    blob = blob_path(digest_of(b"b"))
    driver.write_bytes(blob, b"b")
    s3_bucket.put(f"{blob.rsplit('/', 1)[0]}/.scratch", b"")
    s3_bucket.put("blobs/.trash/old", b"")
    assert list(driver.list("blobs")) == [blob]


def test_prefixes_keep_apps_apart(s3_server: S3Server, s3_prefix: str) -> None:
    one = S3Driver(s3_server.settings(f"{s3_prefix}/one"))
    two = S3Driver(s3_server.settings(f"{s3_prefix}/one-more"))
    path = blob_path(digest_of(b"mine"))
    one.write_bytes(path, b"mine")
    assert not two.exists(path)
    assert list(two.list("")) == []
    assert list(one.list("")) == [path]


def test_min_chunk_length_is_the_part_size(s3_server: S3Server, s3_prefix: str) -> None:
    driver = S3Driver(s3_server.settings(s3_prefix, part_size=6 * MIB))
    assert driver.min_chunk_length == 6 * MIB
    assert driver.local_path(blob_path(digest_of(b"x"))) is None


def test_a_presigned_url_serves_the_blob(driver: S3Driver) -> None:
    path = blob_path(digest_of(b"signed bytes"))
    driver.write_bytes(path, b"signed bytes")
    url = driver.redirect_url(path, expires=60)
    assert url is not None
    assert "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"signed bytes"


def test_a_missing_bucket_fails_the_check(s3_server: S3Server, s3_prefix: str) -> None:
    driver = S3Driver(s3_server.settings(s3_prefix, bucket="no-such-bucket-here"))
    with pytest.raises(StorageError, match="'no-such-bucket-here' does not exist"):
        driver.check()


def test_wrong_credentials_fail_without_showing_the_secret(
    s3_server: S3Server, s3_prefix: str
) -> None:
    secret = "wrong-secret-do-not-print"
    driver = S3Driver(s3_server.settings(s3_prefix, secret_access_key=secret))
    with pytest.raises(StorageError) as failure:
        driver.check()
    assert secret not in str(failure.value)
    assert secret not in repr(driver)
    with pytest.raises(StorageError) as failure:
        driver.write_bytes(blob_path(digest_of(b"x")), b"x")
    assert secret not in str(failure.value)
