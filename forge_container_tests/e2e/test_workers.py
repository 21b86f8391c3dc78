"""Several worker processes, one registry: uploads move between them, memory stays flat.

Three gunicorn instances (one worker each) share a database and a storage path, as app nodes
behind a load balancer would; each request below names the instance it goes to.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from forge_container_tests.e2e.conftest import Server, Site, create_site, running, watching
from forge_container_tests.e2e.layouts import seeded_bytes

MIB = 1024 * 1024
GIB = 1024 * MIB
#: How much a worker's peak RSS may grow while a 1 GiB blob goes through it.
RSS_GROWTH_LIMIT = 64 * MIB


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with create_site(tmp_path_factory.mktemp("shared")) as site:
        yield site


@pytest.fixture(scope="module")
def nodes(shared_site: Site) -> Iterator[list[Server]]:
    """Three single-worker gunicorn instances on one site."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running(shared_site, shared_site.instance_path.parent / f"node-{i}.log", workers=1)
            )
            for i in range(3)
        ]


@pytest.fixture
def instances(nodes: list[Server]) -> Iterator[list[Server]]:
    with watching(*nodes):
        yield nodes


@pytest.fixture
def lone_worker(shared_site: Site, tmp_path: Path) -> Iterator[Server]:
    """A gunicorn with a single worker, fresh for each test, so its peak RSS means something."""
    with (
        running(shared_site, tmp_path / "lone.log", workers=1, threads=2) as server,
        watching(server),
    ):
        yield server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def path_of(location: str) -> str:
    """A ``Location`` as a path with its query (absolute URLs are cut down)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def peak_rss(pid: int) -> int:
    """``VmHWM`` of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_chunks_of_one_upload_land_on_different_processes(instances: list[Server]) -> None:
    workers = [pid for server in instances for pid in server.worker_pids()]
    assert len(set(workers)) == len(instances) == 3

    first, second, third = instances
    # A token from one instance is good on every other (same secret, no local state).
    auth = bearer(first.token("alice", ["repository:alice/chunked:pull,push"]))
    data = seeded_bytes(31, 5 * MIB + 12345)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    bounds = [0, 1, 700_000, 2 * MIB, 2 * MIB + 3, 4 * MIB, 5 * MIB, len(data)]

    opened = first.request("POST", "/v2/alice/chunked/blobs/uploads/", headers=auth)
    assert opened.status == 202, opened
    location = path_of(opened.headers["location"])
    uuid = opened.headers["docker-upload-uuid"]
    locations = [location]

    order = [second, third, first]
    for i, (start, end) in enumerate(itertools.pairwise(bounds[:-1])):
        reply = order[i % 3].request(
            "PATCH",
            location,
            headers={
                **auth,
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}",
            },
            body=data[start:end],
        )
        assert reply.status == 202, reply
        assert reply.headers["range"] == f"0-{end - 1}"
        assert reply.headers["docker-upload-uuid"] == uuid
        location = path_of(reply.headers["location"])
        locations.append(location)

    received = bounds[-2]
    for server, earlier in zip(instances, [locations[0], locations[2], locations[-1]], strict=True):
        status = server.request("GET", earlier, headers=auth)
        assert status.status == 204, status
        assert status.headers["range"] == f"0-{received - 1}"

    # A chunk that repeats bytes already received is refused on any process, nothing changes.
    repeated = third.request(
        "PATCH",
        location,
        headers={**auth, "Content-Range": f"{bounds[-3]}-{received - 1}"},
        body=data[bounds[-3] : received],
    )
    assert repeated.status == 416, repeated
    assert repeated.headers["range"] == f"0-{received - 1}"

    finished = second.request(
        "PUT",
        f"{location}{'&' if '?' in location else '?'}digest={digest}",
        headers={**auth, "Content-Type": "application/octet-stream"},
        body=data[received:],
    )
    assert finished.status == 201, finished
    assert finished.headers["docker-content-digest"] == digest

    for number, server in enumerate(instances):
        blob = server.request("GET", f"/v2/alice/chunked/blobs/{digest}", headers=auth)
        assert blob.status == 200, blob
        assert hashlib.sha256(blob.body).hexdigest() == digest.split(":")[1]
        assert blob.headers["docker-content-digest"] == digest
        # Ranges go out through the server's file wrapper too.
        start = number * MIB + 17
        part = server.request(
            "GET",
            f"/v2/alice/chunked/blobs/{digest}",
            headers={**auth, "Range": f"bytes={start}-{start + 99_999}"},
        )
        assert part.status == 206, part
        assert part.headers["content-range"] == f"bytes {start}-{start + 99_999}/{len(data)}"
        assert part.body == data[start : start + 100_000]


class _Pieces:
    """``size`` bytes in 1 MiB pieces made on the fly, hashed as they go."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hash = hashlib.sha256()
        self.base = os.urandom(MIB)

    def __iter__(self) -> Iterator[bytes]:
        for number in range(self.size // MIB):
            piece = number.to_bytes(8, "big") + self.base[8:]
            self.hash.update(piece)
            yield piece

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def stream_digest(server: Server, path: str, headers: dict[str, str]) -> tuple[int, str, int]:
    """GET ``path`` reading 1 MiB at a time: status, sha256 digest and size of the body."""
    connection = http.client.HTTPConnection(server.host, timeout=300)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        digest, size = hashlib.sha256(), 0
        while piece := response.read(MIB):
            digest.update(piece)
            size += len(piece)
        return response.status, "sha256:" + digest.hexdigest(), size
    finally:
        connection.close()


@pytest.mark.big
def test_a_1_gib_blob_goes_through_a_worker_without_growing_its_memory(
    lone_worker: Server,
) -> None:
    (worker,) = lone_worker.worker_pids()
    auth = bearer(lone_worker.token("alice", ["repository:alice/huge:pull,push,delete"]))

    # Warm up: the first upload and pull load whatever the worker loads lazily.
    small = seeded_bytes(1, 1000)
    small_digest = "sha256:" + hashlib.sha256(small).hexdigest()
    warm = lone_worker.request(
        "POST", f"/v2/alice/huge/blobs/uploads/?digest={small_digest}", headers=auth, body=small
    )
    assert warm.status == 201, warm
    assert (
        lone_worker.request("GET", f"/v2/alice/huge/blobs/{small_digest}", headers=auth).body
        == small
    )
    before = peak_rss(worker)

    opened = lone_worker.request("POST", "/v2/alice/huge/blobs/uploads/", headers=auth)
    assert opened.status == 202, opened
    pieces = _Pieces(GIB)
    sent = lone_worker.request(
        "PATCH",
        path_of(opened.headers["location"]),
        headers={**auth, "Content-Type": "application/octet-stream"},
        body=pieces,
        length=GIB,
    )
    assert sent.status == 202, sent
    assert sent.headers["range"] == f"0-{GIB - 1}"
    location = path_of(sent.headers["location"])
    finished = lone_worker.request(
        "PUT", f"{location}{'&' if '?' in location else '?'}digest={pieces.digest}", headers=auth
    )
    assert finished.status == 201, finished
    assert lone_worker.worker_pids() == [worker]
    assert peak_rss(worker) - before < RSS_GROWTH_LIMIT

    status, digest, size = stream_digest(lone_worker, f"/v2/alice/huge/blobs/{pieces.digest}", auth)
    assert (status, digest, size) == (200, pieces.digest, GIB)
    assert peak_rss(worker) - before < RSS_GROWTH_LIMIT

    deleted = lone_worker.request("DELETE", f"/v2/alice/huge/blobs/{pieces.digest}", headers=auth)
    assert deleted.status == 202, deleted
