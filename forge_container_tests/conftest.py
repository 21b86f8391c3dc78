"""Fixtures shared by the whole suite: a database, the demo forge app, and a ``forge`` helper.

Databases: SQLite (a file in a session temp dir) by default; ``FORGE_TEST_DATABASE=postgresql``
creates a fresh database per session on ``FORGE_TEST_POSTGRES_URL``
(``postgresql+psycopg://postgres@127.0.0.1:5432/``) and drops it at the end. Every test gets
its own app with freshly created, empty tables, dropped again at teardown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from forge_container import schema
from forge_container.demo import DemoHost, accounts, create_app, db
from forge_container.host import Owner, Principal
from forge_container.state import get_state
from forge_container_tests.helpers import forget_keys

pytest_plugins = ["forge_container_tests.s3_server", "forge_container_tests.database_storage"]

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's database URL (SQLite unless ``FORGE_TEST_DATABASE=postgresql``)."""
    if os.environ.get("FORGE_TEST_DATABASE", "sqlite") != "postgresql":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'forge.db'}"
        return
    base = make_url(os.environ.get("FORGE_TEST_POSTGRES_URL") or POSTGRES_URL)
    name = f"fc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for RQ and rate limits (``FORGE_TEST_REDIS_URL`` overrides)."""
    return os.environ.get("FORGE_TEST_REDIS_URL") or REDIS_URL


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Extra app config for one test: override this fixture to add keys (merged last)."""
    return {}


@pytest.fixture
def app(
    database_url: str,
    app_config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    """The demo forge with the registry, on empty tables; ``FORGE_DEMO_*`` and
    ``CONTAINER_REGISTRY_*`` variables of the environment are ignored."""
    for variable in list(os.environ):
        if variable.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("FORGE_DEMO_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-0123456789abcdef",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "FORGE_DEMO_PASSWORD_METHOD": "pbkdf2:sha256:1000",
            "CONTAINER_REGISTRY_STORAGE_PATH": str(tmp_path / "registry"),
            "CONTAINER_REGISTRY_REDIS_KEY_PREFIX": f"fc-test-{uuid.uuid4().hex}:",
            **app_config,
        }
    )
    with app.app_context():
        db.create_all()
        schema.upgrade()
    try:
        yield app
    finally:
        redis = get_state(app).redis
        if redis is not None:
            forget_keys(redis, app.config["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"])
            redis.close()
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                tables = MetaData()
                tables.reflect(engine)
                tables.drop_all(engine)
                engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class Forge:
    """Fill the demo forge quickly; every call commits in its own app context."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.host = DemoHost()

    def user(
        self,
        name: str,
        password: str | None = None,
        *,
        admin: bool = False,
        active: bool = True,
        public: bool = True,
    ) -> Principal:
        """A user (password ``pw-<name>`` by default), as its password-login principal."""
        with self.app.app_context():
            user = accounts.create_user(
                name, password or f"pw-{name}", admin=admin, active=active, public=public
            )
            return Principal(id=user.key, name=user.name, is_admin=user.is_admin)

    def org(self, name: str, owner: str, *, public: bool = True) -> Owner:
        """An organisation; ``owner`` joins its ``Owners`` team (admin)."""
        with self.app.app_context():
            org = accounts.create_org(name, owner, public=public)
            return Owner(id=org.key, name=org.name, kind="org", is_public=org.is_public)

    def member(self, org: str, user: str, role: str, team: str | None = None) -> None:
        """Put ``user`` in team ``team`` (default ``t-<role>``, created with ``role``)."""
        with self.app.app_context():
            accounts.add_member(org, user, team=team or f"t-{role}", role=role)

    def repo(self, owner: str, name: str, *, private: bool = False) -> str:
        """A repository of a user or organisation; returns its id (``r:<id>``)."""
        with self.app.app_context():
            return accounts.create_repo(owner, name, private=private).key

    def collaborator(self, owner: str, repo: str, user: str, role: str) -> None:
        with self.app.app_context():
            accounts.add_collaborator(owner, repo, user, role=role)

    def token(
        self,
        user: str,
        scopes: Sequence[str] = ("read:package",),
        expires_days: int | None = None,
        *,
        name: str | None = None,
    ) -> str:
        """A personal access token (negative ``expires_days``: already expired); the secret."""
        with self.app.app_context():
            return accounts.create_token(user, scopes, name=name, expires_days=expires_days)[1]

    def revoke(self, user: str, token_name: str) -> None:
        with self.app.app_context():
            accounts.revoke_token(user, token_name)

    def owner(self, name: str) -> Owner:
        """The adapter's view of a user or organisation."""
        with self.app.app_context():
            owner = self.host.get_owner(name)
        assert owner is not None, f"no owner {name!r}"
        return owner


@pytest.fixture
def forge(app: Flask) -> Forge:
    return Forge(app)
