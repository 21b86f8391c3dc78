"""Many clients at once against a live gunicorn (``-w 4 --threads 4``), each request on a
connection of its own: parallel pushes sharing layers, one blob pushed by many, one tag
pushed by many, deletes while others pull.

Every request must succeed or fail with a clean OCI error, never a 500 (nor a traceback in
the server's log); afterwards the database holds exactly the rows the pushes imply, read
directly with SQLAlchemy. Each scenario is a fixed number of requests, started together
behind a barrier; statuses are counted per operation and printed (``-rP`` shows them).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pytest
from sqlalchemy import ColumnElement, create_engine, func, select
from sqlalchemy.orm import Session

from forge_container.digest import parse_digest
from forge_container.models import (
    BlobLink,
    BlobUpload,
    Package,
    PackageBlob,
    PackageFile,
    PackageTag,
    PackageVersion,
)
from forge_container.registry.versions import manifest_file
from forge_container.storage.paths import blob_path
from forge_container_tests.e2e.conftest import SERVER_ERROR, Server, Site, create_site
from forge_container_tests.e2e.layouts import seeded_bytes
from forge_container_tests.e2e.pusher import Blob, Client, Image, Tally, digest_of, error_codes

T = TypeVar("T")
KIB = 1024
#: Bounds every scenario: no request waits longer than the client's 60 s timeout.
SCENARIO_TIMEOUT = 240
#: A manifest push that lost its race three times answers 503 UNKNOWN (registry/manifests.py).
MANIFEST_PUSH_503 = re.compile(r'"PUT /v2/\S+/manifests/\S+ HTTP/1\.1" 503 ')
DEMO_CLI = (sys.executable, "-m", "flask", "--app", "forge_container.demo", "demo")


@pytest.fixture(scope="module")
def registry_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The module's site, plus the organisation ``acme`` with alice in its Owners team."""
    with create_site(tmp_path_factory.mktemp("site")) as site:
        subprocess.run(
            [*DEMO_CLI, "create-org", "acme", "--owner", "alice"],
            env=site.environment(),
            cwd=site.instance_path,
            check=True,
            capture_output=True,
        )
        yield site


