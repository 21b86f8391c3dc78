"""``.../<image>/-/delete``: confirm (GET), then delete (POST) a tag or a whole version."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest

from forge_container.registry import image_page
from forge_container.views.ui import ui_bp
from forge_container.views.ui.common import check_csrf, image_access
from forge_container.views.ui.packages import OWNER_ROOT


def _reference() -> tuple[str | None, str | None]:
    """``(tag, digest)`` from the query string or form: exactly one of them."""
    tag = request.values.get("tag") or None
    digest = request.values.get("digest") or None
    if (tag is None) == (digest is None):
        raise BadRequest("Name a tag or a digest to delete.")
    return tag, digest


@ui_bp.route(OWNER_ROOT + "/<path:image>/-/delete", methods=["GET", "POST"])
def delete(owner: str, image: str) -> ResponseReturnValue:
    if request.method == "POST":
        check_csrf()
    found = image_access(owner, image, need="delete")
    seen = found.viewer
    tag, digest = _reference()
    session = seen.state.db.session()
    if request.method == "GET":
        target = image_page.deletion(
            session, seen.owner.id, found.name.image, tag=tag, digest=digest
        )
        return render_template(
            "forge_container/delete.html", owner=seen.owner, name=found.name, target=target
        )
    done = image_page.delete(
        session,
        seen.owner.id,
        found.name.image,
        tag=tag,
        digest=digest,
        owner_name=seen.owner.name,
        by=seen.principal.id if seen.principal is not None else None,
    )
    what = f"tag {done.tag}" if done.tag is not None else f"version {done.digest}"
    if not done.image_left:
        return redirect(url_for(".packages", owner=seen.owner.name, deleted=what), 303)
    return redirect(
        url_for(".image", owner=seen.owner.name, image=found.name.image, deleted=what), 303
    )
