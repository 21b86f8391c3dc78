"""The extension pattern: init_app, app.extensions, config defaults, several apps."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from forge_container import Access, ContainerRegistry, Owner, Principal, Repository, get_state
from forge_container.config import ConfigError
from forge_container_tests.helpers import basic


class TinyHost:
    """A host with one user and one public owner: enough to wire the extension."""

    def authenticate(self, username: str, secret: str) -> Principal | None:
        return Principal(id="1", name="ann") if (username, secret) == ("ann", "pw") else None

    def load_principal(self, principal_id: str, token_id: str | None) -> Principal | None:
        return Principal(id="1", name="ann") if principal_id == "1" else None

    def principal_from_session(self) -> Principal | None:
        return None

    def get_owner(self, name: str) -> Owner | None:
        return Owner(id="1", name="ann") if name == "ann" else None

    def access(self, principal: Principal | None, owner: Owner, image: str) -> Access:
        return Access.ADMIN if principal and principal.id == owner.id else Access.READ

    def principal_names(self, ids: Collection[str]) -> Mapping[str, str]:
        return {"1": "ann"} if "1" in ids else {}

    def get_repository(self, owner: Owner, name: str) -> Repository | None:
        return None

    def commit_url(self, repository: Repository, revision: str) -> str | None:
        return None


def host_app(tmp_path: Any, **config: Any) -> tuple[Flask, SQLAlchemy]:
    app = Flask("tinyhost", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SECRET_KEY="tiny-host-secret-0123456789",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/tiny.db",
        CONTAINER_REGISTRY_STORAGE_PATH=str(tmp_path / "store"),
        **config,
    )
    db = SQLAlchemy(app)
    return app, db


@pytest.fixture
def dispose() -> Any:
    dbs: list[tuple[Flask, SQLAlchemy]] = []
    yield dbs.append
    for app, db in dbs:
        with app.app_context():
            db.engine.dispose()


def test_init_app_later_and_nothing_stored_on_the_extension(tmp_path: Any, dispose: Any) -> None:
    app, db = host_app(tmp_path)
    dispose((app, db))
    registry = ContainerRegistry(db=db, host=TinyHost())
    registry.init_app(app)
    assert not any(isinstance(v, Flask) for v in vars(registry).values())
    assert get_state(app).settings.service == "forge-container"
    assert app.config["CONTAINER_REGISTRY_TOKEN_TTL"] == 300
    response = app.test_client().get("/v2/", headers=basic("ann", "pw"))
    assert response.status_code == 200


def test_the_hosts_own_values_win_over_defaults(tmp_path: Any, dispose: Any) -> None:
    app, db = host_app(tmp_path, CONTAINER_REGISTRY_TOKEN_TTL=900)
    dispose((app, db))
    ContainerRegistry(app, db=db, host=TinyHost())
    assert get_state(app).settings.token_ttl == 900


def test_registering_twice_is_refused(tmp_path: Any, dispose: Any) -> None:
    app, db = host_app(tmp_path)
    dispose((app, db))
    ContainerRegistry(app, db=db, host=TinyHost())
    with pytest.raises(RuntimeError, match="already registered"):
        ContainerRegistry(app, db=db, host=TinyHost())


def test_sqlalchemy_must_come_first(tmp_path: Any) -> None:
    app = Flask("nohost", instance_path=str(tmp_path))
    app.config["SECRET_KEY"] = "x" * 32
    with pytest.raises(RuntimeError, match="SQLAlchemy"):
        ContainerRegistry(app, db=SQLAlchemy(), host=TinyHost())


def test_the_host_must_implement_the_adapter(tmp_path: Any, dispose: Any) -> None:
    app, db = host_app(tmp_path)
    dispose((app, db))
    with pytest.raises(TypeError, match="HostAdapter"):
        ContainerRegistry(app, db=db, host=object())  # type: ignore[arg-type]


def test_a_bad_value_stops_start_up_naming_the_key(tmp_path: Any, dispose: Any) -> None:
    app, db = host_app(tmp_path, CONTAINER_REGISTRY_TOKEN_TTL="five minutes")
    dispose((app, db))
    with pytest.raises(ConfigError, match="CONTAINER_REGISTRY_TOKEN_TTL"):
        ContainerRegistry(app, db=db, host=TinyHost())


def test_two_apps_in_one_process_keep_their_own_settings(tmp_path: Any, dispose: Any) -> None:
    registry = ContainerRegistry(host=TinyHost())
    first, db1 = host_app(tmp_path / "a", CONTAINER_REGISTRY_TOKEN_SECRET="first-secret-0123456789")
    second, db2 = host_app(
        tmp_path / "b", CONTAINER_REGISTRY_TOKEN_SECRET="second-secret-0123456789"
    )
    dispose((first, db1))
    dispose((second, db2))
    registry.init_app(first, db=db1)
    registry.init_app(second, db=db2)
    token = first.test_client().get("/v2/token", headers=basic("ann", "pw")).get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert first.test_client().get("/v2/", headers=auth).status_code == 200
    assert second.test_client().get("/v2/", headers=auth).status_code == 401