@pytest.fixture
def lenient_registry(registry_server: Server) -> Iterator[Server]:
    """The live server; the test fails on any 5xx but a manifest push's 503, or a traceback."""
    offset = registry_server.log_size()
    yield registry_server
    assert registry_server.process.poll() is None, "gunicorn died"
    errors = [
        line
        for line in registry_server.log_since(offset).splitlines()
        if SERVER_ERROR.search(line) and not MANIFEST_PUSH_503.search(line)
    ]
    assert not errors, "server errors:\n" + "\n".join(errors)


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run each call on a thread of its own, all released at once; their results in order.

    An exception in a call is raised here, after every thread has finished.
    """
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        start.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=SCENARIO_TIMEOUT) for future in futures]


def check_tally(tally: Tally, expected: dict[str, set[int]]) -> None:
    """Every operation answered only the statuses ``expected`` allows, errors in OCI JSON."""
    print(tally.summary())
    assert not tally.unclean, f"error replies without an OCI body: {tally.unclean}"
    seen = {op for op, _ in tally.counts}
    assert seen <= expected.keys(), f"unexpected operations: {seen - expected.keys()}"
    for operation, allowed in expected.items():
        assert tally.statuses(operation) <= allowed, (operation, tally.summary())


# -- the database, read directly ----------------------------------------------------------------


@contextmanager
def database(site: Site) -> Iterator[Session]:
    engine = create_engine(site.database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def full_name() -> ColumnElement[str]:
    return Package.owner_name + "/" + Package.name


def assert_no_duplicates_nor_orphans(session: Session) -> None:
    """The unique keys of the package model hold, and no row points at a deleted one."""
    keys: list[tuple[Any, ...]] = [
        (Package.owner_id, Package.type, Package.name),
        (PackageBlob.digest,),
        (BlobLink.package_id, BlobLink.blob_id),
        (PackageVersion.package_id, PackageVersion.digest),
        (PackageTag.package_id, PackageTag.name),
        (PackageFile.version_id, PackageFile.position),
    ]
    for columns in keys:
        rows = session.execute(
            select(*columns, func.count()).group_by(*columns).having(func.count() > 1)
        ).all()
        assert rows == [], f"duplicate rows for {columns}: {rows}"
    for orphans in (
        select(PackageTag.id).where(~PackageTag.version_id.in_(select(PackageVersion.id))),
        select(PackageFile.id).where(~PackageFile.version_id.in_(select(PackageVersion.id))),
        select(PackageFile.id).where(~PackageFile.blob_id.in_(select(PackageBlob.id))),
        select(BlobLink.id).where(~BlobLink.blob_id.in_(select(PackageBlob.id))),
        select(PackageVersion.id).where(~PackageVersion.package_id.in_(select(Package.id))),
    ):
        assert session.scalars(orphans).all() == [], orphans
    # The bytes of a manifest are served as a blob of its image while the version exists.
    unlinked = session.execute(
        select(PackageVersion.package_id, PackageVersion.digest)
        .join(PackageFile, manifest_file())
        .outerjoin(
            BlobLink,
            (BlobLink.package_id == PackageVersion.package_id)
            & (BlobLink.blob_id == PackageFile.blob_id),
        )
        .where(BlobLink.id.is_(None))
    ).all()
    assert unlinked == [], f"versions whose manifest blob the image does not link: {unlinked}"


@dataclass(frozen=True)
class ImageRows:
    """What the database says about one image."""

    links: frozenset[str]
    versions: frozenset[str]
    tags: dict[str, str]


def image_rows(session: Session, name: str) -> ImageRows:
    (package_id,) = session.scalars(select(Package.id).where(full_name() == name)).all()
    links = session.scalars(
        select(PackageBlob.digest)
        .join(BlobLink, BlobLink.blob_id == PackageBlob.id)
        .where(BlobLink.package_id == package_id)
    ).all()
    versions = session.scalars(
        select(PackageVersion.digest).where(PackageVersion.package_id == package_id)
    ).all()
    tags = session.execute(
        select(PackageTag.name, PackageVersion.digest)
        .join(PackageVersion, PackageVersion.id == PackageTag.version_id)
        .where(PackageTag.package_id == package_id)
    ).all()
    return ImageRows(frozenset(links), frozenset(versions), {t: d for t, d in tags})


def blob_rows(session: Session, digests: set[str]) -> dict[str, int]:
    """Rows per digest (each must be 1)."""
    rows = session.execute(
        select(PackageBlob.digest, func.count())
        .where(PackageBlob.digest.in_(sorted(digests)))
        .group_by(PackageBlob.digest)
    ).all()
    return {digest: count for digest, count in rows}


# -- 1. twenty images sharing two base layers, pushed at once ---------------------------------

BASE = (Blob(seeded_bytes(1, 300 * KIB)), Blob(seeded_bytes(2, 1200 * KIB + 7)))
CHUNK = 256 * KIB


def fleet() -> dict[str, Image]:
    """20 images, 10 of alice's (some nested) and 10 of acme's: the base and one own layer."""
    names = [f"alice/fleet/app-{i}" for i in range(10)] + [f"acme/app-{i}" for i in range(10)]
    return {
        name: Image(name, (*BASE, Blob(seeded_bytes(100 + i, 40 * KIB + i))))
        for i, name in enumerate(names)
    }


def push_fleet_image(client: Client, image: Image, number: int) -> None:
    """Base layers monolithic, chunked or mounted from the base image; then two tags."""
    for blob in BASE:
        if number % 3 == 2:
            client.mount(blob, "alice/fleet/base")
        else:
            client.push_blob(blob, chunk_size=CHUNK if number % 3 == 1 else None)
    for blob in (image.layers[-1], image.config):
        client.push_blob(blob, chunk_size=CHUNK if number % 2 else None)
    client.put_manifest("1.0", image.manifest)
    client.put_manifest(image.digest, image.manifest, query="?tag=latest")


def pull_both_tags(client: Client) -> tuple[str, str]:
    return client.pull("1.0"), client.pull("latest")


def test_twenty_parallel_pushes_sharing_layers(live_registry: Server) -> None:
    images = fleet()
    tally = Tally()
    base = Client(live_registry, "alice/fleet/base", Tally())
    clients = {name: Client(live_registry, name, tally, mount_from=[base.name]) for name in images}
    assert [base.push_blob(blob).status for blob in BASE] == [201, 201]

    in_parallel(
        [
            partial(push_fleet_image, clients[name], image, n)
            for n, (name, image) in enumerate(images.items())
        ]
    )
    pulled = in_parallel([partial(pull_both_tags, clients[name]) for name in images])

    check_tally(
        tally,
        {
            "POST blob": {201},
            "POST upload": {202},
            "PATCH chunk": {202},
            "PUT upload": {201},
            "POST mount": {201},
            "PUT manifest": {201},
            "GET manifest": {200},
            "GET blob": {200},
        },
    )
    assert tally.counts["PUT manifest", 201] == 40
    assert pulled == [(image.digest, image.digest) for image in images.values()]
    with database(live_registry.site) as session:
        assert_no_duplicates_nor_orphans(session)
        every_blob = {blob.digest for image in images.values() for blob in image.blobs}
        manifests = {image.digest for image in images.values()}
        assert len(every_blob) == 2 + 20 + 20
        assert blob_rows(session, every_blob | manifests) == dict.fromkeys(
            every_blob | manifests, 1
        )
        for name, image in images.items():
            assert image_rows(session, name) == ImageRows(
                links=frozenset({*(b.digest for b in image.blobs), image.digest}),
                versions=frozenset({image.digest}),
                tags={"1.0": image.digest, "latest": image.digest},
            )


# -- 2. one blob pushed by ten clients at once ---------------------------------------------------


def test_one_blob_pushed_by_ten_clients_into_one_and_several_images(
    live_registry: Server,
) -> None:
    blob = Blob(seeded_bytes(7, 2 * 1024 * KIB + 333))
    names = [
        *(["alice/one-blob"] * 5),
        *(f"alice/blob-copy-{i}" for i in range(3)),
        *(f"acme/blob-copy-{i}" for i in range(2)),
    ]
    tally = Tally()
    clients = [Client(live_registry, name, tally) for name in names]
    # Everyone sends its chunks, then all complete their uploads at the same moment.
    finish = threading.Barrier(len(clients))

    def finish_together() -> None:
        finish.wait(timeout=60)

    replies = in_parallel(
        [
            partial(
                client.push_blob,
                blob,
                chunk_size=1024 * KIB if n % 2 else None,
                before_finish=finish_together,
            )
            for n, client in enumerate(clients)
        ]
    )

    check_tally(
        tally,
        {"POST blob": {201}, "POST upload": {202}, "PATCH chunk": {202}, "PUT upload": {201}},
    )
    assert [reply.headers["docker-content-digest"] for reply in replies] == [blob.digest] * 10
    for client in clients:
        assert client.get_blob(blob.digest).body == blob.data
    stored = live_registry.site.storage_path / blob_path(parse_digest(blob.digest))
    assert stored.read_bytes() == blob.data
    with database(live_registry.site) as session:
        assert_no_duplicates_nor_orphans(session)
        assert session.execute(
            select(PackageBlob.digest, PackageBlob.size).where(PackageBlob.digest == blob.digest)
        ).all() == [(blob.digest, len(blob.data))]
        for name in set(names):
            assert image_rows(session, name).links == {blob.digest}
        leftover = session.scalars(
            select(BlobUpload.id).where(BlobUpload.image.in_([n.split("/", 1)[1] for n in names]))
        ).all()
        assert leftover == []


# -- 3. one tag pushed by ten clients at once, with ten different manifests ------------------


@pytest.mark.parametrize("tag", ["latest", "v1.0", "Stable_2"])
def test_one_tag_pushed_by_ten_clients_ends_on_one_of_their_manifests(
    lenient_registry: Server, tag: str
) -> None:
    name = "alice/tag-race"
    layer = Blob(seeded_bytes(9, 64 * KIB))
    images = [Image(f"{tag}-{n}", (layer,), {"n": str(n)}) for n in range(10)]
    tally = Tally()
    clients = [Client(lenient_registry, name, tally) for _ in images]
    for client, image in zip(clients, images, strict=True):
        for blob in image.blobs:
            assert client.push_blob(blob).status == 201

    replies = in_parallel(
        [
            partial(client.put_manifest, tag, image.manifest)
            for client, image in zip(clients, images, strict=True)
        ]
    )

    check_tally(tally, {"POST blob": {201}, "PUT manifest": {201, 503}})
    for reply in replies:
        if reply.status == 503:
            assert error_codes(reply) == ["UNKNOWN"], reply
    pushed = {
        image.digest
        for image, reply in zip(images, replies, strict=True)
        if reply.status == 201 and reply.headers["docker-content-digest"] == image.digest
    }
    assert len(pushed) == sum(reply.status == 201 for reply in replies) > 0
    pulled = clients[0].get_manifest(tag)
    assert pulled.status == 200, pulled
    assert digest_of(pulled.body) == pulled.headers["docker-content-digest"]
    assert pulled.headers["docker-content-digest"] in pushed
    with database(lenient_registry.site) as session:
        assert_no_duplicates_nor_orphans(session)
        rows = image_rows(session, name)
        assert rows.tags[tag] == pulled.headers["docker-content-digest"]
        assert {image.digest for image in images} & rows.versions == pushed


# -- 4. deletes and re-pushes while others pull ------------------------------------------------


@dataclass
class Puller:
    """Pulls one image over and over until told to stop; every 200 body is checked."""

    client: Client
    image: Image
    stop: threading.Event
    rounds: int = 0

    def run(self, limit: int = 400) -> None:
        image, client = self.image, self.client
        not_modified = {"If-None-Match": f'"{image.digest}"'}
        while not self.stop.is_set() and self.rounds < limit:
            self.rounds += 1
            for reply in (client.get_manifest("latest"), client.get_manifest(image.digest)):
                if reply.status == 200:
                    assert reply.headers["docker-content-digest"] == image.digest, reply
                    assert digest_of(reply.body) == image.digest, reply
            conditional = client.get_manifest("latest", headers=not_modified)
            assert conditional.status in {304, 404}, conditional
            for blob in image.blobs:
                reply = client.get_blob(blob.digest)
                if reply.status == 200:
                    assert reply.body == blob.data, (blob.digest, reply.status)


def churn(client: Client, image: Image, rounds: int) -> None:
    """Untag and re-tag, delete the manifest and push it again, unlink a layer and re-upload."""
    layer = image.layers[0]
    for _ in range(rounds):
        assert client.delete_manifest("latest").status == 202
        assert client.put_manifest("latest", image.manifest).status == 201
        assert client.delete_manifest(image.digest).status == 202
        assert client.put_manifest("latest", image.manifest).status == 201
        assert client.delete_blob(layer.digest).status == 202
        assert client.push_blob(layer, chunk_size=100 * KIB).status == 201


def test_deletes_and_re_pushes_while_others_pull(live_registry: Server) -> None:
    name = "alice/churn"
    image = Image("churn", (Blob(seeded_bytes(11, 250 * KIB)), Blob(seeded_bytes(12, 900 * KIB))))
    setup = Tally()
    Client(live_registry, name, setup).push_image(image, ["latest"], chunk_size=None)
    tally = Tally()
    stop = threading.Event()
    pullers = [Puller(Client(live_registry, name, tally, actions="pull"), image, stop)]
    pullers.append(Puller(Client(live_registry, name, tally, actions="pull"), image, stop))
    mutator = Client(live_registry, name, tally)

    def mutate() -> None:
        try:
            churn(mutator, image, rounds=12)
        finally:
            stop.set()

    in_parallel([mutate, *(puller.run for puller in pullers)])

    check_tally(
        tally,
        {
            "GET manifest": {200, 304, 404},
            "GET blob": {200, 404},
            "DELETE manifest": {202},
            "DELETE blob": {202},
            "PUT manifest": {201},
            "POST upload": {202},
            "PATCH chunk": {202},
            "PUT upload": {201},
        },
    )
    print("puller rounds:", [puller.rounds for puller in pullers])
    assert mutator.pull("latest") == image.digest
    with database(live_registry.site) as session:
        assert_no_duplicates_nor_orphans(session)
        assert image_rows(session, name) == ImageRows(
            links=frozenset({*(b.digest for b in image.blobs), image.digest}),
            versions=frozenset({image.digest}),
            tags={"latest": image.digest},
        )


def test_a_push_and_a_delete_of_one_manifest_at_once_leave_it_whole_or_gone(
    lenient_registry: Server,
) -> None:
    """Round after round, one client pushes the manifest while another deletes it by digest
    and a third pulls it; after each round it is either gone, or there with its tag and
    its bytes served as a blob of the image too."""
    name = "alice/push-delete"
    image = Image("push-delete", (Blob(seeded_bytes(13, 8 * KIB)),))
    tally = Tally()
    pusher, deleter, puller = (Client(lenient_registry, name, tally) for _ in range(3))
    pusher.push_image(image, [], chunk_size=None)
    outcomes: Counter[tuple[int, int]] = Counter()
    for round_ in range(25):
        if pusher.get_manifest(image.digest).status == 404:
            assert pusher.put_manifest("latest", image.manifest).status == 201
        pushed, deleted, pulled = in_parallel(
            [
                partial(pusher.put_manifest, "latest", image.manifest),
                partial(deleter.delete_manifest, image.digest),
                partial(puller.get_manifest, "latest"),
            ]
        )
        outcomes[pushed.status, deleted.status] += 1
        if pulled.status == 200:
            assert digest_of(pulled.body) == pulled.headers["docker-content-digest"] == image.digest
        by_digest = puller.get_manifest(image.digest)
        by_tag = puller.get_manifest("latest")
        as_blob = puller.get_blob(image.digest)
        statuses = {
            "by digest": by_digest.status,
            "by tag": by_tag.status,
            "as blob": as_blob.status,
        }
        assert len(set(statuses.values())) == 1, f"round {round_}: half there: {statuses}"

    check_tally(
        tally,
        {
            "POST blob": {201},
            "GET manifest": {200, 404},
            "GET blob": {200, 404},
            "DELETE manifest": {202, 404},
            "PUT manifest": {201, 503},
        },
    )
    print("(push, delete) statuses per round:", dict(outcomes))
    with database(lenient_registry.site) as session:
        assert_no_duplicates_nor_orphans(session)
