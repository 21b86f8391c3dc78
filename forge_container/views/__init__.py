"""The HTTP layer: the ``/v2`` blueprint, its guard and its error handling."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from forge_container.errors import NameUnknown, RegistryError, Unknown, Unsupported
from forge_container.state import get_state
from forge_container.views.responses import API_VERSION_HEADER, error_response

log = logging.getLogger(__name__)

bp = Blueprint("forge_container", __name__, url_prefix="/v2")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """Werkzeug errors raised inside registry views (400, 413, 500 ...) as OCI JSON."""
    status = exc.code or 500
    if status >= 500:
        return error_response(Unknown("internal server error", status=status))
    return error_response(Unsupported(exc.description or exc.name, status=status))


# Route modules register themselves on ``bp`` when imported.
from forge_container.views import (  # noqa: E402, F401
    base,
    blobs,
    catalog,
    manifests,
    referrers,
    tags,
    token,
    uploads,
)
from forge_container.views.guard import guard_request  # noqa: E402
from forge_container.views.operations import register_operations  # noqa: E402
from forge_container.views.recording import finish_record, start_record  # noqa: E402
from forge_container.views.ui import register_ui  # noqa: E402

bp.before_request(guard_request)


def register_views(app: Flask) -> None:
    """Register the blueprint at the host root, and OCI errors for every ``/v2`` response;
    the package pages too unless ``CONTAINER_REGISTRY_UI_ENABLED`` is off; the health check
    and metrics when enabled; the hooks that fill in the access log's record."""
    app.register_blueprint(bp)
    settings = get_state(app).settings
    if settings.ui_enabled:
        register_ui(app, settings.ui_url_prefix)
    register_operations(app)
    app.register_error_handler(RegistryError, error_response)
    app.before_request(start_record)
    app.before_request(_check_registry_request)
    app.after_request(_add_api_version_header)
    app.teardown_request(finish_record)


def _is_registry_path() -> bool:
    return request.path == "/v2" or request.path.startswith("/v2/")


def _check_registry_request() -> None:
    """Routing 404/405 happen before any blueprint sees the request: turn them into OCI JSON.

    NUL bytes are refused up front: no name, reference or cursor holds one, and PostgreSQL
    text cannot, so letting one through would turn a bad request into a database error.
    """
    if not _is_registry_path():
        return
    if "\x00" in request.path or b"%00" in request.query_string:
        raise Unsupported("NUL bytes are not allowed in registry URLs")
    exc = request.routing_exception
    if exc is None:
        return
    if isinstance(exc, MethodNotAllowed):
        raise Unsupported(
            f"method {request.method} is not allowed here",
            status=405,
            headers={"Allow": ", ".join(sorted(exc.valid_methods or ()))},
        )
    if isinstance(exc, NotFound):
        raise NameUnknown(f"no registry endpoint at {request.path}")


def _add_api_version_header(response: Response) -> Response:
    if _is_registry_path():
        response.headers.setdefault(*API_VERSION_HEADER)
    return response
