"""The ``filesystem`` driver: blobs and uploads as files under one local directory."""

from __future__ import annotations

import os
import secrets
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO, TypeVar

from forge_container.storage.base import CHUNK_SIZE, InvalidPath, PathNotFound, StorageError
from forge_container.storage.paths import BLOBS, UPLOADS, validate_path

T = TypeVar("T")

#: Scratch files (atomic writes, probes) start with this; paths never reach them.
_TMP_PREFIX = ".tmp-"
#: How often to redo an operation whose fresh parent directory a concurrent delete pruned.
_DIR_RACE_RETRIES = 3


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Map ``OSError`` of a read: missing files become :class:`PathNotFound`."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise PathNotFound(path) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc}") from exc


@contextmanager
def _writing(path: str) -> Iterator[None]:
    """Map ``OSError`` of a write to :class:`StorageError`."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"cannot write {path!r}: {exc}") from exc


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FilesystemDriver:
    """Files under ``root``, which is created (with ``blobs/`` and ``uploads/``) if missing.

    Every path is resolved (symlinks included) and must stay inside the root. Uploads live
    in ``<root>/uploads/`` on the same filesystem as ``<root>/blobs/``, so a commit is an
    atomic rename, made durable with fsync of the file and both directories.
    """

    def __init__(self, root: str) -> None:
        try:
            for sub in (BLOBS, UPLOADS):
                os.makedirs(os.path.join(root, sub), exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the storage root {root!r}: {exc}") from exc
        self._root = os.path.realpath(root)
        self._check_same_filesystem()

    @property
    def root(self) -> str:
        """The absolute, resolved root directory."""
        return self._root

    def __repr__(self) -> str:
        return f"FilesystemDriver({self._root!r})"

    def stat(self, path: str) -> int:
        """The size in bytes of the file at ``path``."""
        full = self._resolve(path)
        with _reading(path):
            st = os.stat(full)
        if not stat_mod.S_ISREG(st.st_mode):
            raise PathNotFound(path)
        return st.st_size

    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path``."""
        return os.path.isfile(self._resolve(path))

    def modified(self, path: str) -> float:
        """The file's modification time."""
        full = self._resolve(path)
        with _reading(path):
            return os.stat(full).st_mtime

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """The file at ``path``, opened for reading and positioned at ``offset``."""
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        full = self._resolve(path)
        with _reading(path):
            f = open(full, "rb", buffering=CHUNK_SIZE)  # noqa: SIM115 (the caller closes it)
            try:
                f.seek(offset)
            except BaseException:
                f.close()
                raise
        return f

    def read_bytes(self, path: str) -> bytes:
        """The whole content of the file at ``path``."""
        full = self._resolve(path)
        with _reading(path), open(full, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it."""
        full = self._resolve(path)
        directory = os.path.dirname(full)
        tmp = os.path.join(directory, f"{_TMP_PREFIX}{secrets.token_hex(8)}")
        with _writing(path):
            fd = self._in_dir(
                directory, lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            )
            try:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, full)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(directory)

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Write each chunk as it arrives, then fsync; on failure, truncate back."""
        full = self._resolve(path)
        directory = os.path.dirname(full)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        with _writing(path):
            fd = self._in_dir(directory, lambda: os.open(full, flags, 0o666))
        try:
            with _writing(path):
                start = os.fstat(fd).st_size
            # Exceptions from ``chunks`` (the client's body) propagate as they are.
            try:
                for chunk in chunks:
                    with _writing(path):
                        _write_all(fd, chunk)
                with _writing(path):
                    os.fsync(fd)
                    if start == 0:
                        _fsync_dir(directory)
                    return os.fstat(fd).st_size
            except BaseException:
                with _writing(path):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def commit(self, upload_path: str, blob_path: str) -> None:
        """Fsync the upload, rename it to ``blob_path`` and fsync both directories."""
        src = self._resolve(upload_path)
        dst = self._resolve(blob_path)
        with _reading(upload_path):
            fd = os.open(src, os.O_RDONLY)
            try:
                if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                    raise PathNotFound(upload_path)
                os.fsync(fd)
            finally:
                os.close(fd)
        if os.path.isfile(dst):
            self.delete(upload_path)
            return

        def move() -> None:
            try:
                os.replace(src, dst)
            except FileNotFoundError:
                if not os.path.lexists(src):
                    raise PathNotFound(upload_path) from None
                raise

        with _writing(blob_path):
            self._in_dir(os.path.dirname(dst), move)
            _fsync_dir(os.path.dirname(dst))
            _fsync_dir(os.path.dirname(src))
        self._prune(os.path.dirname(src), upload_path)

    def delete(self, path: str) -> bool:
        """Remove the file at ``path`` and the directories that became empty."""
        full = self._resolve(path)
        try:
            os.unlink(full)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise StorageError(f"cannot delete {path!r}: {exc}") from exc
        self._prune(os.path.dirname(full), path)
        return True

    def list(self, prefix: str) -> Iterator[str]:
        """The paths of all files under the directory ``prefix`` (``""`` for all)."""
        base = self._resolve(prefix, allow_root=True)
        return self._walk(prefix, base)

    def local_path(self, path: str) -> str | None:
        """The absolute path of the file at ``path`` (for sendfile / ``X-Sendfile``)."""
        full = self._resolve(path)
        if not os.path.isfile(full):
            raise PathNotFound(path)
        return full

    @property
    def min_chunk_length(self) -> int:
        """Any chunk size works: appends go straight to the file."""
        return 0

    def redirect_url(self, path: str, *, expires: int) -> str | None:
        """Local files have no URL of their own (see ``CONTAINER_REGISTRY_BLOB_OFFLOAD``)."""
        return None

    def check(self) -> None:
        """Write and remove a probe file in ``blobs/`` and ``uploads/``."""
        for sub in (BLOBS, UPLOADS):
            directory = os.path.join(self._root, sub)
            if not os.path.isdir(directory):
                raise StorageError(f"storage directory {directory!r} is missing")
            probe = os.path.join(directory, f"{_TMP_PREFIX}check-{secrets.token_hex(8)}")
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    _write_all(fd, b"ok")
                finally:
                    os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise StorageError(
                    f"storage directory {directory!r} is not writable: {exc}"
                ) from exc
        self._check_same_filesystem()

    def _resolve(self, path: str, *, allow_root: bool = False) -> str:
        """The absolute path of ``path``, refused unless it stays inside the root."""
        validate_path(path, allow_root=allow_root)
        full = os.path.realpath(os.path.join(self._root, path))
        if os.path.commonpath([self._root, full]) != self._root:
            raise InvalidPath(path, "resolves outside the storage root")
        return full

    def _check_same_filesystem(self) -> None:
        blobs, uploads = (os.path.join(self._root, sub) for sub in (BLOBS, UPLOADS))
        try:
            same = os.stat(blobs).st_dev == os.stat(uploads).st_dev
        except OSError as exc:
            raise StorageError(f"storage root {self._root!r} is unusable: {exc}") from exc
        if not same:
            raise StorageError(
                f"{blobs!r} and {uploads!r} are on different filesystems: commits would not"
                " be atomic renames"
            )

    def _in_dir(self, directory: str, op: Callable[[], T]) -> T:
        """Create ``directory`` and run ``op`` in it.

        A concurrent :meth:`delete` may prune the directory between the two steps, so a
        ``FileNotFoundError`` from ``op`` recreates it and tries again.
        """
        for attempt in range(_DIR_RACE_RETRIES):
            self._makedirs(directory)
            try:
                return op()
            except FileNotFoundError:
                if attempt == _DIR_RACE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _makedirs(self, directory: str) -> None:
        """``os.makedirs`` that fsyncs each parent of a new directory, never the root's."""
        missing: list[str] = []
        while directory != self._root and not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        if not os.path.isdir(self._root):
            raise StorageError(f"storage root {self._root!r} is missing")
        for new in reversed(missing):
            # Created concurrently, or a file, which the operation then reports.
            with suppress(FileExistsError):
                os.mkdir(new)
            _fsync_dir(os.path.dirname(new))

    def _prune(self, directory: str, path: str) -> None:
        """Remove empty directories from ``directory`` up to, not including, the top level."""
        top = os.path.join(self._root, path.split("/", 1)[0])
        while directory.startswith(top + os.sep):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass  # pruned concurrently: its parent may still be empty
            except OSError:
                return  # not empty: stop climbing
            directory = os.path.dirname(directory)

    def _walk(self, prefix: str, base: str) -> Iterator[str]:
        def on_error(exc: OSError) -> None:
            if not isinstance(exc, FileNotFoundError | NotADirectoryError):
                raise StorageError(f"cannot list {prefix!r}: {exc}") from exc

        for dirpath, dirnames, filenames in os.walk(base, onerror=on_error):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = os.path.relpath(dirpath, self._root).replace(os.sep, "/")
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield name if rel == "." else f"{rel}/{name}"
