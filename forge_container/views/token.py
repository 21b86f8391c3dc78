"""The token endpoint: Docker's ``GET /v2/token`` and the OAuth2 ``POST /v2/token``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Response, jsonify, request

from forge_container import access
from forge_container.auth.credentials import (
    BasicCredentials,
    MalformedAuthorization,
    parse_authorization,
)
from forge_container.auth.scopes import InvalidScope, Scope, parse_scopes
from forge_container.auth.tokens import InvalidToken
from forge_container.errors import TokenRequestInvalid, Unauthorized
from forge_container.host import Principal
from forge_container.state import RegistryState, get_state
from forge_container.views import bp
from forge_container.views.responses import client_address


@bp.get("/token", endpoint="token")
def token_get() -> Response:
    """Docker token auth: Basic credentials or none, ``scope`` repeated, ``offline_token``."""
    state = get_state()
    _check_service(state, request.args.get("service"))
    principal = _basic_principal(state)
    if principal is None and not state.settings.allow_anonymous:
        raise Unauthorized("this registry requires sign-in", basic=True)
    account = request.args.get("account")
    if principal is not None and account and account.lower() != principal.name.lower():
        raise TokenRequestInvalid(f"account {account!r} does not match the credentials")
    scopes = _scopes(request.args.getlist("scope"))
    offline = request.args.get("offline_token", "").lower() == "true"
    return _token_response(state, principal, scopes, refresh=offline)


@bp.post("/token", endpoint="token_post")
def token_post() -> Response:
    """OAuth2: ``grant_type=password`` or ``refresh_token``; ``access_type=offline`` refreshes."""
    state = get_state()
    form = request.form
    _check_service(state, form.get("service"))
    if not form.get("client_id"):
        raise TokenRequestInvalid("client_id is required")
    grant_type = form.get("grant_type")
    scopes = _scopes([form.get("scope", "")])
    offline = form.get("access_type") == "offline"
    if grant_type == "password":
        username, password = form.get("username"), form.get("password")
        if not username or password is None:
            raise TokenRequestInvalid("username and password are required")
        if "\x00" in username + password:
            raise TokenRequestInvalid("NUL bytes are not allowed in credentials")
        address = client_address(request, state.settings.proxy_count)
        principal = access.authenticate(state, BasicCredentials(username, password), address)
        return _token_response(state, principal, scopes, refresh=offline, oauth=True)
    if grant_type == "refresh_token":
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise TokenRequestInvalid("refresh_token is required")
        principal = _refresh_principal(state, refresh_token)
        return _token_response(state, principal, scopes, oauth=True, refresh_token=refresh_token)
    raise TokenRequestInvalid(
        f"unsupported grant_type {grant_type!r}: use password or refresh_token",
        oauth_error="unsupported_grant_type",
    )


def _check_service(state: RegistryState, service: str | None) -> None:
    if service and service != state.settings.service:
        raise TokenRequestInvalid(
            f"unknown service {service!r}; this registry is {state.settings.service!r}"
        )


def _basic_principal(state: RegistryState) -> Principal | None:
    try:
        credentials = parse_authorization(request.headers.get("Authorization"))
    except MalformedAuthorization as exc:
        raise Unauthorized(str(exc), basic=True) from None
    if credentials is None:
        return None
    if not isinstance(credentials, BasicCredentials):
        raise Unauthorized("the token endpoint takes Basic credentials", basic=True)
    address = client_address(request, state.settings.proxy_count)
    return access.authenticate(state, credentials, address)


def _refresh_principal(state: RegistryState, token: str) -> Principal:
    try:
        claims = state.tokens.verify_refresh(token)
    except InvalidToken as exc:
        raise Unauthorized(f"refresh token refused: {exc}") from None
    principal = state.host.load_principal(claims.subject, claims.token_id)
    if principal is None:
        raise Unauthorized("refresh token refused: the user or access token is no longer valid")
    return principal


def _scopes(values: Iterable[str]) -> list[Scope]:
    try:
        return parse_scopes(values)
    except InvalidScope as exc:
        raise TokenRequestInvalid(str(exc), oauth_error="invalid_scope") from None


def _token_response(
    state: RegistryState,
    principal: Principal | None,
    scopes: list[Scope],
    *,
    refresh: bool = False,
    oauth: bool = False,
    refresh_token: str | None = None,
) -> Response:
    granted = access.grant(state, principal, scopes)
    issued = state.tokens.issue(principal, granted)
    body: dict[str, Any] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    if oauth:
        body["scope"] = " ".join(str(s) for s in granted)
    if refresh and principal is not None:
        refresh_token = state.tokens.issue_refresh(principal)
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
