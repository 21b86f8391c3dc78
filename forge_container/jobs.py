"""Background jobs: expire abandoned uploads, collect garbage, apply owners' cleanup rules.

Jobs take ids and strings only, are idempotent, and work in batches of
``CONTAINER_REGISTRY_JOB_BATCH_SIZE``. They run inside the app context: ``flask container
worker`` runs them from the RQ queue ``CONTAINER_REGISTRY_QUEUE``, ``flask container
cleanup`` runs them inline. Each job pushes an app context of its own, so it works on a
fresh database session.

Every ``CONTAINER_REGISTRY_CLEANUP_INTERVAL`` seconds ``flask container scheduler`` (RQ's
``CronScheduler``) enqueues :func:`enqueue_periodic`, which enqueues each job under a fixed
id: a job still queued or running is not enqueued twice, however many schedulers run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from rq import Queue
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import event
from sqlalchemy.orm import Session

from forge_container.registry import expiry, gc
from forge_container.state import RegistryState, get_state

if TYPE_CHECKING:
    from rq.cron import CronScheduler

    from forge_container.registry.cleanup import CleanupReport

log = logging.getLogger(__name__)

#: The periodic jobs, in the order they run: rules remove versions, GC then frees their blobs.
PERIODIC = ("rules", "expire", "gc")
#: Statuses of a job that is over: its id may be used again.
_OVER = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
#: RQ job ids are ``[A-Za-z0-9_-]+``.
_NOT_IN_JOB_ID = re.compile(r"[^A-Za-z0-9_-]+")
#: Where a session keeps the jobs to enqueue when it commits.
_PENDING = "forge_container.jobs"


@dataclass(frozen=True)
class CleanupRun:
    """The reports of :func:`run_all`; a job left out by ``only`` has ``None``."""

    rules: CleanupReport | None
    expiry: expiry.ExpiryReport | None
    gc: gc.GcReport | None


def expire_uploads(dry_run: bool = False) -> expiry.ExpiryReport:
    """Remove upload sessions idle longer than ``UPLOAD_EXPIRY``, and orphan upload files."""
    with _context() as state:
        report = expiry.expire_uploads(
            state.db.session(), state.storage, state.settings, dry_run=dry_run
        )
    log.info("%s", describe_expiry(report))
    return report


def collect_garbage(dry_run: bool = False) -> gc.GcReport:
    """Collect untagged manifests, unused links and blobs, and empty images."""
    with _context() as state:
        report = gc.collect_garbage(
            state.db.session(), state.storage, state.settings, dry_run=dry_run
        )
    log.info("%s", describe_gc(report))
    return report


def apply_cleanup_rules(owner_id: str | None = None, dry_run: bool = False) -> CleanupReport:
    """Apply every enabled cleanup rule, or only ``owner_id``'s."""
    from forge_container.registry import cleanup  # written alongside; imported when used

    with _context() as state:
        report = cleanup.apply_rules(
            state.db.session(),
            state.storage,
            state.settings,
            owner_id=owner_id,
            dry_run=dry_run,
        )
    log.info("%s", describe_rules(report))
    return report


def run_all(dry_run: bool = False, only: str | None = None) -> CleanupRun:
    """Run the periodic jobs inline, in order (``only``: just that one of :data:`PERIODIC`)."""
    if only is not None and only not in PERIODIC:
        raise ValueError(f"unknown job {only!r}: choose one of {', '.join(PERIODIC)}")
    wanted = PERIODIC if only is None else (only,)
    return CleanupRun(
        rules=apply_cleanup_rules(dry_run=dry_run) if "rules" in wanted else None,
        expiry=expire_uploads(dry_run=dry_run) if "expire" in wanted else None,
        gc=collect_garbage(dry_run=dry_run) if "gc" in wanted else None,
    )


JOBS: dict[str, Callable[..., Any]] = {
    "rules": apply_cleanup_rules,
    "expire": expire_uploads,
    "gc": collect_garbage,
}


# -- enqueueing ---------------------------------------------------------------------------------


def job_id(name: str, state: RegistryState | None = None) -> str:
    """The fixed RQ job id of ``name``: ``CONTAINER_REGISTRY_REDIS_KEY_PREFIX`` and the name,
    with what RQ refuses in ids (``:``, say) turned into ``-``."""
    prefix = (state or get_state()).settings.redis_key_prefix
    return _NOT_IN_JOB_ID.sub("-", f"{prefix}{name}")


def queue(state: RegistryState | None = None) -> Queue:
    """The registry's RQ queue (Redis must be configured)."""
    state = state or get_state()
    if state.redis is None:
        raise RuntimeError("CONTAINER_REGISTRY_REDIS_URL is not set: there is no job queue")
    return Queue(state.settings.queue, connection=state.redis)


