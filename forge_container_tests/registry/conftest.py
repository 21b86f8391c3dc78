"""Fixtures of the service-layer tests: the app's registry state inside an app context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from forge_container.state import RegistryState, get_state


@pytest.fixture
def state(app: Flask) -> Iterator[RegistryState]:
    """The registry's state, with the app context pushed for the test."""
    with app.app_context():
        yield get_state(app)


@pytest.fixture
def session(state: RegistryState) -> Session:
    return state.db.session()
