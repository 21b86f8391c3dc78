"""Alembic environment for the plugin's own tables, with its own version table.

Runs inside a Flask app context (the host's engine) or on a connection or engine handed in
through ``config.attributes["connection"]`` (``forge_container.schema``, pytest-alembic).
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
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    if given is None:
        from flask import current_app

        given = current_app.extensions["sqlalchemy"].engine
    with given.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("forge_container migrations run online only (use a database connection)")
run_migrations_online()
