"""Cached tag lookups on a live ``gunicorn -w 4`` with Redis: no worker serves a moved tag.

Every worker keeps its own lookups; the pushing worker invalidates them all through Redis
before it answers. So each pull here, whichever worker takes it, sees the change the
request before it made, long before the cache TTL would have expired the old answer.
"""

from __future__ import annotations

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
from forge_container_tests.e2e.layouts import OCI_MANIFEST
from forge_container_tests.e2e.pusher import Image

IMAGE = "alice/moving-tag"
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


def push_image(server: Server, auth: dict[str, str], tag: str, title: str) -> str:
    """An image of its own config and no layers, pushed to ``tag``; the manifest's digest."""
    image = Image(title, layers=())
    stored = server.request(
        "POST",
        f"/v2/{IMAGE}/blobs/uploads/?digest={image.config.digest}",
        headers=auth,
        body=image.config.data,
    )
    assert stored.status == 201, stored
    put = server.request(
        "PUT",
        f"/v2/{IMAGE}/manifests/{tag}",
        headers={**auth, "Content-Type": OCI_MANIFEST},
        body=image.manifest,
    )
    assert put.status == 201, put
    return image.digest


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
