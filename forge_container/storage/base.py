"""The storage driver protocol and its typed errors.

Drivers move bytes under driver-relative paths built by :mod:`forge_container.storage.paths`;
they know nothing of models, requests or digests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, runtime_checkable

#: Size of the pieces drivers read and write when they stream (1 MiB).
CHUNK_SIZE = 1 << 20


class StorageError(Exception):
    """The store failed or cannot be used; the message says why."""


class PathNotFound(StorageError):
    """Nothing is stored at ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no such path in storage: {path!r}")
        self.path = path


class InvalidPath(StorageError):
    """``path`` is not a safe driver-relative path (it could escape the root)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"invalid storage path {path!r}: {reason}")
        self.path = path


@runtime_checkable
class StorageDriver(Protocol):
    """What the registry needs from a blob store.

    Every ``path`` is a driver-relative ``/``-separated string; an unsafe one raises
    :class:`InvalidPath`. Operations on files that do not exist raise :class:`PathNotFound`.
    """

    def stat(self, path: str) -> int:
        """The size in bytes of the file at ``path``."""
        ...

    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path``."""
        ...

    def modified(self, path: str) -> float:
        """When the file at ``path`` was last written to, as a POSIX timestamp."""
        ...

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """A readable file object positioned at ``offset``; the caller closes it."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a small file."""
        ...

    def write_bytes(self, path: str, data: bytes) -> None:
        """Atomically create or replace a small file: readers see the old or the new bytes."""
        ...

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Append ``chunks`` as they arrive to ``path`` (created if missing), durably.

        Returns the new total size. If writing fails or ``chunks`` raises, nothing of this
        call is kept and the exception propagates: the file keeps its previous size.
        """
        ...

    def commit(self, upload_path: str, blob_path: str) -> None:
        """Durably and atomically move a finished upload to its content-addressed path.

        If ``blob_path`` already exists it holds the same content, so the upload is dropped.
        """
        ...

    def delete(self, path: str) -> bool:
        """Remove the file at ``path``; ``True`` if there was one.

        Directories left empty are removed, up to the root's top-level directory.
        """
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """The paths of all files under the directory ``prefix`` (``""`` for all).

        The order is unspecified; a missing prefix yields nothing.
        """
        ...

    def local_path(self, path: str) -> str | None:
        """A real filesystem path to serve with sendfile, or ``None`` for remote drivers.

        Drivers with local files raise :class:`PathNotFound` when ``path`` is missing.
        """
        ...

    def check(self) -> None:
        """Raise :class:`StorageError` if the store cannot be read and written."""
        ...

    @property
    def min_chunk_length(self) -> int:
        """The smallest upload chunk worth sending (``OCI-Chunk-Min-Length``); 0 for any."""
        ...

    def redirect_url(self, path: str, *, expires: int) -> str | None:
        """A URL a client may GET the file at ``path`` from for ``expires`` seconds.

        ``None`` when the driver cannot hand out such URLs (the app streams the bytes).
        """
        ...
