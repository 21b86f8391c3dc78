"""``flask container cleanup|worker|scheduler``: the jobs from the command line."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from rq import Queue

from forge_container import jobs
from forge_container_tests.test_jobs import SHORT, abandoned_upload, delete_queue, left, unused_blob


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(SHORT)


def invoke(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(args=["container", *args])


def test_cleanup_reports_what_it_removed(app: Flask, runner: FlaskCliRunner) -> None:
    abandoned_upload(app)
    unused_blob(app, b"x" * 2048)

    result = invoke(runner, "cleanup")

    assert result.exit_code == 0, result.output
    assert "Cleanup rules: 0 rules, 0 manifests and 0 tags removed" in result.output
    assert "Expired uploads: 1 session, 0 orphan files; freed 0 B." in result.output
    assert (
        "Garbage collection: 0 untagged manifests, 1 unused blob link, 1 blob, 1 empty image;"
        " freed 2.0 KiB." in result.output
    )
    assert left(app) == (set(), set())


def test_cleanup_dry_run_removes_nothing(app: Flask, runner: FlaskCliRunner) -> None:
    upload_id = abandoned_upload(app)
    digest = unused_blob(app, b"x" * 10, image="old")

    result = invoke(runner, "cleanup", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "1 blob, 1 empty image; would free 10 B." in result.output
    assert "Expired uploads: 1 session, 0 orphan files; would free 0 B." in result.output
    assert result.output.rstrip().endswith("Dry run: nothing was removed.")
    assert left(app) == ({upload_id}, {digest})


def test_cleanup_only_runs_one_job(app: Flask, runner: FlaskCliRunner) -> None:
    upload_id = abandoned_upload(app)

    result = invoke(runner, "cleanup", "--only", "gc")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Garbage collection:")
    assert "Expired uploads" not in result.output and left(app)[0] == {upload_id}


def test_cleanup_refuses_an_unknown_job(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "cleanup", "--only", "everything")

    assert result.exit_code == 2 and "'everything' is not one of" in result.output


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_the_worker_and_the_scheduler_need_redis(runner: FlaskCliRunner, command: str) -> None:
    result = invoke(runner, command)

    assert result.exit_code == 1
    assert "CONTAINER_REGISTRY_REDIS_URL is not set" in result.output


class TestWorker:
    @pytest.fixture
    def app_config(self, redis_url: str) -> dict[str, Any]:
        return {
            **SHORT,
            "CONTAINER_REGISTRY_REDIS_URL": redis_url,
            "CONTAINER_REGISTRY_QUEUE": f"fc-test-{uuid.uuid4().hex[:12]}",
        }

    @pytest.fixture
    def rq_queue(self, app: Flask) -> Iterator[Queue]:
        with app.app_context():
            queue = jobs.queue()
        try:
            yield queue
        finally:
            delete_queue(queue)

    def test_a_burst_worker_runs_the_queued_jobs(
        self, app: Flask, runner: FlaskCliRunner, rq_queue: Queue
    ) -> None:
        abandoned_upload(app)
        unused_blob(app)
        with app.app_context():
            assert len(jobs.enqueue_periodic()) == 3

        result = invoke(runner, "worker", "--burst")

        assert result.exit_code == 0, result.output
        assert rq_queue.count == 0 and len(rq_queue.finished_job_registry) == 3
        assert left(app) == (set(), set())
