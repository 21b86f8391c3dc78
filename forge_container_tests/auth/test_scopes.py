from __future__ import annotations

import pytest

from forge_container.auth.scopes import MAX_SCOPES, InvalidScope, Scope, parse_scope, parse_scopes


def test_repository_scope() -> None:
    assert parse_scope("repository:alice/app:pull,push") == Scope(
        "repository", "alice/app", frozenset({"pull", "push"})
    )


def test_name_with_a_port_is_parsed_from_both_ends() -> None:
    scope = parse_scope("registry:forge.example.org:5000/x:*")
    assert scope.name == "forge.example.org:5000/x"
    assert scope.actions == frozenset({"*"})


def test_resource_class_is_ignored() -> None:
    assert parse_scope("repository(plugin):alice/app:pull").type == "repository"


def test_scopes_merge_per_resource_and_split_on_spaces() -> None:
    scopes = parse_scopes(["repository:a/b:pull repository:a/b:push", "registry:catalog:*"])
    assert set(scopes) == {
        Scope("repository", "a/b", frozenset({"pull", "push"})),
        Scope("registry", "catalog", frozenset({"*"})),
    }


def test_str_round_trips() -> None:
    assert str(parse_scope("repository:a/b:push,pull")) == "repository:a/b:pull,push"


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:a/b",
        ":a/b:pull",
        "repository::pull",
        "repository:A/B:pull",
        "repository:a/b:PULL",
        "repo$:a/b:pull",
        "repository:a/b:pu ll",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scopes([text])


def test_too_many_scopes_are_refused() -> None:
    many = [f"repository:a/img{i}:pull" for i in range(MAX_SCOPES + 1)]
    with pytest.raises(InvalidScope, match="too many"):
        parse_scopes(many)
