"""The Docker token scope grammar: ``type[(class)]:name:action[,action...]``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from forge_container.names import is_valid_name

#: Actions a repository scope may ask for; others are ignored (granted nothing).
REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete"})
_ACTION_RE = re.compile(r"[a-z]*|\*")
_TYPE_RE = re.compile(r"([a-z0-9]+)(?:\([a-z0-9]+\))?")
#: The most scopes one token request may carry (a guard against huge requests).
MAX_SCOPES = 64


class InvalidScope(ValueError):
    """A scope string outside the grammar."""


@dataclass(frozen=True)
class Scope:
    """One requested or granted resource scope."""

    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> Scope:
    """Parse one scope. The name may itself hold a ``:`` (a host port), so parse from both ends."""
    head, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    type_match = _TYPE_RE.fullmatch(head)
    if not sep or not sep2 or type_match is None or not name:
        raise InvalidScope(f"malformed scope {text!r}: expected type:name:actions")
    actions = frozenset(a for a in actions_text.split(",") if a)
    if not all(_ACTION_RE.fullmatch(action) for action in actions):
        raise InvalidScope(f"malformed actions in scope {text!r}")
    resource_type = type_match.group(1)
    if resource_type == "repository" and not is_valid_name(name):
        raise InvalidScope(f"invalid repository name in scope {text!r}")
    return Scope(type=resource_type, name=name, actions=actions)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse repeated and space-separated scopes, merging actions asked for the same resource."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for text in value.split():
            scope = parse_scope(text)
            merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
            if len(merged) > MAX_SCOPES:
                raise InvalidScope(f"too many scopes (at most {MAX_SCOPES})")
    return [Scope(t, n, frozenset(a)) for (t, n), a in merged.items()]
