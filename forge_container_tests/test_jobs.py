"""The jobs: a burst worker on real Redis, fixed ids, enqueueing after the commit, inline runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import select, update

from forge_container import jobs
from forge_container.digest import digest_of
from forge_container.models import BlobLink, BlobUpload, PackageBlob, utcnow
from forge_container.registry import uploads
from forge_container.registry.cleanup import CleanupReport
from forge_container.registry.expiry import ExpiryReport
from forge_container.registry.gc import GcReport
from forge_container.state import get_state
from forge_container_tests.manifest_fixtures import seed_blob

WHO = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")
LONG_AGO = timedelta(days=3)
SHORT = {"CONTAINER_REGISTRY_UPLOAD_EXPIRY": 60, "CONTAINER_REGISTRY_GC_GRACE": 60}


def abandoned_upload(app: Flask) -> str:
    """An upload session nobody wrote to for days."""
    with app.app_context():
        session = get_state(app).db.session()
        upload_id = uploads.start_upload(session, WHO).id
        session.execute(
            update(BlobUpload)
            .where(BlobUpload.id == upload_id)
            .values(updated_at=utcnow() - LONG_AGO)
        )
        session.commit()
    return upload_id


def unused_blob(app: Flask, data: bytes = b"never used", image: str = WHO.image) -> str:
    """A blob uploaded into ``image`` days ago that no manifest uses."""
    seed_blob(app, WHO.owner_id, image, data)
    with app.app_context():
        session = get_state(app).db.session()
        session.execute(update(BlobLink).values(created_at=utcnow() - LONG_AGO))
        session.execute(update(PackageBlob).values(created_at=utcnow() - LONG_AGO))
        session.commit()
    return str(digest_of(data))


def left(app: Flask) -> tuple[set[str], set[str]]:
    """The upload sessions and blobs left."""
    with app.app_context():
        session = get_state(app).db.session()
        return (
            set(session.scalars(select(BlobUpload.id))),
            set(session.scalars(select(PackageBlob.digest))),
        )


# -- inline, without Redis ----------------------------------------------------------------------


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(SHORT)


def test_run_all_runs_every_job_inline_and_a_second_run_finds_nothing(app: Flask) -> None:
    upload_id = abandoned_upload(app)
    digest = unused_blob(app)

    with app.app_context():
        run = jobs.run_all()
        again = jobs.run_all()

    assert isinstance(run.rules, CleanupReport) and run.rules.versions == ()
    assert run.expiry == ExpiryReport(False, 1, 0, 0)
    assert run.gc is not None and (run.gc.links, run.gc.blobs, run.gc.images) == (1, 1, 1)
    assert left(app) == (set(), set())
    assert again.expiry == ExpiryReport(False, 0, 0, 0)
    assert again.gc == GcReport(False, (), 0, 0, 0, 0)
    assert upload_id and digest


def test_a_dry_run_changes_nothing(app: Flask) -> None:
    upload_id = abandoned_upload(app)
    digest = unused_blob(app)

    with app.app_context():
        run = jobs.run_all(dry_run=True)

    assert run.expiry is not None and run.expiry.sessions == 1
    assert run.gc is not None and run.gc.blobs == 1 and run.gc.dry_run
    assert left(app) == ({upload_id}, {digest})


def test_only_runs_one_job(app: Flask) -> None:
    upload_id = abandoned_upload(app)

    with app.app_context():
        run = jobs.run_all(only="gc")

    assert run.rules is None and run.expiry is None and run.gc is not None
    assert left(app)[0] == {upload_id}


def test_without_redis_a_job_runs_inline_once_the_transaction_commits(app: Flask) -> None:
    abandoned_upload(app)
    with app.app_context():
        session = get_state(app).db.session()
        session.execute(select(BlobUpload.id)).all()  # a transaction is in progress
        jobs.enqueue_after_commit(jobs.expire_uploads)
        assert left(app)[0] != set()
        session.commit()

    assert left(app)[0] == set()


def test_a_job_is_dropped_when_the_transaction_rolls_back(app: Flask) -> None:
    abandoned_upload(app)
    with app.app_context():
        session = get_state(app).db.session()
        session.execute(select(BlobUpload.id)).all()
        jobs.enqueue_after_commit(jobs.expire_uploads)
        session.rollback()
        session.execute(select(BlobUpload.id)).all()
        session.commit()

    assert left(app)[0] != set()


# -- on RQ, with real Redis ---------------------------------------------------------------------


@pytest.fixture
def queue_name() -> str:
    return f"fc-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_app_config(redis_url: str, queue_name: str) -> dict[str, Any]:
    return {
        **SHORT,
        "CONTAINER_REGISTRY_REDIS_URL": redis_url,
        "CONTAINER_REGISTRY_QUEUE": queue_name,
    }


@pytest.fixture
def rq_queue(app: Flask) -> Iterator[Queue]:
    """The app's queue; every job and key of it is deleted afterwards."""
    with app.app_context():
        queue = jobs.queue()
    try:
        yield queue
    finally:
        delete_queue(queue)


