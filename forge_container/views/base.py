"""``GET /v2/``: the API version check clients use to find out how to authenticate."""

from __future__ import annotations

from flask import Response, jsonify

from forge_container.errors import Unauthorized
from forge_container.views import bp
from forge_container.views.guard import current_caller


@bp.get("/")
def version_check() -> Response:
    """200 for any valid credential (an anonymous token too); 401 with the challenge without."""
    if not current_caller().has_credentials:
        raise Unauthorized()
    return jsonify({})
