"""Tag and digest lookups cached per process, invalidated across processes through Redis."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import event

from forge_container.manifest_refs import ManifestRefs
from forge_container.mediatypes import DOCKER_MANIFEST
from forge_container.state import get_state
from forge_container_tests.e2e.conftest import free_port
from forge_container_tests.helpers import basic, forget_keys
from forge_container_tests.manifest_fixtures import (
    GITEA_BLOB,
    GITEA_CONFIG,
    GITEA_MANIFEST,
    GITEA_MANIFEST_DIGEST,
    LAYER_GZIP,
    descriptor,
    image_config,
    image_manifest,
    seed_blob,
)
from forge_container_tests.sibling_app import sibling_app
from forge_container_tests.test_cache import Clock

OWNER, IMAGE = "u:1", "tools/cli"
ALICE = basic("alice", "pw-alice")
NAME = "alice/app"


class Database:
    """What the cached lookups stand in front of: counts the queries, answers ``answer``."""

    def __init__(self, answer: str | None = "sha256:aaa") -> None:
        self.answer = answer
        self.queries = 0

    def __call__(self) -> str | None:
        self.queries += 1
        return self.answer


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis: Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted at the end."""
    prefix = f"fc-test-{uuid.uuid4().hex}:"
    yield prefix
    forget_keys(redis, prefix)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def refs(redis: Redis, prefix: str, clock: Clock) -> ManifestRefs[str | None]:
    return ManifestRefs(redis, prefix=prefix, ttl=5, clock=clock)


@pytest.fixture
def other_process(redis: Redis, prefix: str, clock: Clock) -> ManifestRefs[str | None]:
    """The same cache in another worker or node: its own entries, the same Redis."""
    return ManifestRefs(redis, prefix=prefix, ttl=5, clock=clock)


# -- the cache ----------------------------------------------------------------------------------


def test_a_repeated_lookup_is_answered_without_the_database(refs: ManifestRefs[Any]) -> None:
    database = Database()
    assert refs.lookup(OWNER, IMAGE, "latest", database) == "sha256:aaa"
    assert refs.lookup(OWNER, IMAGE, "latest", database) == "sha256:aaa"
    assert database.queries == 1
    assert refs.enabled


def test_a_change_made_in_another_process_is_seen_by_the_next_lookup(
    refs: ManifestRefs[Any], other_process: ManifestRefs[Any]
) -> None:
    database = Database("sha256:old")
    assert refs.lookup(OWNER, IMAGE, "latest", database) == "sha256:old"
    database.answer = "sha256:new"

    other_process.invalidate(OWNER, IMAGE)

    assert refs.lookup(OWNER, IMAGE, "latest", database) == "sha256:new"
    assert database.queries == 2


def test_a_missing_tag_is_cached_until_a_push_invalidates_it(
    refs: ManifestRefs[Any], other_process: ManifestRefs[Any]
) -> None:
    database = Database(None)
    assert refs.lookup(OWNER, IMAGE, "v1", database) is None
    assert refs.lookup(OWNER, IMAGE, "v1", database) is None
    assert database.queries == 1
    database.answer = "sha256:pushed"
    other_process.invalidate(OWNER, IMAGE)
    assert refs.lookup(OWNER, IMAGE, "v1", database) == "sha256:pushed"


def test_a_change_to_one_image_keeps_the_answers_of_the_others(
    refs: ManifestRefs[Any], other_process: ManifestRefs[Any]
) -> None:
    database = Database()
    for owner, image in ((OWNER, IMAGE), (OWNER, "other"), ("u:2", IMAGE)):
        refs.lookup(owner, image, "latest", database)
    other_process.invalidate(OWNER, IMAGE)
    for owner, image in ((OWNER, IMAGE), (OWNER, "other"), ("u:2", IMAGE)):
        refs.lookup(owner, image, "latest", database)
    assert database.queries == 4


def test_answers_expire_after_the_ttl_even_without_a_change(
    refs: ManifestRefs[Any], clock: Clock
) -> None:
    database = Database()
    refs.lookup(OWNER, IMAGE, "latest", database)
    clock.advance(4.9)
    refs.lookup(OWNER, IMAGE, "latest", database)
    clock.advance(0.2)
    refs.lookup(OWNER, IMAGE, "latest", database)
    assert database.queries == 2


def test_an_emptied_redis_matches_no_answer_cached_before(
    refs: ManifestRefs[Any], redis: Redis, prefix: str
) -> None:
    """Generations are random: after a restart (keys gone) an old stamp cannot match."""
    database = Database()
    refs.lookup(OWNER, IMAGE, "latest", database)
    forget_keys(redis, prefix)
    refs.lookup(OWNER, IMAGE, "latest", database)
    assert database.queries == 2


