"""Two app nodes behind one name: separate gunicorn servers sharing PostgreSQL, S3 and Redis.

What a load balancer does to a client is done here on purpose: every request of one upload
goes to the other node than the one before, a token from one node is used on the other,
and what one node stored is pulled from the other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from forge_container.config_storage import S3_MIN_PART_SIZE
from forge_container_tests.e2e.conftest import (
    Server,
    Site,
    create_site,
    redis_config,
    running,
    watching,
)
from forge_container_tests.s3_server import S3Server, new_prefix

pytestmark = pytest.mark.skipif(
    os.environ.get("FORGE_TEST_DATABASE") != "postgresql",
    reason="several nodes share a PostgreSQL database: runs with FORGE_TEST_DATABASE=postgresql",
)

IMAGE = "alice/two-nodes"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def shared_site(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, redis_url: str
) -> Iterator[Site]:
    with redis_config(redis_url) as redis:
        config = {**s3_server.config(new_prefix()), **redis}
        with create_site(tmp_path_factory.mktemp("two-nodes"), config) as site:
            yield site


@pytest.fixture(scope="module")
def nodes(shared_site: Site) -> Iterator[tuple[Server, Server]]:
    """Two servers of two workers each: different processes, ports and logs."""
    logs = shared_site.instance_path.parent
    with (
        running(shared_site, logs / "node-a.log", workers=2, threads=4) as node_a,
        running(shared_site, logs / "node-b.log", workers=2, threads=4) as node_b,
        watching(node_a, node_b),
    ):
        yield node_a, node_b


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_a_token_from_one_node_works_on_the_other(nodes: tuple[Server, Server]) -> None:
    node_a, node_b = nodes
    token = node_a.token("alice", [f"repository:{IMAGE}:pull,push"])
    assert node_b.request("GET", "/v2/", headers=bearer(token)).status == 200
    opened = node_b.request("POST", f"/v2/{IMAGE}/blobs/uploads/", headers=bearer(token))
    assert opened.status == 202
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert node_b.request("GET", "/v2/", headers=bearer(forged)).status == 401


def test_one_upload_alternates_between_nodes_and_is_pulled_from_the_other(
    nodes: tuple[Server, Server],
) -> None:
    node_a, node_b = nodes
    token = node_b.token("alice", [f"repository:{IMAGE}:pull,push"])
    # Chunks above and below the S3 part size: the tail left by a small chunk on one node
    # is picked up by the next chunk on the other.
    sizes = [S3_MIN_PART_SIZE + 123, 1000, S3_MIN_PART_SIZE * 2 - 7, 77]
    layer = b"".join(os.urandom(size) for size in sizes)
    opened = node_a.request("POST", f"/v2/{IMAGE}/blobs/uploads/", headers=bearer(token))
    assert opened.status == 202
    location = opened.headers["location"]
    start = 0
    for number, size in enumerate(sizes):
        node = (node_b, node_a)[number % 2]
        chunk = layer[start : start + size]
        reply = node.request(
            "PATCH",
            location,
            headers={
                **bearer(token),
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + size - 1}",
            },
            body=chunk,
        )
        assert reply.status == 202, reply
        start += size
        assert reply.headers["range"] == f"0-{start - 1}"
        location = reply.headers["location"]
        status = (node_a, node_b)[number % 2].request("GET", location, headers=bearer(token))
        assert (status.status, status.headers["range"]) == (204, f"0-{start - 1}")
    separator = "&" if "?" in location else "?"
    finished = node_b.request(
        "PUT", f"{location}{separator}digest={digest_of(layer)}", headers=bearer(token)
    )
    assert finished.status == 201, finished
    assert finished.headers["docker-content-digest"] == digest_of(layer)

    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    pushed = node_a.request(
        "POST",
        f"/v2/{IMAGE}/blobs/uploads/?digest={digest_of(config)}",
        headers=bearer(token),
        body=config,
    )
    assert pushed.status == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    put = node_b.request(
        "PUT",
        f"/v2/{IMAGE}/manifests/v1",
        headers={**bearer(token), "Content-Type": OCI_MANIFEST},
        body=manifest,
    )
    assert put.status == 201, put

    for node in (node_a, node_b):
        got = node.request("GET", f"/v2/{IMAGE}/manifests/v1", headers=bearer(token))
        assert (got.status, got.body) == (200, manifest)
        blob = node.request("GET", f"/v2/{IMAGE}/blobs/{digest_of(layer)}", headers=bearer(token))
        assert blob.status == 200
        assert digest_of(blob.body) == digest_of(layer)
        tags = node.request("GET", f"/v2/{IMAGE}/tags/list", headers=bearer(token))
        assert tags.json() == {"name": IMAGE, "tags": ["v1"]}


def test_failed_logins_are_counted_across_nodes(nodes: tuple[Server, Server]) -> None:
    """The failed-login limit lives in the shared Redis: failures on one node lock out the
    other (the default limit is 10 per user)."""
    node_a, node_b = nodes
    wrong = {"Authorization": "Basic " + base64.b64encode(b"mallory-target:wrong").decode()}
    statuses = [
        (node_a, node_b)[attempt % 2]
        .request("GET", "/v2/token?service=forge-container", headers=wrong)
        .status
        for attempt in range(12)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