def delete_queue(queue: Queue) -> None:
    registries = [
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.started_job_registry,
        queue.deferred_job_registry,
        queue.scheduled_job_registry,
        queue.canceled_job_registry,
    ]
    ids = set(queue.get_job_ids()).union(*(r.get_job_ids() for r in registries))
    for job_id in ids:
        connection: Redis = queue.connection
        for key in connection.scan_iter(match=f"rq:*{job_id}*"):
            connection.delete(key)
    queue.delete(delete_jobs=True)
    for key in queue.connection.scan_iter(match=f"rq:*{queue.name}*"):
        queue.connection.delete(key)
    queue.connection.zrem("rq:cron_jobs", f"{queue.name}-cleanup")


def work(app: Flask, queue: Queue) -> None:
    """What ``flask container worker --burst`` does."""
    with app.app_context():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)


class TestOnRedis:
    @pytest.fixture
    def app_config(self, redis_app_config: dict[str, Any]) -> dict[str, Any]:
        return redis_app_config

    def test_a_burst_worker_runs_the_periodic_jobs_in_the_app_context(
        self, app: Flask, rq_queue: Queue
    ) -> None:
        upload_id = abandoned_upload(app)
        unused_blob(app)
        with app.app_context():
            ids = jobs.enqueue_periodic()

        assert left(app)[0] == {upload_id}  # nothing ran yet
        work(app, rq_queue)

        assert left(app) == (set(), set())
        finished = {i: Job.fetch(i, connection=rq_queue.connection) for i in ids}
        assert {job.get_status() for job in finished.values()} == {JobStatus.FINISHED}
        with app.app_context():
            gc_report = finished[jobs.job_id("gc")].return_value()
        assert isinstance(gc_report, GcReport) and gc_report.blobs == 1

    def test_periodic_jobs_have_fixed_ids_and_are_not_enqueued_twice(
        self, app: Flask, rq_queue: Queue
    ) -> None:
        with app.app_context():
            first = jobs.enqueue_periodic()
            second = jobs.enqueue_periodic()
            prefix = app.config["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"].rstrip(":")

        assert first == [f"{prefix}-rules", f"{prefix}-expire", f"{prefix}-gc"]
        assert second == [] and rq_queue.count == 3

        work(app, rq_queue)
        with app.app_context():
            assert jobs.enqueue_periodic() == first  # finished jobs free their ids
        assert rq_queue.count == 3

    def test_the_scheduler_enqueues_a_tick_that_enqueues_the_jobs(
        self, app: Flask, rq_queue: Queue
    ) -> None:
        abandoned_upload(app)
        with app.app_context():
            scheduler = jobs.periodic_scheduler()
        [cron_job] = scheduler.get_jobs()
        assert cron_job.interval == get_state(app).settings.cleanup_interval

        scheduler.enqueue_jobs()
        assert rq_queue.count == 1
        work(app, rq_queue)

        assert len(rq_queue.finished_job_registry) == 4
        assert left(app)[0] == set()

    def test_a_job_is_enqueued_only_after_the_commit(self, app: Flask, rq_queue: Queue) -> None:
        with app.app_context():
            session = get_state(app).db.session()
            session.execute(select(BlobUpload.id)).all()
            jobs.enqueue_after_commit(jobs.collect_garbage, job_id=jobs.job_id("gc"))
            assert rq_queue.count == 0
            session.commit()

        assert rq_queue.get_job_ids() == [jobs.job_id("gc", get_state(app))]

    def test_a_rolled_back_transaction_enqueues_nothing(self, app: Flask, rq_queue: Queue) -> None:
        with app.app_context():
            session = get_state(app).db.session()
            session.execute(select(BlobUpload.id)).all()
            jobs.enqueue_after_commit(jobs.collect_garbage, dry_run=True)
            session.rollback()
            session.execute(select(BlobUpload.id)).all()
            session.commit()

        assert rq_queue.count == 0

    def test_a_failed_job_frees_its_id_for_the_next_run(self, app: Flask, rq_queue: Queue) -> None:
        with app.app_context():
            job = jobs.enqueue(jobs.apply_cleanup_rules, job_id=jobs.job_id("rules"), bogus=1)
        assert job is not None
        work(app, rq_queue)
        assert job.get_status() == JobStatus.FAILED

        with app.app_context():
            assert jobs.enqueue_periodic() == [jobs.job_id(n) for n in jobs.PERIODIC]


def test_the_queue_needs_redis(app: Flask) -> None:
    with app.app_context(), pytest.raises(RuntimeError, match="REDIS_URL"):
        jobs.queue()


def test_job_ids_are_the_key_prefix_and_the_name_in_what_rq_accepts(app: Flask) -> None:
    prefix = app.config["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"]
    assert prefix.endswith(":")
    with app.app_context():
        assert jobs.job_id("gc") == f"{prefix[:-1]}-gc"
        assert jobs.job_id("rules:u:1") == f"{prefix[:-1]}-rules-u-1"
