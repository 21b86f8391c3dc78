"""What operators watch: whether the database, the storage and Redis answer, and the live
counts the metrics read at scrape time.

A check's failure is logged with its cause here and reported only by name, so the health
endpoint never shows a path, a URL or a message from a driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from forge_container.models import BlobUpload
from forge_container.storage import StorageDriver, StorageError

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"


def check_all(session: Session, storage: StorageDriver, redis: Redis | None) -> dict[str, str]:
    """``{"database": "ok", "storage": "failed", ...}``; Redis only when it is configured."""
    checks: dict[str, Callable[[], None]] = {
        "database": lambda: check_database(session),
        "storage": storage.check,
    }
    if redis is not None:
        checks["redis"] = lambda: check_redis(redis)
    results = {}
    for name, check in checks.items():
        try:
            check()
        except (SQLAlchemyError, StorageError, RedisError, OSError) as exc:
            log.warning("health check %s failed: %s", name, exc)
            results[name] = FAILED
        else:
            results[name] = OK
    return results


def check_database(session: Session) -> None:
    """Read the registry's own tables (which also tells that the migrations ran)."""
    try:
        session.execute(select(BlobUpload.id).limit(1)).all()
    finally:
        session.rollback()


def check_redis(redis: Redis) -> None:
    redis.ping()


def open_upload_sessions(session: Session) -> int:
    """Upload sessions not finished, cancelled or expired yet, on every node."""
    try:
        return int(session.scalar(select(func.count()).select_from(BlobUpload)) or 0)
    finally:
        session.rollback()
