"""The pages' settings: URL prefix, on/off, the host layout, and the repository snippet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlalchemy import select

from forge_container import ContainerRegistry
from forge_container.config import ConfigError
from forge_container.models import Package
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.test_extension import TinyHost, host_app
from forge_container_tests.views.ui.conftest import Images, text

SNIPPET = (
    '{% from "forge_container/repository_images.html" import repository_images %}'
    "{{ repository_images(owner, repository) }}"
)


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_UI_URL_PREFIX": "/packages/"}])
def test_the_pages_move_under_the_prefix(forge: Forge, images: Images, client: FlaskClient) -> None:
    forge.user("alice")
    images.push("alice", "app", "v1")
    assert client.get("/alice/-/packages/container").status_code == 404
    page = text(client.get("/packages/alice/-/packages/container"))
    assert 'href="/packages/alice/-/packages/container/app"' in page
    assert 'href="/packages/-/forge-container/static/ui.css"' in page
    with client.get("/packages/-/forge-container/static/ui.css") as css:
        assert css.status_code == 200
        assert b".fc-table" in css.get_data()


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_UI_ENABLED": False}])
def test_the_pages_can_be_turned_off(forge: Forge, images: Images, client: FlaskClient) -> None:
    forge.user("alice")
    images.push("alice", "app", "v1")
    assert client.get("/alice/-/packages/container").status_code == 404
    assert client.get("/v2/alice/app/tags/list").status_code == 200


def test_the_demo_layout_frames_the_pages(forge: Forge, client: FlaskClient) -> None:
    forge.user("alice")
    page = text(client.get("/alice/-/packages/container"))
    assert '<a class="brand" href="/">Demo forge</a>' in page
    assert "<title>Container images · alice</title>" in page


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CONTAINER_REGISTRY_UI_URL_PREFIX", "packages"),
        ("CONTAINER_REGISTRY_UI_URL_PREFIX", "/v2"),
        ("CONTAINER_REGISTRY_UI_PAGE_SIZE", 0),
        ("CONTAINER_REGISTRY_UI_PAGE_SIZE", 501),
        ("CONTAINER_REGISTRY_UI_LAYOUT", " "),
        ("CONTAINER_REGISTRY_REGISTRY_HOST", "https://registry.example.org"),
        ("CONTAINER_REGISTRY_REGISTRY_HOST", "registry.example.org/v2"),
    ],
)
def test_bad_values_stop_start_up(tmp_path: Path, key: str, value: Any) -> None:
    app, db = host_app(tmp_path, **{key: value})
    try:
        with pytest.raises(ConfigError, match=key):
            ContainerRegistry(app, db=db, host=TinyHost())
    finally:
        with app.app_context():
            db.engine.dispose()


def test_without_a_host_layout_the_pages_use_their_own(tmp_path: Path) -> None:
    app, db = host_app(tmp_path)
    try:
        ContainerRegistry(app, db=db, host=TinyHost())
        with app.app_context():
            db.create_all()
            from forge_container import schema

            schema.upgrade()
        response = app.test_client().get("/ann/-/packages/container")
        page = text(response)
        assert response.status_code == 200
        assert page.startswith("<!doctype html>")
        assert "No container images yet." in page
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_repository_snippet_lists_and_links_its_images(
    forge: Forge, images: Images, app: Flask, client: FlaskClient
) -> None:
    forge.user("alice")
    repository = forge.repo("alice", "site")
    secret = forge.repo("alice", "secret", private=True)
    images.push("alice", "site", "v1")
    images.push("alice", "site/worker", "v1")
    images.push("alice", "sitemap", "v1")
    images.push("alice", "secret/db", "v1")
    with app.test_request_context("/"):
        html = render_template_string(SNIPPET, owner="alice", repository="site")
        assert render_template_string(SNIPPET, owner="alice", repository="secret").strip() == ""
        assert render_template_string(SNIPPET, owner="alice", repository="none").strip() == ""
    assert '<a href="/alice/-/packages/container/site">alice/site</a>' in html
    assert '<a href="/alice/-/packages/container/site/worker">alice/site/worker</a>' in html
    assert "sitemap" not in html
    with app.app_context():
        linked = (
            get_state(app)
            .db.session.execute(select(Package.name, Package.repository_id).order_by(Package.name))
            .all()
        )
    assert [tuple(row) for row in linked] == [
        ("secret/db", secret),  # linked, though this viewer may not see it
        ("site", repository),
        ("site/worker", repository),
        ("sitemap", None),
    ]