def enqueue(func: Callable[..., Any], *, job_id: str | None = None, **kwargs: Any) -> Job | None:
    """Enqueue ``func(**kwargs)`` now; ``None`` if a job ``job_id`` is queued or running.

    With ``job_id``, RQ refuses a duplicate atomically (``unique=True``); a finished or
    failed job of that id is deleted first so the id can be used again.
    """
    state = get_state()
    target = queue(state)
    options: dict[str, Any] = {
        "kwargs": kwargs,
        "timeout": state.settings.cleanup_interval,
        "result_ttl": state.settings.cleanup_interval,
    }
    if job_id is None:
        return target.enqueue_call(func, **options)
    for _ in range(2):
        try:
            return target.enqueue_call(func, job_id=job_id, unique=True, **options)
        except DuplicateJobError:
            try:
                existing = Job.fetch(job_id, connection=target.connection)
                if existing.get_status() not in _OVER:
                    return None
                existing.delete()
            except (NoSuchJobError, InvalidJobOperation):
                continue  # gone meanwhile: try again
    return None


def enqueue_periodic() -> list[str]:
    """Enqueue each periodic job under its fixed id; the ids enqueued now.

    RQ's ``CronScheduler`` runs this as a job of its own (see :func:`periodic_scheduler`).
    """
    enqueued = []
    for name in PERIODIC:
        if enqueue(JOBS[name], job_id=job_id(name)) is not None:
            enqueued.append(job_id(name))
    return enqueued


def periodic_scheduler(state: RegistryState | None = None) -> CronScheduler:
    """RQ's ``CronScheduler`` with :func:`enqueue_periodic` every ``CLEANUP_INTERVAL``."""
    from rq.cron import CronScheduler

    state = state or get_state()
    scheduler = CronScheduler(connection=queue(state).connection)
    scheduler.register(
        enqueue_periodic,
        queue_name=state.settings.queue,
        interval=state.settings.cleanup_interval,
        job_timeout=60,
        result_ttl=state.settings.cleanup_interval,
        name=f"{state.settings.queue}-cleanup",
    )
    return scheduler


def enqueue_after_commit(
    func: Callable[..., Any], *, job_id: str | None = None, **kwargs: Any
) -> None:
    """Run ``func(**kwargs)`` once the current transaction of the registry's session commits.

    With Redis configured it is enqueued (see :func:`enqueue`), else it runs inline. Without
    a transaction in progress that happens now; if the transaction rolls back, never.
    """
    session = get_state().db.session()
    if not session.in_transaction():
        _start(func, job_id, kwargs)
        return
    if _PENDING not in session.info:
        session.info[_PENDING] = []
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
    session.info[_PENDING].append((func, job_id, kwargs))


def _after_commit(session: Session) -> None:
    pending, session.info[_PENDING] = session.info[_PENDING], []
    for func, job_id, kwargs in pending:
        try:
            _start(func, job_id, kwargs)
        except Exception:  # the change is committed: a job lost here is caught up later
            log.exception("could not start job %s", getattr(func, "__name__", func))


def _after_rollback(session: Session) -> None:
    session.info[_PENDING] = []


def _start(func: Callable[..., Any], job_id: str | None, kwargs: dict[str, Any]) -> None:
    if get_state().redis is None:
        func(**kwargs)
    else:
        enqueue(func, job_id=job_id, **kwargs)


@contextmanager
def _context() -> Iterator[RegistryState]:
    """A fresh app context (and so a fresh DB session) for one job."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.app_context():
        yield get_state(app)


# -- reports ------------------------------------------------------------------------------------


def describe_expiry(report: expiry.ExpiryReport) -> str:
    verb = "would free" if report.dry_run else "freed"
    return (
        f"Expired uploads: {report.sessions} {_plural(report.sessions, 'session')},"
        f" {report.orphans} orphan {_plural(report.orphans, 'file')}; {verb} {size(report.bytes)}."
    )


def describe_gc(report: gc.GcReport) -> str:
    verb = "would free" if report.dry_run else "freed"
    manifests = len(report.manifests)
    return (
        f"Garbage collection: {manifests} untagged {_plural(manifests, 'manifest')},"
        f" {report.links} unused blob {_plural(report.links, 'link')},"
        f" {report.blobs} {_plural(report.blobs, 'blob')},"
        f" {report.images} empty {_plural(report.images, 'image')}; {verb} {size(report.bytes)}."
    )


def describe_rules(report: CleanupReport) -> str:
    versions = len(report.versions)
    tags = len(report.tags)
    text = (
        f"Cleanup rules: {report.rules} {_plural(report.rules, 'rule')},"
        f" {versions} {_plural(versions, 'manifest')} and {tags} {_plural(tags, 'tag')}"
        f" {'would be ' if report.dry_run else ''}removed ({size(report.size)} as pushed)."
    )
    if report.failed:
        text += f" Failed (tried again next run): {', '.join(report.failed)}."
    return text


def size(count: int) -> str:
    """``count`` bytes for people: ``0 B``, ``512 B``, ``1.5 KiB``, ``3.0 GiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"
