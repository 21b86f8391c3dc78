"""``database_driver``: the ``database`` storage driver on the session's database.

A pytest plugin (listed in the root conftest). Each test gets a small Flask app with its
own ``SQLAlchemy``, its app context pushed for the whole test, and freshly created storage
tables, dropped again at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from forge_container.models import Base, StorageChunk, StorageFile
from forge_container.storage.database import DatabaseDriver

#: The tables the ``database`` driver keeps its files in.
STORAGE_TABLES = [Base.metadata.tables[m.__tablename__] for m in (StorageFile, StorageChunk)]


@pytest.fixture
def storage_app(database_url: str) -> Flask:
    """A bare Flask app on the session's database, for the driver's own ``SQLAlchemy``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    return app


@pytest.fixture
def storage_db(storage_app: Flask) -> Iterator[SQLAlchemy]:
    """A ``SQLAlchemy`` on ``storage_app``, whose app context stays pushed for the test,
    with the storage tables created for this test."""
    db = SQLAlchemy(storage_app)
    with storage_app.app_context():
        Base.metadata.create_all(db.engine, tables=STORAGE_TABLES)
        try:
            yield db
        finally:
            db.session.remove()
            Base.metadata.drop_all(db.engine, tables=STORAGE_TABLES)
            db.engine.dispose()


@pytest.fixture
def database_driver(storage_db: SQLAlchemy) -> DatabaseDriver:
    return DatabaseDriver(storage_db)
