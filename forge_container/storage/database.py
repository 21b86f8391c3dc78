"""The ``database`` driver: files as rows of bounded chunks in the app's own database.

For small installs and tests, not for production: every byte crosses the database
connection and lives in the database's files, WAL and backups.

A file is a ``container_storage_file`` row (path, size, last write); its bytes are
``container_storage_chunk`` rows of at most :data:`CHUNK_SIZE` bytes, keyed by where they
start, and only those that start before the file's size count.

Transactions:

- What the registry's services call inside their own transaction (``write_bytes``,
  ``commit``, ``delete``, and the reads ``exists``, ``stat``, ``modified``, ``read_bytes``,
  ``list``) runs on the connection of the app's ``db.session`` when that session is in a
  transaction: the bytes commit or roll back with the rows they go with, and on SQLite a
  request never waits for the write lock it holds itself. Otherwise each runs in a short
  transaction of its own.
- ``append`` never joins: it commits each chunk in a short transaction of its own as the
  body arrives (no transaction stays open while bytes stream) and records the new size
  last. A failed append deletes its chunks; if even that fails they lie past the size,
  where reads ignore them and the next append removes them.
- ``open_read`` fetches one chunk at a time on a pooled connection of its own
  (:class:`~forge_container.storage.database_reader.ChunkReader`), so a download outlives
  the request's session.

Appends to one path must not overlap (the registry's upload claims see to that).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from flask import has_app_context
from sqlalchemy import Connection, Engine, delete, false, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from forge_container.models import StorageChunk, StorageFile, utcnow
from forge_container.storage.base import CHUNK_SIZE, PathNotFound, StorageError
from forge_container.storage.database_reader import ChunkReader
from forge_container.storage.paths import validate_path

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["DatabaseDriver"]


class DatabaseDriver:
    """Files in the tables of ``db``'s default engine (migration 0003 creates them).

    The engine is looked up in the app context of each call (the driver is built before
    there is one) and remembered, so calls outside one work once the app has used it.
    """

    def __init__(self, db: SQLAlchemy) -> None:
        self._db = db
        self._engine_seen: Engine | None = None

    def __repr__(self) -> str:
        return "DatabaseDriver()"

    def stat(self, path: str) -> int:
        """The size in bytes of the file at ``path``."""
        size = self._scalar(path, select(StorageFile.size).where(StorageFile.path == path))
        if size is None:
            raise PathNotFound(path)
        return int(size)

    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path``."""
        return (
            self._scalar(path, select(StorageFile.id).where(StorageFile.path == path)) is not None
        )

    def modified(self, path: str) -> float:
        """When the file at ``path`` was created or last appended to."""
        moment = self._scalar(path, select(StorageFile.modified_at).where(StorageFile.path == path))
        if moment is None:
            raise PathNotFound(path)
        return float(_as_utc(moment).timestamp())

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """A stream of the file from ``offset`` that reads one chunk at a time."""
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        validate_path(path)
        engine = self._engine()
        with self._own(engine, f"read {path!r}") as connection:
            row = connection.execute(
                select(StorageFile.id, StorageFile.size).where(StorageFile.path == path)
            ).first()
        if row is None:
            raise PathNotFound(path)
        reader = ChunkReader(engine, path, row.id, row.size, offset)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    def read_bytes(self, path: str) -> bytes:
        """The whole content of the file at ``path``."""
        validate_path(path)
        with self._transaction(f"read {path!r}", write=False) as connection:
            row = connection.execute(
                select(StorageFile.id, StorageFile.size).where(StorageFile.path == path)
            ).first()
            if row is None:
                raise PathNotFound(path)
            pieces = connection.scalars(
                select(StorageChunk.data)
                .where(StorageChunk.file_id == row.id, StorageChunk.start < row.size)
                .order_by(StorageChunk.start)
            ).all()
        data = b"".join(pieces)
        if len(data) != row.size:
            raise StorageError(f"{path!r} holds {len(data)} of its {row.size} bytes")
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace the file in one transaction (the caller's, if it has one)."""
        validate_path(path)
        with self._transaction(f"write {path!r}", write=True) as connection:
            values = {"size": len(data), "modified_at": utcnow()}
            upsert = (
                _insert(connection)
                .values(path=path, **values)
                .on_conflict_do_update(index_elements=[StorageFile.path], set_=values)
                .returning(StorageFile.id)
            )
            file_id = connection.execute(upsert).scalar_one()
            connection.execute(delete(StorageChunk).where(StorageChunk.file_id == file_id))
            for start in range(0, len(data), CHUNK_SIZE):
                piece = data[start : start + CHUNK_SIZE]
                connection.execute(
                    insert(StorageChunk).values(file_id=file_id, start=start, data=piece)
                )

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` as rows of up to 1 MiB, each committed as it fills, then the size.

        If the file is deleted meanwhile (an upload cancelled mid-write), the rest of
        ``chunks`` is read but not kept, as a filesystem writes on into an unlinked file.
        """
        validate_path(path)
        engine = self._engine()
        file_id, start = self._open_for_append(engine, path)
        end = start
        gone = False
        pending = bytearray()
        try:
            for piece in chunks:
                pending += piece
                while len(pending) >= CHUNK_SIZE:
                    gone = gone or not self._add_chunk(engine, path, file_id, end, pending)
                    end += CHUNK_SIZE
                    del pending[:CHUNK_SIZE]
            if pending:
                gone = gone or not self._add_chunk(engine, path, file_id, end, pending)
                end += len(pending)
            if not gone and end != start:
                self._set_size(engine, path, file_id, end)
        except BaseException:
            # If this fails too, the chunks lie past the size, where the next append finds them.
            with suppress(StorageError), self._own(engine, f"cut {path!r}") as connection:
                connection.execute(_chunks_from(file_id, start))
            raise
        return end

    def commit(self, upload_path: str, blob_path: str) -> None:
        """Rename the upload's row to ``blob_path``, or drop it if ``blob_path`` exists."""
        validate_path(upload_path)
        validate_path(blob_path)
        with self._transaction(f"commit {upload_path!r}", write=True) as connection:
            source = connection.scalar(
                select(StorageFile.id).where(StorageFile.path == upload_path)
            )
            if source is None:
                raise PathNotFound(upload_path)
            taken = connection.scalar(select(StorageFile.id).where(StorageFile.path == blob_path))
            if taken is not None or not _rename(connection, source, blob_path):
                _remove(connection, source)

    def delete(self, path: str) -> bool:
        """Remove the file at ``path`` and its chunks; ``True`` if there was one."""
        validate_path(path)
        with self._transaction(f"delete {path!r}", write=True) as connection:
            file_id = connection.scalar(
                delete(StorageFile).where(StorageFile.path == path).returning(StorageFile.id)
            )
            if file_id is None:
                return False
            # PostgreSQL's ON DELETE CASCADE did this already; SQLite enforces no keys.
            connection.execute(delete(StorageChunk).where(StorageChunk.file_id == file_id))
        return True

    def list(self, prefix: str) -> Iterator[str]:
        """The paths under the directory ``prefix``, read at once (no cursor stays open)."""
        validate_path(prefix, allow_root=True)
        query = select(StorageFile.path)
        if prefix:
            directory = f"{prefix}/"
            query = query.where(func.substr(StorageFile.path, 1, len(directory)) == directory)
        with self._transaction(f"list {prefix!r}", write=False) as connection:
            paths = list(connection.scalars(query))
        return iter(paths)

    def local_path(self, path: str) -> str | None:
        """Rows have no local path: the app streams them."""
        validate_path(path)
        return None

    @property
    def min_chunk_length(self) -> int:
        """Any chunk size works."""
        return 0

    def redirect_url(self, path: str, *, expires: int) -> str | None:
        """Rows have no URL of their own."""
        validate_path(path)
        return None

    def check(self) -> None:
        """Read both tables and write a probe row, rolled back."""
        engine = self._engine()
        try:
            with engine.connect() as connection:
                transaction = connection.begin()
                try:
                    connection.execute(select(StorageChunk.file_id).limit(1)).all()
                    probe = f".tmp-check-{secrets.token_hex(8)}"
                    connection.execute(
                        insert(StorageFile).values(path=probe, size=0, modified_at=utcnow())
                    )
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"the database storage tables cannot be read and written (run"
                f" `flask container migrate`): {exc}"
            ) from exc

    # -- appends ------------------------------------------------------------------------

    def _open_for_append(self, engine: Engine, path: str) -> tuple[int, int]:
        """Create the file if missing, drop what a failed append left; its id and size."""
        with self._own(engine, f"append to {path!r}") as connection:
            # A write first: on SQLite, the lock is held before the reads below.
            connection.execute(
                _insert(connection)
                .values(path=path, size=0, modified_at=utcnow())
                .on_conflict_do_nothing(index_elements=[StorageFile.path])
            )
            row = connection.execute(
                select(StorageFile.id, StorageFile.size).where(StorageFile.path == path)
            ).one()
            connection.execute(_chunks_from(row.id, row.size))
        return int(row.id), int(row.size)

    def _add_chunk(
        self, engine: Engine, path: str, file_id: int, start: int, data: bytearray
    ) -> bool:
        """Store one chunk (the first :data:`CHUNK_SIZE` bytes of ``data``), committed.

        ``False`` if the file is gone. Touching the file's row first takes its lock (the
        write lock on SQLite), so a concurrent delete comes before or after, not between.
        """
        with self._own(engine, f"append to {path!r}") as connection:
            touched = connection.execute(
                update(StorageFile).where(StorageFile.id == file_id).values(modified_at=utcnow())
            )
            if touched.rowcount != 1:
                return False
            with memoryview(data) as view:
                piece = bytes(view[:CHUNK_SIZE])
            connection.execute(
                insert(StorageChunk).values(file_id=file_id, start=start, data=piece)
            )
        return True

    def _set_size(self, engine: Engine, path: str, file_id: int, size: int) -> None:
        with self._own(engine, f"append to {path!r}") as connection:
            connection.execute(
                update(StorageFile)
                .where(StorageFile.id == file_id)
                .values(size=size, modified_at=utcnow())
            )

    # -- connections and transactions --------------------------------------------------

    def _engine(self) -> Engine:
        """The default engine of the current app (or of the last app context seen)."""
        if has_app_context():
            self._engine_seen = self._db.engine
        if self._engine_seen is None:
            raise StorageError("the database storage driver is first used outside an app context")
        return self._engine_seen

    def _joined(self) -> Connection | None:
        """The connection of the app's session, if that session is in a transaction."""
        if not has_app_context() or not self._db.session.registry.has():
            return None
        session = self._db.session()
        if not session.in_transaction():
            return None
        self._engine()
        return session.connection()

    @contextmanager
    def _transaction(self, what: str, *, write: bool) -> Iterator[Connection]:
        """Join the session's transaction, or run a short one of our own."""
        joined = self._joined()
        if joined is not None:
            if write:
                _write_lock(joined)
            yield joined
            return
        with self._own(self._engine(), what) as connection:
            if write:
                _write_lock(connection)
            yield connection

    @staticmethod
    @contextmanager
    def _own(engine: Engine, what: str) -> Iterator[Connection]:
        """A transaction of our own, committed at the end; database errors become
        :class:`StorageError`."""
        try:
            with engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot {what}: {exc}") from exc

    def _scalar(self, path: str, query: Any) -> Any:
        validate_path(path)
        with self._transaction(f"read {path!r}", write=False) as connection:
            return connection.scalar(query)


def _insert(connection: Connection) -> Any:
    """``INSERT`` into the file table with the dialect's ``ON CONFLICT`` clauses."""
    dialect = connection.dialect.name
    make: Callable[[Any], Any]
    if dialect == "postgresql":
        make = pg_insert
    elif dialect == "sqlite":
        make = sqlite_insert
    else:  # pragma: no cover - only the two databases above are supported
        raise StorageError(f"the database storage driver does not support {dialect!r}")
    return make(StorageFile)


def _write_lock(connection: Connection) -> None:
    """On SQLite, take the write lock before reading what a change relies on.

    SQLite begins a transaction at its first write only; a no-op ``UPDATE`` makes that
    now. PostgreSQL locks the rows it writes.
    """
    if connection.dialect.name == "sqlite":
        connection.execute(update(StorageFile).where(false()).values(id=StorageFile.id))


def _rename(connection: Connection, file_id: int, path: str) -> bool:
    """Move file ``file_id`` to ``path``; ``False`` if a concurrent commit took ``path``.

    On PostgreSQL two transactions may both find ``path`` free; the second then waits for
    the first and fails on the unique path, inside a savepoint so its own transaction
    goes on. SQLite's write lock serializes the two.
    """
    rename = update(StorageFile).where(StorageFile.id == file_id).values(path=path)
    if connection.dialect.name != "postgresql":
        connection.execute(rename)
        return True
    try:
        with connection.begin_nested():
            connection.execute(rename)
    except IntegrityError:
        return False
    return True


def _remove(connection: Connection, file_id: int) -> None:
    connection.execute(delete(StorageChunk).where(StorageChunk.file_id == file_id))
    connection.execute(delete(StorageFile).where(StorageFile.id == file_id))


def _chunks_from(file_id: int, start: int) -> Any:
    """``DELETE`` of the chunks of file ``file_id`` that start at or after ``start``."""
    return delete(StorageChunk).where(StorageChunk.file_id == file_id, StorageChunk.start >= start)


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every one is stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
