"""A second app on the test app's database and storage, as another node would be."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from forge_container.demo import create_app, db
from forge_container.state import get_state

#: The config keys a sibling copies from the test app.
SHARED_KEYS = ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "FORGE_DEMO_PASSWORD_METHOD")


@contextmanager
def sibling_app(app: Flask, **overrides: Any) -> Iterator[Flask]:
    """An app with ``app``'s database, storage and registry config, plus ``overrides``;
    its connections are closed at the end (its tables are ``app``'s to drop)."""
    config = {
        key: value
        for key, value in app.config.items()
        if key in SHARED_KEYS or key.startswith("CONTAINER_REGISTRY_")
    }
    other = create_app({**config, **overrides})
    try:
        yield other
    finally:
        redis = get_state(other).redis
        if redis is not None:
            redis.close()
        with other.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()
