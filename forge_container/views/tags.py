"""``GET /v2/<name>/tags/list``: an image's tags, paginated with ``n``, ``last`` and ``Link``."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, jsonify, request

from forge_container.registry import tags
from forge_container.state import get_state
from forge_container.views import bp
from forge_container.views.guard import current_target


@bp.get("/<path:name>/tags/list")
def list_tags(name: str) -> Response:
    target = current_target()
    n = tags.parse_page_size(request.args.get("n"))
    page = tags.list_tags(
        get_state().db.session(),
        target.owner.id,
        target.name,
        n=n,
        last=request.args.get("last") or None,
    )
    response = jsonify({"name": page.name, "tags": page.tags})
    if page.more and page.tags:
        query = urlencode({"n": n if n is not None else len(page.tags), "last": page.tags[-1]})
        response.headers["Link"] = f'</v2/{page.name}/tags/list?{query}>; rel="next"'
    return response
