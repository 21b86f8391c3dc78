"""The demo app factory: config sources and their order, the instance folder, the secret key."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from forge_container.demo import create_app, db
from forge_container.state import get_state

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeApp]:
    """``create_app`` with a clean environment and the instance folder in ``tmp_path``."""
    for variable in list(os.environ):
        if variable.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("FORGE_DEMO_INSTANCE_PATH", str(tmp_path / "instance"))
    apps: list[Flask] = []

    def make(test_config: dict[str, Any] | None = None) -> Flask:
        apps.append(create_app(test_config))
        return apps[-1]

    yield make
    for app in apps:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


def test_defaults(make_app: MakeApp, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    app = make_app()
    assert app.instance_path == str(instance)
    assert instance.is_dir()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'forge.db'}"
    assert app.config["CONTAINER_REGISTRY_STORAGE_PATH"] == str(instance / "registry")
    assert get_state(app).settings.storage_path == str(instance / "registry")
    assert app.config["FORGE_DEMO_PASSWORD_METHOD"] is None


def test_instance_folder_defaults_to_the_working_directory(
    make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORGE_DEMO_INSTANCE_PATH")
    monkeypatch.chdir(tmp_path)
    assert make_app().instance_path == str(tmp_path / "instance")


def test_config_sources_in_order(
    make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "forge.cfg").write_text(
        "CONTAINER_REGISTRY_SERVICE = 'from-file'\n"
        "CONTAINER_REGISTRY_TOKEN_TTL = 900\n"
        "FORGE_DEMO_PASSWORD_METHOD = 'scrypt'\n"
        "SECRET_KEY = 'file-secret-0123456789abcdef'\n"
    )
    app = make_app()
    assert app.config["CONTAINER_REGISTRY_SERVICE"] == "from-file"
    assert app.config["SECRET_KEY"] == "file-secret-0123456789abcdef"
    assert not (instance / "secret_key").exists()

    monkeypatch.setenv("FORGE_DEMO_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("FORGE_DEMO_SECRET_KEY", "env-secret-0123456789abcdef")
    monkeypatch.setenv("FORGE_DEMO_PASSWORD_METHOD", "pbkdf2:sha256:2000")
    monkeypatch.setenv("CONTAINER_REGISTRY_SERVICE", "registry.example")
    monkeypatch.setenv("CONTAINER_REGISTRY_TOKEN_TTL", "600")
    monkeypatch.setenv("CONTAINER_REGISTRY_ALLOW_ANONYMOUS", "false")
    monkeypatch.setenv("CONTAINER_REGISTRY_TOKEN_SECRET", '["a-new-secret-0123456789", "old"]')
    monkeypatch.setenv("CONTAINER_REGISTRY_STORAGE_PATH", str(tmp_path / "blobs"))
    app = make_app({"CONTAINER_REGISTRY_TOKEN_TTL": 120, "CONTAINER_REGISTRY_TOKEN_SECRET": None})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'env.db'}"
    assert app.config["SECRET_KEY"] == "env-secret-0123456789abcdef"
    assert app.config["FORGE_DEMO_PASSWORD_METHOD"] == "pbkdf2:sha256:2000"
    assert app.config["CONTAINER_REGISTRY_SERVICE"] == "registry.example"
    assert app.config["CONTAINER_REGISTRY_ALLOW_ANONYMOUS"] is False
    settings = get_state(app).settings
    assert settings.token_ttl == 120
    assert settings.allow_anonymous is False
    assert settings.storage_path == str(tmp_path / "blobs")
    assert settings.token_secrets == ("env-secret-0123456789abcdef",)


def test_registry_variables_are_json_decoded(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTAINER_REGISTRY_TOKEN_TTL", "600")
    monkeypatch.setenv("CONTAINER_REGISTRY_TOKEN_SECRET", '["a-new-secret-0123456789"]')
    monkeypatch.setenv("CONTAINER_REGISTRY_TOKEN_REALM", "https://forge.example/v2/token")
    app = make_app()
    assert app.config["CONTAINER_REGISTRY_TOKEN_TTL"] == 600
    assert app.config["CONTAINER_REGISTRY_TOKEN_SECRET"] == ["a-new-secret-0123456789"]
    assert app.config["CONTAINER_REGISTRY_TOKEN_REALM"] == "https://forge.example/v2/token"
    assert get_state(app).settings.token_secrets == ("a-new-secret-0123456789",)


def test_secret_key_is_generated_once_and_kept(make_app: MakeApp, tmp_path: Path) -> None:
    first = make_app()
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.config["SECRET_KEY"]) >= 32
    assert make_app().config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".secret_key")]


def test_an_empty_secret_key_file_is_refused(make_app: MakeApp, tmp_path: Path) -> None:
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "secret_key").write_text("")
    with pytest.raises(RuntimeError, match="delete it to make a new one"):
        make_app()
