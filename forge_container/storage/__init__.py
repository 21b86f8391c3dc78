"""Blob storage: the driver protocol, its errors, and the drivers chosen by name from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forge_container.storage.base import (
    CHUNK_SIZE,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from forge_container.storage.filesystem import FilesystemDriver

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from forge_container.config import Settings

__all__ = [
    "CHUNK_SIZE",
    "FilesystemDriver",
    "InvalidPath",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
    "make_driver",
]


def _filesystem(settings: Settings, db: SQLAlchemy | None) -> StorageDriver:
    return FilesystemDriver(settings.storage_path)


def _s3(settings: Settings, db: SQLAlchemy | None) -> StorageDriver:
    try:
        from forge_container.storage.s3 import S3Driver  # boto3 is the optional extra ``s3``
    except ImportError as exc:
        raise StorageError(
            f"the s3 storage backend needs boto3: pip install 'forge-container[s3]' ({exc})"
        ) from exc
    if settings.s3 is None:
        raise ValueError("CONTAINER_REGISTRY_S3_BUCKET: the s3 backend needs its settings")
    return S3Driver(settings.s3)


def _database(settings: Settings, db: SQLAlchemy | None) -> StorageDriver:
    from forge_container.storage.database import DatabaseDriver

    if db is None:
        raise ValueError("CONTAINER_REGISTRY_STORAGE_BACKEND: 'database' needs the app's db")
    return DatabaseDriver(db)


#: Backend name (``CONTAINER_REGISTRY_STORAGE_BACKEND``) → factory.
_FACTORIES: dict[str, Callable[[Settings, SQLAlchemy | None], StorageDriver]] = {
    "filesystem": _filesystem,
    "s3": _s3,
    "database": _database,
}


def make_driver(settings: Settings, *, db: SQLAlchemy | None = None) -> StorageDriver:
    """Build the storage driver named by ``settings.storage_backend``.

    :raises ValueError: the backend name is unknown.
    :raises StorageError: the store cannot be set up (e.g. the root cannot be created).
    """
    try:
        factory = _FACTORIES[settings.storage_backend]
    except KeyError:
        raise ValueError(
            f"CONTAINER_REGISTRY_STORAGE_BACKEND: unknown storage backend"
            f" {settings.storage_backend!r}; choose one of {', '.join(sorted(_FACTORIES))}"
        ) from None
    return factory(settings, db)
