"""authorize(): the one permission decision, for callers with and without tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from forge_container.access import Caller, authorize, may_manage_rules
from forge_container.auth.scopes import Scope
from forge_container.errors import Denied, NameUnknown, Unauthorized
from forge_container.names import parse_name
from forge_container.state import RegistryState, get_state

PUSH = frozenset({"pull", "push"})
APP = parse_name("acme/app")


@pytest.fixture
def state(app: Flask, forge: Any) -> Iterator[RegistryState]:
    forge.user("founder")
    forge.user("reader")
    forge.user("writer")
    forge.org("acme", owner="founder")
    forge.org("hidden", owner="founder", public=False)
    forge.member("acme", "reader", "read")
    forge.member("acme", "writer", "write")
    with app.app_context():
        yield get_state(app)


def token_caller(state: RegistryState, principal: Any, *scopes: Scope) -> Caller:
    claims = state.tokens.verify(state.tokens.issue(principal, scopes).token)
    return Caller(principal=claims.principal, claims=claims)


def test_a_reader_asking_to_push_is_denied(state: RegistryState, forge: Any) -> None:
    reader = state.host.authenticate("reader", "pw-reader")
    with pytest.raises(Denied, match="needs pull, push"):
        authorize(state, Caller(principal=reader), APP, PUSH)


def test_a_token_without_the_scope_asks_for_a_better_token(state: RegistryState) -> None:
    writer = state.host.authenticate("writer", "pw-writer")
    caller = token_caller(state, writer, Scope("repository", "acme/app", frozenset({"pull"})))
    authorize(state, caller, APP, frozenset({"pull"}))
    with pytest.raises(Unauthorized) as info:
        authorize(state, caller, APP, PUSH)
    assert info.value.error == "insufficient_scope"
    assert info.value.scopes == ("repository:acme/app:pull,push",)


def test_a_token_for_a_reader_asking_to_push_is_denied(state: RegistryState) -> None:
    reader = state.host.authenticate("reader", "pw-reader")
    caller = token_caller(state, reader, Scope("repository", "acme/app", frozenset({"pull"})))
    with pytest.raises(Denied):
        authorize(state, caller, APP, PUSH)


def test_anonymous_is_challenged_with_the_scope_it_needs(state: RegistryState) -> None:
    with pytest.raises(Unauthorized) as info:
        authorize(state, Caller(principal=None), APP, PUSH)
    assert info.value.scopes == ("repository:acme/app:pull,push",)
    assert info.value.error is None


def test_a_private_image_is_unknown_to_outsiders(state: RegistryState) -> None:
    reader = state.host.authenticate("reader", "pw-reader")
    with pytest.raises(NameUnknown):
        authorize(state, Caller(principal=reader), parse_name("hidden/app"), frozenset({"pull"}))


def test_a_token_grant_is_checked_per_image(state: RegistryState) -> None:
    writer = state.host.authenticate("writer", "pw-writer")
    caller = token_caller(state, writer, Scope("repository", "acme/app", PUSH))
    authorize(state, caller, APP, PUSH)
    with pytest.raises(Unauthorized):
        authorize(state, caller, parse_name("acme/other"), frozenset({"pull"}))


@pytest.mark.parametrize(
    ("user", "owner", "allowed"),
    [
        ("founder", "acme", True),
        ("writer", "acme", False),
        ("reader", "acme", False),
        ("writer", "writer", True),
        ("writer", "founder", False),
        ("admin", "acme", True),
        ("collab", "acme", False),
    ],
)
def test_who_may_manage_an_owners_cleanup_rules(
    state: RegistryState, forge: Any, user: str, owner: str, allowed: bool
) -> None:
    forge.user("admin", admin=True)
    forge.user("collab")
    forge.repo("acme", "app")
    forge.collaborator("acme", "app", "collab", "admin")
    principal = state.host.authenticate(user, f"pw-{user}")
    target = state.host.get_owner(owner)
    assert target is not None
    assert may_manage_rules(state, principal, target) is allowed


def test_cleanup_rules_need_a_token_that_may_delete(state: RegistryState, forge: Any) -> None:
    acme = state.host.get_owner("acme")
    assert acme is not None
    assert may_manage_rules(state, None, acme) is False
    reading = state.host.authenticate("founder", forge.token("founder", ["read:package"]))
    writing = state.host.authenticate("founder", forge.token("founder", ["write:package"]))
    assert may_manage_rules(state, reading, acme) is False
    assert may_manage_rules(state, writing, acme) is True
