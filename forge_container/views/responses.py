"""Response helpers shared by the views: error JSON, the auth challenge, external URLs."""

from __future__ import annotations

from typing import Any

from flask import Request, Response, json, request

from forge_container.errors import RegistryError, Unauthorized
from forge_container.state import get_state

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


def error_response(error: RegistryError) -> Response:
    """``{"errors": [...]}`` with the code's status (or the error's own), plus its headers."""
    entry: dict[str, Any] = {"code": error.code.name, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    body: dict[str, Any] = {"errors": [entry]}
    oauth_error = getattr(error, "oauth_error", None)
    if oauth_error:
        body["error"] = oauth_error
        body["error_description"] = error.message
    response = Response(
        json.dumps(body), status=error.status, mimetype="application/json", headers=error.headers
    )
    if isinstance(error, Unauthorized):
        for challenge in challenges(error):
            response.headers.add("WWW-Authenticate", challenge)
    return response


def challenges(error: Unauthorized) -> list[str]:
    """The ``WWW-Authenticate`` values for a 401: the Bearer challenge, Basic when asked."""
    settings = get_state().settings
    params = [f'realm="{token_realm()}"', f'service="{settings.service}"']
    if error.scopes:
        params.append(f'scope="{" ".join(error.scopes)}"')
    if error.error:
        params.append(f'error="{error.error}"')
    values = ["Bearer " + ",".join(params)]
    if error.basic:
        values.append(f'Basic realm="{settings.service}"')
    return values


def token_realm() -> str:
    """``CONTAINER_REGISTRY_TOKEN_REALM``, else the token URL on the request's own origin."""
    settings = get_state().settings
    if settings.token_realm:
        return settings.token_realm
    return f"{external_origin(request, settings.proxy_count)}/v2/token"


def external_origin(req: Request, proxy_count: int) -> str:
    """``scheme://host`` as the client sees it; ``X-Forwarded-*`` only from trusted proxies."""
    scheme, host = req.scheme, req.host
    if proxy_count > 0:
        scheme = _forwarded(req, "X-Forwarded-Proto", proxy_count) or scheme
        host = _forwarded(req, "X-Forwarded-Host", proxy_count) or host
    return f"{scheme}://{host}"


def client_address(req: Request, proxy_count: int) -> str | None:
    """The client's address; ``X-Forwarded-For`` only from trusted proxies."""
    if proxy_count > 0:
        forwarded = _forwarded(req, "X-Forwarded-For", proxy_count)
        if forwarded:
            return forwarded
    return req.remote_addr


def _forwarded(req: Request, header: str, proxy_count: int) -> str | None:
    """The value the outermost trusted proxy saw, as werkzeug's ProxyFix picks it."""
    values = [v.strip() for v in req.headers.get(header, "").split(",") if v.strip()]
    if len(values) < proxy_count:
        return None
    value = values[-proxy_count]
    if any(c in value for c in '"\\ \t\r\n'):
        return None
    return value


def empty_response(code: int, headers: dict[str, str] | None = None) -> Response:
    """A response without a body (``Content-Length: 0``) and so without a ``Content-Type``."""
    response = Response(status=code, headers=headers)
    del response.headers["Content-Type"]
    return response
