"""Who is calling, and what they may do: one place for every permission decision.

Nothing here reads ``flask.request``: the HTTP layer hands in the header and address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
#: The scope that lists the catalog, asked for in the challenge of an anonymous listing.
CATALOG_SCOPE = "registry:catalog:*"


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
    owner = find_owner(state, name.owner)
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
        return Caller(principal=authenticate(state, credentials, address, cached=True))
    try:
        claims = state.cache.claims(credentials.token, state.tokens.verify)
    except InvalidToken as exc:
        raise Unauthorized(f"{exc}: request a new token", error="invalid_token") from None
    return Caller(principal=claims.principal, claims=claims)


def authenticate(
    state: RegistryState,
    credentials: BasicCredentials,
    address: str | None,
    *,
    cached: bool = False,
) -> Principal:
    """Check a username and password or PAT, under the failed-login limit.

    ``cached`` (the ``/v2`` routes, where clients send Basic on every request) reuses a
    success for the TTL, as password hashing is slow on purpose. Failures are never cached,
    and the limit is checked first either way, so every failure counts and a refused user
    or address stays refused.
    """
    keys = login_keys(credentials.username, address)
    wait = state.login_limiter.retry_after(keys)
    if wait is not None:
        raise TooManyRequests(
            f"too many failed logins; try again in {wait} seconds", retry_after=wait
        )
    key = state.cache.login_key(credentials.username, credentials.password) if cached else None
    principal = state.cache.logins.get(key) if key is not None else None
    if principal is not None:
        return principal
    principal = state.host.authenticate(credentials.username, credentials.password)
    if principal is None:
        state.login_limiter.record_failure(keys)
        raise Unauthorized("invalid username, password or token", basic=True)
    if key is not None:
        state.cache.logins.set(key, principal)
    return principal


def find_owner(state: RegistryState, name: str, *, cached: bool = True) -> Owner | None:
    """``host.get_owner(name)``, cached for the TTL (unknown owners too)."""
    if not cached:
        return state.host.get_owner(name)
    return state.cache.owners.get_or_set(name, lambda: state.host.get_owner(name))


def allowed_actions(
    state: RegistryState, principal: Principal | None, name: ImageName, *, cached: bool = True
) -> frozenset[str]:
    """What ``principal`` may do on ``name``: the forge's rules ∩ the credential's scopes.

    The forge is asked at most once per TTL (``cached``), so a revoke applies within it.
    """
    if principal is None and not state.settings.allow_anonymous:
        return frozenset()
    owner = find_owner(state, name.owner, cached=cached)
    if owner is None:
        return frozenset()
    return _actions_on(state, principal, owner, name.image, cached=cached)


def _actions_on(
    state: RegistryState, principal: Principal | None, owner: Owner, image: str, *, cached: bool
) -> frozenset[str]:
    if principal is not None and principal.is_admin:
        level = Access.ADMIN
    elif cached:
        level = state.cache.access.get_or_set(
            (principal, owner, image), lambda: state.host.access(principal, owner, image)
        )
    else:
        level = state.host.access(principal, owner, image)
    actions = level.actions
    if principal is not None:
        actions &= principal.scope_actions
    return actions


def grant(
    state: RegistryState, principal: Principal | None, requested: Iterable[Scope]
) -> list[Scope]:
    """The token endpoint's answer: each requested scope cut down to what is allowed.

    A partial grant is not an error; scopes that grant nothing are left out. The forge is
    asked afresh (no cache): a token keeps its grant for its whole lifetime.
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
            actions &= allowed_actions(state, principal, name, cached=False)
        elif scope.type == "registry" and scope.name == "catalog":
            may_list = principal is not None or state.settings.allow_anonymous
            actions = scope.actions & {"*"} if may_list else frozenset()
        else:
            continue
        if actions:
            granted.append(Scope(type=scope.type, name=scope.name, actions=frozenset(actions)))
    return granted


def catalog_filter(state: RegistryState, caller: Caller) -> Callable[[ImageName, str], bool]:
    """Which images ``caller`` sees in ``/v2/_catalog``: those its principal may pull now.

    The answer takes ``(name, owner id)`` of a stored image and is false when the owner's
    name now belongs to someone else. A bearer token lists what its principal may read,
    whatever repositories it names (the list reveals nothing the principal could not pull);
    anonymous callers see public images, or get a 401 challenge without anonymous access.
    """
    principal = caller.principal
    if principal is None and not state.settings.allow_anonymous:
        raise Unauthorized(
            scopes=(CATALOG_SCOPE,),
            detail=[{"Type": "registry", "Name": "catalog", "Action": "*"}],
        )

    def readable(name: ImageName, owner_id: str) -> bool:
        owner = find_owner(state, name.owner)
        if owner is None or owner.id != owner_id:
            return False
        return "pull" in _actions_on(state, principal, owner, name.image, cached=True)

    return readable


def may_manage_rules(state: RegistryState, principal: Principal | None, owner: Owner) -> bool:
    """Whether ``principal`` may change ``owner``'s cleanup rules (they delete images).

    Site admins may, and admins of the owner's namespace: the forge's access to the owner
    itself (the empty image, so no repository's collaborators count) is admin. A token
    must allow deletes. The forge is asked afresh (no cache).
    """
    if principal is None:
        return False
    level = Access.ADMIN if principal.is_admin else state.host.access(principal, owner, "")
    return level >= Access.ADMIN and "delete" in principal.scope_actions


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
