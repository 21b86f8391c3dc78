"""The one check before every ``/v2`` view: who is calling, and may they do this."""

from __future__ import annotations

from types import SimpleNamespace

from flask import g, request

from forge_container import access
from forge_container.auth.ratelimit import request_key
from forge_container.errors import NameInvalid, TooManyRequests, Unauthorized
from forge_container.host import Principal
from forge_container.names import InvalidName, parse_name
from forge_container.state import RegistryState, get_state
from forge_container.views.responses import client_address

#: Endpoints that authenticate on their own terms (the token endpoint reads Basic itself).
SELF_AUTHENTICATED = frozenset({"forge_container.token", "forge_container.token_post"})
#: Bodies up to this size are read and dropped before a 401, so that clients which send
#: everything without credentials first (oras-py) keep their connection for the retry.
DRAIN_LIMIT = 4 * 1024 * 1024
#: Upload sessions are part of pushing, whatever the method: status (GET) and cancel
#: (DELETE) need push like the rest, not pull or delete.
UPLOAD_ENDPOINTS = frozenset(
    f"forge_container.{view}"
    for view in ("upload_status", "append_chunk", "finish_upload", "cancel_upload")
)
PUSH = frozenset({"pull", "push"})
#: Stands for "no limit": ``None`` would not lift a host-wide ``MAX_CONTENT_LENGTH``.
NO_LIMIT = 2**62


def guard_request() -> None:
    """Identify the caller and, on image routes, authorize the method before the view runs.

    Routes name the image in a ``name`` view argument; the method decides the actions.
    Every request, the token endpoint's too, counts against the request rate limit.
    """
    state = get_state()
    address = client_address(request, state.settings.proxy_count)
    if request.endpoint in SELF_AUTHENTICATED:
        _limit_requests(state, None, address)
        return
    # Blob bodies are streamed, never buffered: lift the host's form-sized limit here.
    request.max_content_length = state.settings.max_blob_size or NO_LIMIT
    try:
        try:
            caller = access.identify(state, request.headers.get("Authorization"), address)
        except Unauthorized:
            _limit_requests(state, None, address)
            raise
        g._forge_container = SimpleNamespace(caller=caller, address=address)
        _limit_requests(state, caller.principal, address)
        name = (request.view_args or {}).get("name")
        if name is None:
            return
        try:
            image = parse_name(name)
        except InvalidName as exc:
            raise NameInvalid(str(exc)) from None
        required = (
            PUSH
            if request.endpoint in UPLOAD_ENDPOINTS
            else access.ACTIONS_BY_METHOD.get(request.method, PUSH)
        )
        access.authorize(state, caller, image, required)
    except Unauthorized:
        _drain_body()
        raise
    g._forge_container.target = access.resolve_target(state, image)


def _limit_requests(state: RegistryState, principal: Principal | None, address: str | None) -> None:
    """Count the request against its principal's (else its address's) rate limit.

    :raises TooManyRequests: over the limit, with the seconds left in the window.
    """
    limiter = state.request_limiter
    if limiter is None:
        return
    wait = limiter.hit(request_key(principal.id if principal else None, address))
    if wait is not None:
        raise TooManyRequests(f"too many requests; try again in {wait} seconds", retry_after=wait)


def _drain_body() -> None:
    length = request.content_length
    if length is None or length > DRAIN_LIMIT:
        return
    stream = request.stream
    while stream.read(64 * 1024):
        pass


def current_target() -> access.Target:
    """The image an image route names, authorized and resolved by :func:`guard_request`."""
    target: access.Target = g._forge_container.target
    return target


def current_caller() -> access.Caller:
    """The caller identified by :func:`guard_request` for this request."""
    caller: access.Caller = g._forge_container.caller
    return caller
