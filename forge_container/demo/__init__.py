"""The reference forge: a small Flask app whose users, organisations and repositories drive
the container registry through :class:`~forge_container.demo.adapter.DemoHost`.

``flask --app forge_container.demo demo serve`` runs it; a real forge replaces it. The
plugin never imports this package.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import event

from forge_container.demo.adapter import DemoHost
from forge_container.demo.cli import demo_cli
from forge_container.demo.models import db
from forge_container.demo.views import init_views, login_manager
from forge_container.extension import ContainerRegistry

__all__ = ["DemoHost", "create_app", "db", "login_manager"]

#: Environment variables read into the config, and the keys they set.
ENV_KEYS = {
    "FORGE_DEMO_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "FORGE_DEMO_SECRET_KEY": "SECRET_KEY",
    "FORGE_DEMO_PASSWORD_METHOD": "FORGE_DEMO_PASSWORD_METHOD",
}
REGISTRY_PREFIX = "CONTAINER_REGISTRY_"
SECRET_KEY_FILE = "secret_key"
#: Seconds a SQLite writer waits for the database lock before giving up.
SQLITE_BUSY_TIMEOUT = 30


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the demo forge with the registry plugged in.

    Config, later wins: defaults, ``<instance>/forge.cfg``, ``FORGE_DEMO_*`` variables,
    ``CONTAINER_REGISTRY_*`` variables (JSON-decoded when they parse), ``test_config``.
    """
    instance_path = os.path.abspath(
        os.environ.get("FORGE_DEMO_INSTANCE_PATH") or os.path.join(os.getcwd(), "instance")
    )
    os.makedirs(instance_path, exist_ok=True)
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(instance_path, "forge.db"),
        SESSION_COOKIE_SAMESITE="Lax",
        FORGE_DEMO_PASSWORD_METHOD=None,
        CONTAINER_REGISTRY_STORAGE_PATH=os.path.join(instance_path, "registry"),
        CONTAINER_REGISTRY_UI_LAYOUT="demo/layout.html",
    )
    app.config.from_pyfile("forge.cfg", silent=True)
    load_environment(app.config, os.environ)
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(instance_path)

    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        # Several gunicorn workers write one file: wait for the lock instead of failing
        # after SQLite's default 5 s, and let readers go on while one worker writes.
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        options.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT)
    db.init_app(app)
    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_wal)
    init_views(app)
    ContainerRegistry(app, db=db, host=DemoHost())
    app.cli.add_command(demo_cli)
    return app


def _sqlite_wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def load_environment(config: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Copy ``FORGE_DEMO_*`` (see :data:`ENV_KEYS`) and ``CONTAINER_REGISTRY_*`` variables."""
    for variable, key in ENV_KEYS.items():
        if environ.get(variable):
            config[key] = environ[variable]
    for variable, value in environ.items():
        if variable.startswith(REGISTRY_PREFIX):
            try:
                config[variable] = json.loads(value)
            except ValueError:
                config[variable] = value


def load_secret_key(instance_path: str) -> str:
    """The key in ``<instance>/secret_key``, created (mode 0600) by whoever comes first."""
    path = os.path.join(instance_path, SECRET_KEY_FILE)
    if not os.path.exists(path):
        fd, temp = tempfile.mkstemp(dir=instance_path, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(os.urandom(32).hex())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    with open(path) as handle:
        key = handle.read().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key; delete it to make a new one")
    return key
