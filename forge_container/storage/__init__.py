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


def _filesystem(settings: Settings) -> StorageDriver:
    return FilesystemDriver(settings.storage_path)


#: Backend name (``CONTAINER_REGISTRY_STORAGE_BACKEND``) → factory.
_FACTORIES: dict[str, Callable[[Settings], StorageDriver]] = {
    "filesystem": _filesystem,
}


def make_driver(settings: Settings) -> StorageDriver:
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
    return factory(settings)
