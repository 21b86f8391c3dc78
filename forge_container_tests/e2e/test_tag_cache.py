"""Cached tag lookups on a live ``gunicorn -w 4`` with Redis: no worker serves a moved tag.

Every worker keeps its own lookups; the pushing worker invalidates them all through Redis
before it answers. So each pull here, whichever worker takes it, sees the change the
request before it made, long before the cache TTL would have expired the old answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from forge_container_tests.e2e.conftest import (
    Server,
    Site,
    create_site,
    redis_config,
    running,
    watching,
)

IMAGE = "alice/moving-tag"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Pulls per step: with four workers accepting in turn, every one of them takes some.
PULLS = 40


@pytest.fixture(scope="module")
def redis_site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Site]:
    with redis_config(redis_url) as config:
        config["CONTAINER_REGISTRY_CACHE_TTL"] = "60"
        with create_site(tmp_path_factory.mktemp("tag-cache"), config) as site:
            yield site


@pytest.fixture(scope="module")
def server(redis_site: Site) -> Iterator[Server]:
    with (
        running(redis_site, redis_site.instance_path.parent / "gunicorn.log", workers=4) as live,
        watching(live),
    ):
        yield live


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def push_image(server: Server, auth: dict[str, str], tag: str, author: str) -> str:
    """A config and a manifest pushed to ``tag``; the manifest's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "author": author}).encode()
    stored = server.request(
        "POST", f"/v2/{IMAGE}/blobs/uploads/?digest={digest_of(config)}", headers=auth, body=config
    )
    assert stored.status == 201, stored
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    put = server.request(
        "PUT",
        f"/v2/{IMAGE}/manifests/{tag}",
        headers={**auth, "Content-Type": OCI_MANIFEST},
        body=manifest,
    )
    assert put.status == 201, put
    return digest_of(manifest)


def pulls(server: Server, auth: dict[str, str], reference: str) -> set[tuple[int, str | None]]:
    """What ``PULLS`` pulls of ``reference`` answered: (status, digest) pairs."""
    answers = set()
    for _ in range(PULLS):
        reply = server.request("GET", f"/v2/{IMAGE}/manifests/{reference}", headers=auth)
        answers.add((reply.status, reply.headers.get("docker-content-digest")))
    return answers


def test_every_worker_sees_a_moved_or_deleted_tag_at_once(server: Server) -> None:
    token = server.token("alice", [f"repository:{IMAGE}:pull,push,delete"])
    auth = {"Authorization": f"Bearer {token}"}
    first = push_image(server, auth, "latest", "first")
    assert pulls(server, auth, "latest") == {(200, first)}
    assert pulls(server, auth, "next") == {(404, None)}

    second = push_image(server, auth, "latest", "second")
    assert pulls(server, auth, "latest") == {(200, second)}
    third = push_image(server, auth, "next", "third")
    assert pulls(server, auth, "next") == {(200, third)}

    assert server.request("DELETE", f"/v2/{IMAGE}/manifests/next", headers=auth).status == 202
    assert pulls(server, auth, "next") == {(404, None)}
    assert pulls(server, auth, third) == {(200, third)}
    assert server.request("DELETE", f"/v2/{IMAGE}/manifests/{third}", headers=auth).status == 202
    assert pulls(server, auth, third) == {(404, None)}
    assert pulls(server, auth, "latest") == {(200, second)}
