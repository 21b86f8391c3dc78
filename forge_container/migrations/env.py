"""Alembic environment for the plugin's own tables, with its own version table.

Runs inside a Flask app context (the host's engine) or on a connection handed in through
``config.attributes["connection"]`` (what ``forge_container.schema`` and pytest-alembic do).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from forge_container.models import Base, plugin_include_name
from forge_container.schema import VERSION_TABLE


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=plugin_include_name,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from flask import current_app

    engine = current_app.extensions["sqlalchemy"].engine
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("forge_container migrations run online only (use a database connection)")
run_migrations_online()
