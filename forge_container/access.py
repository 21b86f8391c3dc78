"""Who is calling, and what they may do: one place for every permission decision.

Nothing here reads ``flask.request``: the HTTP layer hands in the header and address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from forge_container.auth.credentials import (
    BasicCredentials,
    MalformedAuthorization,
    parse_authorization,
)
from forge_container.auth.ratelimit import login_keys
from forge_container.auth.scopes import REPOSITORY_ACTIONS, Scope
from forge_container.auth.tokens import InvalidToken, TokenClaims
from forge_container.errors import Denied, NameUnknown, TooManyRequests, Unauthorized
from forge_container.host import Access, Owner, Principal
from forge_container.names import ImageName, InvalidName, parse_name
from forge_container.state import RegistryState

#: Actions each HTTP method needs on the image it names (a mount adds pull on the source).
ACTIONS_BY_METHOD = {
    "GET": frozenset({"pull"}),
    "HEAD": frozenset({"pull"}),
    "POST": frozenset({"pull", "push"}),
    "PUT": frozenset({"pull", "push"}),
    "PATCH": frozenset({"pull", "push"}),
    "DELETE": frozenset({"delete"}),
}


@dataclass(frozen=True)
class Caller:
    """The identity behind one request: a principal, a bearer token's claims, or neither."""

    principal: Principal | None
    claims: TokenClaims | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.principal is None

    @property
    def has_credentials(self) -> bool:
        return self.principal is not None or self.claims is not None


@dataclass(frozen=True)
class Target:
    """An image a request names: its owner as the forge knows it, and its name."""

    owner: Owner
    name: ImageName


def resolve_target(state: RegistryState, name: ImageName) -> Target:
    """Look the owner up in the forge; an unknown owner is an unknown name."""
    owner = state.host.get_owner(name.owner)
    if owner is None:
        raise NameUnknown(f"repository name not known to registry: {name}")
    return Target(owner=owner, name=name)


def identify(state: RegistryState, authorization: str | None, address: str | None) -> Caller:
    """Resolve the ``Authorization`` header (Basic or a registry Bearer token)."""
    try:
        credentials = parse_authorization(authorization)
    except MalformedAuthorization as exc:
        raise Unauthorized(str(exc), error="invalid_request") from None
    if credentials is None:
        return Caller(principal=None)
    if isinstance(credentials, BasicCredentials):
        return Caller(principal=authenticate(state, credentials, address))
    try:
        claims = state.tokens.verify(credentials.token)
    except InvalidToken as exc:
        raise Unauthorized(f"{exc}: request a new token", error="invalid_token") from None
    return Caller(principal=claims.principal, claims=claims)


def authenticate(
    state: RegistryState, credentials: BasicCredentials, address: str | None
) -> Principal:
    """Check a username and password or PAT, under the failed-login limit."""
    keys = login_keys(credentials.username, address)
    wait = state.login_limiter.retry_after(keys)
    if wait is not None:
        raise TooManyRequests(
            f"too many failed logins; try again in {wait} seconds", retry_after=wait
        )
    principal = state.host.authenticate(credentials.username, credentials.password)
    if principal is None:
        state.login_limiter.record_failure(keys)
        raise Unauthorized("invalid username, password or token", basic=True)
    return principal


def allowed_actions(
    state: RegistryState, principal: Principal | None, name: ImageName
) -> frozenset[str]:
    """What ``principal`` may do on ``name`` now: the forge's rules ∩ the credential's scopes."""
    if principal is None and not state.settings.allow_anonymous:
        return frozenset()
    owner = state.host.get_owner(name.owner)
    if owner is None:
        return frozenset()
    if principal is not None and principal.is_admin:
        level = Access.ADMIN
    else:
        level = state.host.access(principal, owner, name.image)
    actions = level.actions
    if principal is not None:
        actions &= principal.scope_actions
    return actions


def grant(
    state: RegistryState, principal: Principal | None, requested: Iterable[Scope]
) -> list[Scope]:
    """The token endpoint's answer: each requested scope cut down to what is allowed.

    A partial grant is not an error; scopes that grant nothing are left out.
    """
    granted: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            try:
                name = parse_name(scope.name)
            except InvalidName:
                continue
            actions = scope.actions & REPOSITORY_ACTIONS
            if "*" in scope.actions:
                actions = REPOSITORY_ACTIONS
            actions &= allowed_actions(state, principal, name)
        elif scope.type == "registry" and scope.name == "catalog":
            may_list = principal is not None or state.settings.allow_anonymous
            actions = scope.actions & {"*"} if may_list else frozenset()
        else:
            continue
        if actions:
            granted.append(Scope(type=scope.type, name=scope.name, actions=frozenset(actions)))
    return granted


def permits(state: RegistryState, caller: Caller, name: ImageName, actions: frozenset[str]) -> bool:
    """Whether ``caller`` may do ``actions`` on ``name`` (a mount's source, say), no raising."""
    if caller.claims is not None:
        return actions <= caller.claims.actions_for("repository", str(name))
    return actions <= allowed_actions(state, caller.principal, name)


def authorize(
    state: RegistryState, caller: Caller, name: ImageName, required: frozenset[str]
) -> None:
    """Raise unless ``caller`` may do ``required`` on ``name``.

    Anonymous callers get a 401 challenge; a token that merely lacks the scope gets a 401
    asking for a better token; otherwise an image the caller cannot read is reported as
    unknown (no leak of existence) and anything else is 403 DENIED.
    """
    if caller.claims is not None:
        have = caller.claims.actions_for("repository", str(name))
    else:
        have = allowed_actions(state, caller.principal, name)
    if required <= have:
        return
    challenge = (str(Scope("repository", str(name), required)),)
    if caller.principal is None:
        raise Unauthorized(scopes=challenge, detail=_access_detail(name, required))
    live = have if caller.claims is None else allowed_actions(state, caller.principal, name)
    if required <= live:
        raise Unauthorized(
            "the token does not grant this access: request a new one",
            scopes=challenge,
            error="insufficient_scope",
            detail=_access_detail(name, required),
        )
    if "pull" not in live:
        raise NameUnknown(f"repository name not known to registry: {name}")
    raise Denied(f"requested access to {name} is denied: needs {', '.join(sorted(required))}")


def _access_detail(name: ImageName, actions: frozenset[str]) -> list[dict[str, str]]:
    return [{"Type": "repository", "Name": str(name), "Action": a} for a in sorted(actions)]
