"""Reads on the hot path, outside the session's transaction.

A pull's lookup is one ``SELECT``; run in the request's session it costs two more round
trips, ``BEGIN`` before it and ``ROLLBACK`` when the request ends. A pooled connection in
autocommit mode sends the ``SELECT`` alone (psycopg and sqlite3 switch modes without
talking to the server). A session that already holds a transaction keeps using it, so a
service always sees its own uncommitted writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.orm import Session


@contextmanager
def read_connection(session: Session) -> Iterator[Connection]:
    """A connection for one or a few independent reads; each sees committed data."""
    if session.in_transaction():
        yield session.connection()
        return
    bind = session.get_bind()
    if isinstance(bind, Connection):  # a session bound to one connection: nothing to gain
        yield session.connection()
        return
    with bind.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")
