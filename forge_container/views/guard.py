"""The one check before every ``/v2`` view: who is calling, and may they do this."""

from __future__ import annotations

from types import SimpleNamespace

from flask import g, request

from forge_container import access
from forge_container.errors import NameInvalid
from forge_container.names import InvalidName, parse_name
from forge_container.state import get_state
from forge_container.views.responses import client_address

#: Endpoints that authenticate on their own terms (the token endpoint reads Basic itself).
SELF_AUTHENTICATED = frozenset({"forge_container.token", "forge_container.token_post"})


def guard_request() -> None:
    """Identify the caller and, on image routes, authorize the method before the view runs.

    Routes name the image in a ``name`` view argument; the method decides the actions.
    """
    if request.endpoint in SELF_AUTHENTICATED:
        return
    state = get_state()
    address = client_address(request, state.settings.proxy_count)
    caller = access.identify(state, request.headers.get("Authorization"), address)
    g._forge_container = SimpleNamespace(caller=caller, address=address)
    name = (request.view_args or {}).get("name")
    if name is None:
        return
    try:
        image = parse_name(name)
    except InvalidName as exc:
        raise NameInvalid(str(exc)) from None
    required = access.ACTIONS_BY_METHOD.get(request.method, frozenset({"pull", "push"}))
    access.authorize(state, caller, image, required)
    g._forge_container.target = access.resolve_target(state, image)


def current_target() -> access.Target:
    """The image an image route names, authorized and resolved by :func:`guard_request`."""
    target: access.Target = g._forge_container.target
    return target


def current_caller() -> access.Caller:
    """The caller identified by :func:`guard_request` for this request."""
    caller: access.Caller = g._forge_container.caller
    return caller
