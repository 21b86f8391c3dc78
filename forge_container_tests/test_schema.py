"""The plugin's migrations: they apply, reverse, and match the models on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskCliRunner
from pytest_alembic.config import Config as PytestAlembicConfig
from pytest_alembic.tests import (  # noqa: F401 - collected as tests here
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

from forge_container import host_include_name, schema
from forge_container.demo import db
from forge_container.models import Base


@pytest.fixture
def alembic_config() -> PytestAlembicConfig:
    return PytestAlembicConfig(config_options={"script_location": schema.SCRIPT_LOCATION})


@pytest.fixture
def alembic_engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    with engine.begin() as connection:
        tables = sa.MetaData()
        tables.reflect(connection)
        tables.drop_all(connection)
    engine.dispose()


def plugin_tables(app: Flask) -> set[str]:
    with app.app_context():
        return {t for t in sa.inspect(db.engine).get_table_names() if t.startswith("container_")}


def test_migrate_reports_what_it_did(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["container", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert plugin_tables(app) == {"container_alembic_version"}
    result = runner.invoke(args=["container", "migrate"])
    assert result.exit_code == 0, result.output
    assert "upgraded from empty to 0003" in result.output
    assert {t.name for t in Base.metadata.sorted_tables} <= plugin_tables(app)
    again = runner.invoke(args=["container", "migrate"])
    assert "already at revision 0003" in again.output


def test_migration_0002_adds_the_owner_quota_table_and_takes_it_away(
    app: Flask, runner: FlaskCliRunner
) -> None:
    assert "container_owner_quota" in plugin_tables(app)
    down = runner.invoke(args=["container", "downgrade", "0001"])
    assert down.exit_code == 0, down.output
    assert "now at revision 0001" in down.output
    assert "container_owner_quota" not in plugin_tables(app)
    assert "container_package" in plugin_tables(app)
    up = runner.invoke(args=["container", "migrate"])
    assert "upgraded from 0001 to 0003" in up.output
    with app.app_context():
        columns = {c["name"]: c for c in sa.inspect(db.engine).get_columns("container_owner_quota")}
    assert {"owner_id", "total_size", "versions", "blob_size"} <= set(columns)
    assert all(columns[name]["nullable"] for name in ("total_size", "versions", "blob_size"))
    check = runner.invoke(args=["container", "db-check"])
    assert check.exit_code == 0, check.output


def test_migration_0003_adds_the_database_storage_tables_and_takes_them_away(
    app: Flask, runner: FlaskCliRunner
) -> None:
    storage = {"container_storage_file", "container_storage_chunk"}
    assert storage <= plugin_tables(app)
    down = runner.invoke(args=["container", "downgrade", "0002"])
    assert down.exit_code == 0, down.output
    assert not storage & plugin_tables(app)
    assert "container_owner_quota" in plugin_tables(app)
    up = runner.invoke(args=["container", "migrate"])
    assert "upgraded from 0002 to 0003" in up.output
    with app.app_context():
        inspector = sa.inspect(db.engine)
        chunk_key = inspector.get_pk_constraint("container_storage_chunk")["constrained_columns"]
        unique = inspector.get_unique_constraints("container_storage_file")
    assert chunk_key == ["file_id", "start"]
    assert [u["column_names"] for u in unique] == [["path"]]
    check = runner.invoke(args=["container", "db-check"])
    assert check.exit_code == 0, check.output


def test_db_check_finds_no_drift(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["container", "db-check"])
    assert result.exit_code == 0, result.output
    assert "match" in result.output


def test_db_check_fails_on_drift(app: Flask, runner: FlaskCliRunner) -> None:
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_container_package_repository_id"))
    result = runner.invoke(args=["container", "db-check"])
    assert result.exit_code != 0
    assert "differ" in result.output


def test_the_hosts_autogenerate_leaves_plugin_tables_alone(app: Flask) -> None:
    def diffs(**opts: Any) -> list[Any]:
        with app.app_context(), db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=opts)
            return list(compare_metadata(context, db.metadata))

    unfiltered = diffs()
    assert any(d[0] == "remove_table" and d[1].name.startswith("container_") for d in unfiltered)
    assert diffs(include_name=host_include_name) == []
