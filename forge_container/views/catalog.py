"""``GET /v2/_catalog``: the images the caller can read, paginated with ``n``/``last``/``Link``."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, jsonify, request

from forge_container import access
from forge_container.registry import catalog
from forge_container.state import get_state
from forge_container.views import bp
from forge_container.views.guard import current_caller


@bp.get("/_catalog")
def list_catalog() -> Response:
    state = get_state()
    readable = access.catalog_filter(state, current_caller())
    n = catalog.parse_page_size(request.args.get("n"), state.settings.catalog_max_entries)
    page = catalog.list_repositories(
        state.db.session(),
        readable,
        n=n,
        last=request.args.get("last") or None,
        after=catalog.parse_cursor(request.args.get("after")),
    )
    response = jsonify({"repositories": page.repositories})
    if page.more:
        query: dict[str, str | int] = {"n": n}
        if page.repositories:
            query["last"] = page.repositories[-1]
        if page.resume_after is not None:
            query["after"] = page.resume_after
        response.headers["Link"] = f'</v2/_catalog?{urlencode(query)}>; rel="next"'
    return response
