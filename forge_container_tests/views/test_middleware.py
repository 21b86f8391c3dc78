"""The WSGI wrapper of ``/v2``: bodies counted, blob transfers capped, ``sendfile`` kept."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import IO, Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.wsgi import FileWrapper

from forge_container.access_log import RequestRecord
from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_MANIFEST
from forge_container.views.middleware import MeteredBody, MeteredInput, RegistryMiddleware
from forge_container_tests.helpers import basic, push_blob
from forge_container_tests.manifest_fixtures import config_bytes, descriptor, image_manifest
from forge_container_tests.test_throttle import FakeTime

ALICE = basic("alice", "pw-alice")
RATE = 64 * 1024
BLOB = bytes(range(256)) * 800  # 200 KiB


@pytest.fixture
def time(app: Flask) -> FakeTime:
    """The app's throttles run on a fake clock; ``time.sleeps`` are the sleeps they asked for."""
    fake = FakeTime()
    middleware = app.wsgi_app
    assert isinstance(middleware, RegistryMiddleware)
    middleware.throttle = fake.throttle
    return fake


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    """The access log's lines so far (their fields)."""
    caplog.set_level(logging.INFO, logger="forge_container.access")

    def lines() -> list[dict[str, Any]]:
        return [r.access for r in caplog.records if r.name == "forge_container.access"]  # type: ignore[attr-defined]

    return lines


def fetch(client: FlaskClient, digest: str, **kwargs: Any) -> bytes:
    response = client.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE, buffered=True, **kwargs)
    assert response.status_code == 200
    return response.get_data()


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_BANDWIDTH_UPLOAD": RATE}])
def test_a_capped_upload_arrives_intact_at_the_capped_pace(
    client: FlaskClient, forge: Any, time: FakeTime
) -> None:
    forge.user("alice")
    digest = push_blob(client, BLOB, headers=ALICE)
    assert sum(time.sleeps) == pytest.approx(len(BLOB) / RATE)
    assert len(time.sleeps) == len(BLOB) // (RATE // 4) + 1
    uploaded = list(time.sleeps)
    assert fetch(client, digest) == BLOB
    assert time.sleeps == uploaded  # downloads are not capped


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_BANDWIDTH_UPLOAD": RATE}])
def test_chunks_are_capped_and_manifests_are_not(
    client: FlaskClient, forge: Any, time: FakeTime
) -> None:
    forge.user("alice")
    opened = client.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
    location = opened.headers["Location"]
    half = len(BLOB) // 2
    patched = client.patch(
        location, data=BLOB[:half], headers={**ALICE, "Content-Range": f"0-{half - 1}"}
    )
    assert patched.status_code == 202
    finished = client.put(f"{location}?digest={digest_of(BLOB)}", data=BLOB[half:], headers=ALICE)
    assert finished.status_code == 201, finished.data
    assert sum(time.sleeps) == pytest.approx(len(BLOB) / RATE)

    time.sleeps.clear()
    config = config_bytes()
    push_blob(client, config, headers=ALICE)
    time.sleeps.clear()
    manifest = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(BLOB, OCI_CONFIG)])
    response = client.put(
        "/v2/alice/app/manifests/v1", data=manifest, headers={**ALICE, "Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.data
    assert time.sleeps == []


class ServerFileWrapper(FileWrapper):
    """A server's ``wsgi.file_wrapper`` (gunicorn's sends these with ``sendfile``)."""

    made: ClassVar[list[ServerFileWrapper]]

    def __init__(self, file: IO[bytes], buffer_size: int = 8192) -> None:
        super().__init__(file, buffer_size)
        self.made.append(self)


@pytest.fixture
def file_wrapper() -> type[ServerFileWrapper]:
    class Wrapper(ServerFileWrapper):
        made: ClassVar[list[ServerFileWrapper]] = []

    return Wrapper


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_BANDWIDTH_DOWNLOAD": RATE}])
def test_a_capped_download_is_paced_and_not_sent_with_sendfile(
    client: FlaskClient,
    forge: Any,
    time: FakeTime,
    file_wrapper: type[ServerFileWrapper],
    access: Callable[[], list[dict[str, Any]]],
) -> None:
    forge.user("alice")
    digest = push_blob(client, BLOB, headers=ALICE)
    assert time.sleeps == []  # uploads are not capped
    assert fetch(client, digest, environ_base={"wsgi.file_wrapper": file_wrapper}) == BLOB
    assert file_wrapper.made == []
    assert sum(time.sleeps) == pytest.approx(len(BLOB) / RATE)
    assert access()[-1]["bytes_out"] == len(BLOB)


def test_an_uncapped_download_keeps_the_servers_file_wrapper(
    client: FlaskClient,
    forge: Any,
    file_wrapper: type[ServerFileWrapper],
    access: Callable[[], list[dict[str, Any]]],
) -> None:
    forge.user("alice")
    digest = push_blob(client, BLOB, headers=ALICE)
    response = client.get(
        f"/v2/alice/app/blobs/{digest}",
        headers=ALICE,
        environ_base={"wsgi.file_wrapper": file_wrapper},
    )
    assert len(file_wrapper.made) == 1
    assert access()[-1]["route"] == "start_upload"  # not finished before the body closes
    assert response.get_data() == BLOB
    response.close()
    assert file_wrapper.made[0].file.closed
    line = access()[-1]
    assert (line["route"], line["bytes_out"]) == ("get_blob", len(BLOB))


class ReadOnlyInput:
    """A ``wsgi.input`` with ``read`` and ``readline`` only, as WSGI promises."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, *args: Any) -> bytes:
        return self._data.read(*args)

    def readline(self, *args: Any) -> bytes:
        return self._data.readline(*args)


def test_the_metered_input_counts_every_way_of_reading() -> None:
    data = b"one\ntwo\nthree\n" * 3
    for read in (
        lambda stream: stream.read(),
        lambda stream: stream.read(5) + stream.read(None) + stream.read(4),
        lambda stream: b"".join(stream.readlines()),
        lambda stream: b"".join(stream.readlines(10)) + b"".join(stream),
        lambda stream: b"".join(iter(stream)),
    ):
        record = RequestRecord(method="PUT", path="/v2/", started=0.0)
        stream = MeteredInput(ReadOnlyInput(data), record, lambda: None)
        assert read(stream) == data
        assert record.bytes_in == len(data)


def test_a_paced_read_returns_what_was_asked_for() -> None:
    time = FakeTime()
    record = RequestRecord(method="PUT", path="/v2/", started=0.0)
    stream = MeteredInput(ReadOnlyInput(BLOB), record, lambda: time.throttle(RATE))
    assert stream.read(100_000) == BLOB[:100_000]
    assert stream.readline(10) == BLOB[100_000:100_010]
    assert stream.read() == BLOB[100_010:]
    assert stream.read(10) == b""
    assert record.bytes_in == len(BLOB)
    assert sum(time.sleeps) == pytest.approx(len(BLOB) / RATE)


def test_a_metered_body_finishes_once_and_closes_the_apps_body() -> None:
    finished: list[RequestRecord] = []
    record = RequestRecord(method="GET", path="/v2/", started=0.0)
    inner = io.BytesIO(b"abc")
    body = MeteredBody(FileWrapper(inner, 2), record, None, finished.append)
    assert b"".join(body) == b"abc"
    body.close()
    body.close()
    assert inner.closed
    assert finished == [record]
    assert record.bytes_out == 3
