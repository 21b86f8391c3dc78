"""Get-or-create of packages and blobs: one row each, read back without a second query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from forge_container.models import Package, PackageBlob, utcnow
from forge_container.registry.packages import (
    ensure_blob,
    ensure_package,
    find_blob,
    find_package,
    insert_new,
)

DIGEST = "sha256:" + "ab" * 32


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """The SQL the session's engine sends meanwhile, each statement's first word."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement.split(None, 1)[0].upper())

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_new_blob_is_inserted_and_not_read_back(session: Session) -> None:
    with statements(session) as sent:
        blob = ensure_blob(session, DIGEST, 42)
    assert (blob.digest, blob.size) == (DIGEST, 42)
    assert blob.id is not None
    # The lock-first lookup finds nothing, the INSERT returns the row: nothing after it.
    assert sent[-1] == "INSERT"
    assert sent.count("SELECT") == 1
    session.commit()
    assert find_blob(session, DIGEST) is blob


def test_an_existing_blob_is_found_not_inserted_again(session: Session) -> None:
    first = ensure_blob(session, DIGEST, 42)
    session.commit()
    with statements(session) as sent:
        again = ensure_blob(session, DIGEST, 42)
    assert again.id == first.id
    assert "INSERT" not in sent
    session.commit()
    count = session.scalar(select(func.count()).select_from(PackageBlob))
    assert count == 1


def test_a_new_package_records_its_owner_name(session: Session) -> None:
    package = ensure_package(session, "owner-1", "alice", "app")
    session.commit()
    assert find_package(session, "owner-1", "app") is package
    assert (package.owner_name, package.name) == ("alice", "app")


def test_an_existing_package_takes_the_owner_s_new_name(session: Session) -> None:
    first = ensure_package(session, "owner-1", "alice", "app")
    session.commit()
    renamed = ensure_package(session, "owner-1", "alicia", "app")
    session.commit()
    assert renamed.id == first.id
    assert session.scalar(select(Package.owner_name).where(Package.id == first.id)) == "alicia"


def test_insert_new_leaves_an_existing_row_as_it_was(session: Session) -> None:
    ensure_blob(session, DIGEST, 42)
    session.commit()
    values = {"digest": DIGEST, "size": 7, "created_at": utcnow()}
    assert insert_new(session, PackageBlob, values) is None
    session.commit()
    session.expire_all()
    assert session.scalar(select(PackageBlob.size).where(PackageBlob.digest == DIGEST)) == 42
