"""The cleanup-rules editor under the owner's packages: who may use it, save, preview."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.registry import cleanup
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.views.ui.conftest import Images, csrf_of, sign_in, text

SETTINGS = "/acme/-/packages/container/-/settings"
RULE = {
    "enabled": "1",
    "keep_count": "0",
    "keep_pattern": "",
    "remove_pattern": "pr-.*",
    "remove_days": "0",
}


def stored_rule(app: Flask, forge: Forge) -> cleanup.RuleInfo | None:
    with app.app_context():
        return cleanup.get_rule(get_state(app).db.session(), forge.owner("acme").id)


@pytest.fixture
def acme(forge: Forge, images: Images) -> None:
    """Organisation acme (admin alice, writer bob) with images tagged ``pr-1`` and ``v1``."""
    forge.user("alice")
    forge.user("bob")
    forge.user("carol")
    forge.org("acme", owner="alice")
    forge.member("acme", "bob", "write")
    images.push("acme", "app", "pr-1", layer=b"pull request build")
    images.push("acme", "app", "v1", layer=b"release")


def test_owner_admins_save_a_rule_and_see_what_it_would_remove(
    acme: None, app: Flask, forge: Forge, client: FlaskClient
) -> None:
    sign_in(client, "alice")
    form = client.get(SETTINGS)
    assert form.status_code == 200
    assert "Nothing would be removed." in text(form)  # no rule yet
    response = client.post(SETTINGS, data={**RULE, "csrf_token": csrf_of(text(form))})
    assert response.status_code == 303
    assert response.headers["Location"] == SETTINGS + "?saved=1"
    rule = stored_rule(app, forge)
    assert rule is not None and rule.enabled and rule.remove_pattern == "pr-.*"
    page = text(client.get(response.headers["Location"]))
    assert "Saved." in page
    assert 'value="pr-.*"' in page
    preview = page[page.index('id="fc-preview-table"') :]
    assert "<td>app</td>" in preview and "<td>pr-1</td>" in preview
    assert "its tags match the rule" in preview
    assert "v1" not in preview
    # Nothing was removed: it is a preview.
    assert "pr-1" in text(client.get("/acme/-/packages/container/app"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("remove_pattern", "(unclosed", "Remove pattern:"),
        ("keep_pattern", "(a+)+$", "Keep pattern:"),
        ("keep_count", "lots", "Keep count: must be a whole number"),
    ],
)
def test_a_refused_field_shows_the_error_and_saves_nothing(
    acme: None, app: Flask, forge: Forge, client: FlaskClient, field: str, value: str, message: str
) -> None:
    sign_in(client, "alice")
    token = csrf_of(text(client.get(SETTINGS)))
    response = client.post(SETTINGS, data={**RULE, field: value, "csrf_token": token})
    page = text(response)
    assert response.status_code == 400
    assert message in page and "Nothing was saved." in page
    assert 'aria-invalid="true"' in page or field == "keep_count"
    assert stored_rule(app, forge) is None


def test_the_form_needs_the_csrf_token(
    acme: None, app: Flask, forge: Forge, client: FlaskClient
) -> None:
    sign_in(client, "alice")
    client.get(SETTINGS)
    assert client.post(SETTINGS, data=RULE).status_code == 400
    assert client.post(SETTINGS, data={**RULE, "csrf_token": "x"}).status_code == 400
    assert stored_rule(app, forge) is None


def test_only_owner_admins_see_the_editor(acme: None, app: Flask, client: FlaskClient) -> None:
    assert client.get(SETTINGS).status_code == 404
    for name in ("bob", "carol"):
        other = app.test_client()
        sign_in(other, name)
        assert other.get(SETTINGS).status_code == 404
        assert "Cleanup rules" not in text(other.get("/acme/-/packages/container"))
    writer = app.test_client()
    sign_in(writer, "bob")
    with writer.session_transaction() as session:
        session["forge_container_csrf"] = "valid"
    assert writer.post(SETTINGS, data={**RULE, "csrf_token": "valid"}).status_code == 404