@pytest.mark.parametrize("setup", ["no redis", "ttl 0"])
def test_nothing_is_cached_without_redis_or_with_ttl_zero(
    setup: str, redis: Redis, prefix: str
) -> None:
    refs: ManifestRefs[Any] = (
        ManifestRefs(None, prefix=prefix, ttl=5)
        if setup == "no redis"
        else ManifestRefs(redis, prefix=prefix, ttl=0)
    )
    database = Database()
    for _ in range(3):
        refs.lookup(OWNER, IMAGE, "latest", database)
    refs.invalidate(OWNER, IMAGE)
    assert database.queries == 3
    assert not refs.enabled
    assert list(redis.scan_iter(match=f"{prefix}*")) == []


def test_a_failing_redis_sends_lookups_to_the_database_for_a_while(
    prefix: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    refs: ManifestRefs[Any] = ManifestRefs(down, prefix=prefix, ttl=5, clock=clock)
    database = Database()
    caplog.set_level(logging.WARNING, logger="forge_container.manifest_refs")

    for _ in range(3):
        assert refs.lookup(OWNER, IMAGE, "latest", database) == "sha256:aaa"
    refs.invalidate(OWNER, IMAGE)  # logged, never raised: the change is committed already

    assert database.queries == 3
    failures = [r for r in caplog.records if r.name == "forge_container.manifest_refs"]
    assert len(failures) == 2  # one for the first lookup (then Redis is skipped), one for SET
    clock.advance(5.1)
    refs.lookup(OWNER, IMAGE, "latest", database)  # tries Redis again
    assert len([r for r in caplog.records if r.name == "forge_container.manifest_refs"]) == 3
    down.close()


# -- through /v2, on two nodes sharing the database and Redis -------------------------------------


@pytest.fixture
def app_config(redis_url: str) -> dict[str, Any]:
    return {"CONTAINER_REGISTRY_REDIS_URL": redis_url}


@pytest.fixture
def owner(forge: Any) -> str:
    forge.user("alice")
    owner_id: str = forge.owner("alice").id
    return owner_id


def push(client: FlaskClient, reference: str, body: bytes, content_type: str) -> None:
    response = client.put(
        f"/v2/{NAME}/manifests/{reference}",
        data=body,
        headers={**ALICE, "Content-Type": content_type},
    )
    assert response.status_code == 201, response.data


def pulled(client: FlaskClient, reference: str) -> tuple[int, str | None]:
    response = client.get(f"/v2/{NAME}/manifests/{reference}", headers=ALICE)
    return response.status_code, response.headers.get("Docker-Content-Digest")


def test_a_tag_moved_on_one_node_is_pulled_from_the_other_at_once(
    app: Flask, client: FlaskClient, owner: str
) -> None:
    seed_blob(app, owner, "app", GITEA_CONFIG)
    seed_blob(app, owner, "app", GITEA_BLOB)
    push(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    second = image_manifest(
        image_config(app, owner, "app", author="second"),
        [{**seed_blob(app, owner, "app", b"second layer"), "mediaType": LAYER_GZIP}],
    )
    second_digest = descriptor(second, "")["digest"]

    with sibling_app(app) as node:
        other = node.test_client()
        assert pulled(other, "latest") == (200, GITEA_MANIFEST_DIGEST)
        assert pulled(other, "v2") == (404, None)  # a miss is cached too

        push(client, "latest", second, "application/vnd.oci.image.manifest.v1+json")
        push(client, "v2", second, "application/vnd.oci.image.manifest.v1+json")
        assert pulled(other, "latest") == (200, second_digest)
        assert pulled(other, "v2") == (200, second_digest)

        assert client.delete(f"/v2/{NAME}/manifests/v2", headers=ALICE).status_code == 202
        assert pulled(other, "v2") == (404, None)
        assert pulled(other, GITEA_MANIFEST_DIGEST) == (200, GITEA_MANIFEST_DIGEST)
        deleted = client.delete(f"/v2/{NAME}/manifests/{GITEA_MANIFEST_DIGEST}", headers=ALICE)
        assert deleted.status_code == 202
        assert pulled(other, GITEA_MANIFEST_DIGEST) == (404, None)


def test_a_warm_pull_asks_the_database_nothing(app: Flask, client: FlaskClient, owner: str) -> None:
    seed_blob(app, owner, "app", GITEA_CONFIG)
    seed_blob(app, owner, "app", GITEA_BLOB)
    push(client, "latest", GITEA_MANIFEST, DOCKER_MANIFEST)
    assert pulled(client, "latest") == (200, GITEA_MANIFEST_DIGEST)  # warms every cache
    statements: list[str] = []
    with app.app_context():
        engine = get_state(app).db.engine

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for _ in range(3):
            response = client.get(f"/v2/{NAME}/manifests/latest", headers=ALICE)
            assert (response.status_code, response.data) == (200, GITEA_MANIFEST)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert statements == []
