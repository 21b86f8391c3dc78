"""``flask container rules ...``: set, show, preview, apply and delete owners' rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from forge_container.host import Principal
from forge_container.registry import cleanup
from forge_container.state import get_state
from forge_container_tests.cleanup_fixtures import DAY, Image, digest_of


@pytest.fixture
def alice(forge: Any) -> Principal:
    principal: Principal = forge.user("alice")
    return principal


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield get_state(app).db.session()


@pytest.fixture
def image(session: Session, alice: Principal) -> Image:
    """alice/app: v1 (its manifest and a child of it) and v2, all pushed long ago."""
    image = Image(session, owner_id=alice.id, owner="alice")
    image.version("amd64", age=400 * DAY)
    image.version("old", children=["amd64"], tags=["v1"], age=400 * DAY, size=2048)
    image.version("new", tags=["v2", "latest"], age=400 * DAY)
    return image


def invoke(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(args=["container", "rules", *args])


def test_set_saves_the_rule_and_previews_it(
    runner: FlaskCliRunner, image: Image, alice: Principal, session: Session
) -> None:
    result = invoke(runner, "set", "alice", "--remove-pattern", "v1", "--remove-untagged")
    assert result.exit_code == 0, result.output
    assert "Saved." in result.output
    assert "Cleanup rule of alice: disabled" in result.output
    assert "remove pattern:  v1" in result.output
    assert "remove untagged: yes" in result.output
    assert "The rule is disabled" in result.output
    assert "Would remove 2 manifest(s) (2.0 KiB) and 1 tag(s):" in result.output
    assert f"alice/app@{digest_of('old')} (v1) 2.0 KiB, its tags were removed" in result.output
    assert f"alice/app@{digest_of('amd64')} 1000 B, a child of a removed index" in result.output
    rule = cleanup.get_rule(session, alice.id)
    assert rule is not None and rule.remove_pattern == "v1" and not rule.enabled
    assert image.tags() == {"v1", "v2", "latest"}


def test_set_changes_only_the_options_given(
    runner: FlaskCliRunner, alice: Principal, session: Session
) -> None:
    assert invoke(runner, "set", "alice", "--keep-count", "3").exit_code == 0
    result = invoke(runner, "set", "alice", "--enable", "--match-full-name")
    assert result.exit_code == 0, result.output
    rule = cleanup.get_rule(session, alice.id)
    assert rule is not None
    assert (rule.enabled, rule.keep_count, rule.match_full_name) == (True, 3, True)
    assert "match:           <image>/<tag>" in result.output


def test_a_bad_regex_is_refused_and_not_saved(
    runner: FlaskCliRunner, alice: Principal, session: Session
) -> None:
    result = invoke(runner, "set", "alice", "--enable", "--keep-pattern", "v[0-9")
    assert result.exit_code == 2
    assert "Invalid value for --keep-pattern" in result.output
    assert "not a valid regular expression" in result.output
    assert cleanup.get_rule(session, alice.id) is None
    slow = invoke(runner, "set", "alice", "--remove-pattern", "(a+)+$")
    assert slow.exit_code == 2 and "exponential time" in slow.output
    assert invoke(runner, "show", "alice").output == "alice has no cleanup rule.\n"


def test_a_negative_count_is_refused(runner: FlaskCliRunner, alice: Principal) -> None:
    result = invoke(runner, "set", "alice", "--remove-days", "-1")
    assert result.exit_code == 2
    assert "Invalid value for --remove-days" in result.output


def test_show_a_rule_without_tag_criteria(runner: FlaskCliRunner, alice: Principal) -> None:
    invoke(runner, "set", "alice", "--enable", "--remove-untagged")
    result = invoke(runner, "show", "alice")
    assert result.exit_code == 0, result.output
    assert "Cleanup rule of alice: enabled" in result.output
    assert "(no tag criterion is set: no tags are removed)" in result.output


def test_an_unknown_owner_is_an_error(runner: FlaskCliRunner) -> None:
    for command in ("show", "set", "preview", "apply", "delete"):
        result = invoke(runner, command, "nobody")
        assert result.exit_code == 1, command
        assert "no user or organisation named 'nobody'" in result.output


def test_preview_then_apply_then_nothing_left(
    runner: FlaskCliRunner, image: Image, alice: Principal
) -> None:
    invoke(runner, "set", "alice", "--enable", "--keep-count", "1")
    preview = invoke(runner, "preview", "alice")
    assert preview.exit_code == 0, preview.output
    assert "Would remove 2 manifest(s)" in preview.output
    dry = invoke(runner, "apply", "alice", "--dry-run")
    assert dry.output == preview.output
    assert image.tags() == {"v1", "v2", "latest"}
    applied = invoke(runner, "apply")
    assert applied.exit_code == 0, applied.output
    assert applied.output == preview.output.replace("Would remove", "Removed")
    assert image.tags() == {"v2", "latest"}
    assert image.versions() == {digest_of("new")}
    assert invoke(runner, "apply", "alice").output == "Removed nothing.\n"


def test_apply_without_enabled_rules(runner: FlaskCliRunner, alice: Principal) -> None:
    assert invoke(runner, "apply").output == "No enabled rules.\n"
    invoke(runner, "set", "alice", "--keep-count", "1")
    assert invoke(runner, "apply", "alice").output == "alice has no enabled cleanup rule.\n"


def test_tags_removed_from_kept_manifests_are_listed(
    runner: FlaskCliRunner, image: Image, alice: Principal
) -> None:
    image.tag("v2.0", "new", age=400 * DAY)
    invoke(runner, "set", "alice", "--enable", "--remove-pattern", r"v2\.0")
    result = invoke(runner, "apply", "alice")
    assert result.output == (
        "Removed 0 manifest(s) (0 B) and 1 tag(s):\n"
        f"  alice/app:v2.0 (tag only; {digest_of('new')} stays)\n"
    )


def test_delete(runner: FlaskCliRunner, alice: Principal, session: Session) -> None:
    invoke(runner, "set", "alice", "--keep-count", "1")
    assert invoke(runner, "delete", "alice").output == "Deleted the cleanup rule of alice.\n"
    assert cleanup.get_rule(session, alice.id) is None
    assert invoke(runner, "delete", "alice").output == "alice has no cleanup rule.\n"
